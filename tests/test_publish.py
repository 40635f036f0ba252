"""Kept checkpoints, `cr-bench publish` and the report's headline section."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest

from cr_bench.agents.rundir import RunDir
from cr_bench.results.publish import pick_checkpoints
from tests.conftest import ONE_ENV, TINY, run_cli


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_scheduled_checkpoints_are_kept_with_frames_and_wall_time(checkpointed_run: Path) -> None:
    kept = RunDir(checkpointed_run).list_checkpoints()
    frames = [k["frames_done"] for k in kept]
    # One per 200 frames, each saved at the first agent step (8 frames) past the mark.
    assert len(frames) == 4 and all(200 * (i + 1) <= f < 200 * (i + 1) + 8 for i, f in enumerate(frames))
    assert all(k["path"].name == f"frames-{k['frames_done']:09d}.zip" for k in kept)
    walls = [k["wall_seconds"] for k in kept]
    assert walls == sorted(walls) and walls[0] > 0


def test_checkpoints_are_not_kept_when_switched_off(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train", "ppo-beta", "--frames", "300", "--out", str(run), *ONE_ENV, *TINY["ppo-beta"]]
    code, _, err = run_cli([*argv, "--set", "checkpoint_every_frames=100", "--set", "keep_checkpoints=false"])
    assert code == 0, err
    assert (run / "model.zip").is_file() and not (run / "checkpoints").exists()


def test_pick_checkpoints_spreads_and_keeps_the_last() -> None:
    kept = [{"frames_done": f} for f in range(10)]
    assert [k["frames_done"] for k in pick_checkpoints(kept, 4)] == [0, 3, 6, 9]
    assert pick_checkpoints(kept, 20) == kept
    assert pick_checkpoints(kept, 0) == [] and pick_checkpoints([], 3) == []


def test_publish_writes_a_reproducible_model_folder(checkpointed_run: Path, tmp_path: Path) -> None:
    """The published folder holds the slim model, config, curve and evaluation, and eval reproduces it."""
    results = tmp_path / "results"
    argv = ["publish", str(checkpointed_run), "--name", "beta", "--results-dir", str(results)]
    code, out, err = run_cli([*argv, "--episodes", "2", "--curve-points", "2", "--curve-episodes", "1"])
    assert code == 0, err
    folder = results / "models" / "beta"
    for name in ("config.yaml", "curve.csv", "command.txt", "progress.json", "curve.png", "publish.txt"):
        assert (folder / name).is_file(), name
    assert f"cr-bench verify {folder}" in out
    # Adam's moments are dropped: the published model is smaller than the run's.
    assert (folder / "model.zip").stat().st_size < 0.6 * (checkpointed_run / "model.zip").stat().st_size
    with zipfile.ZipFile(folder / "model.zip") as archive:
        assert "policy.pth" in archive.namelist()

    published = _rows(folder / "eval" / "episodes.csv")
    assert [r["track_seed"] for r in published] == ["1000000", "1000001"]
    scores = _rows(folder / "checkpoints.csv")
    # Kept checkpoints near 200, 400, 600 and 800 (= the final model): two of the first three
    # spread over training, then the final model, each on one validation track.
    assert [r["model"][:7] for r in scores] == ["frames-", "frames-", "model.z"]
    assert 200 <= int(scores[0]["frames"]) < 208 and 600 <= int(scores[1]["frames"]) < 608
    assert [r["episodes"] for r in scores] == ["1", "1", "1"]
    assert scores[-1]["frames"] == str(json.loads((checkpointed_run / "progress.json").read_text())["frames_done"])

    # eval writes elsewhere; the published config evaluates the same 2 tracks, bit for bit.
    code, _, err = run_cli(["eval", str(folder), "--out", str(tmp_path / "replay")])
    assert code == 0, err
    assert _rows(tmp_path / "replay" / "episodes.csv") == published

    code, _, err = run_cli(argv)
    assert code == 2 and "already exists" in err and "--force" in err and err.count("\n") == 1
    code, _, err = run_cli(["train", "ppo-beta", "--out", str(folder), "--resume", "--frames", "2000"])
    assert code == 2 and "published model folder" in err


def test_report_has_the_headline_section(checkpointed_run: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    argv = ["publish", str(checkpointed_run), "--name", "beta", "--results-dir", str(results)]
    assert run_cli([*argv, "--episodes", "1", "--curve-points", "0", "--curve-episodes", "1"])[0] == 0
    code, _, err = run_cli(["report", "--results-dir", str(results)])
    assert code == 0, err
    text = (results / "README.md").read_text()
    folder = results / "models" / "beta"
    (episode,) = _rows(folder / "eval" / "episodes.csv")
    frames = json.loads((checkpointed_run / "progress.json").read_text())["frames_done"]
    agent = RunDir(folder).read_config().agent
    assert "## Headline agents" in text and f"| [beta](models/beta) | {agent} | {frames:,} |" in text
    assert f"| deterministic | {float(episode['return']):.1f} ± 0.0 |" in text
    assert "World Models" in text and "906 ± 21" in text
    assert "cr-bench train ppo-beta --frames 800" in text and f"cr-bench verify {results}/models/beta" in text
    assert "![training curve](models/beta/curve.png)" in text
    # Where it fails: its score per track, with the lap metrics of the worst.
    assert "Score per track: [test tracks](models/beta/eval/episodes.csv)" in text
    tiles = float(episode["tile_fraction"])
    assert f"lowest: 1000000 ({float(episode['return']):.1f}, {tiles:.1%} of its tiles)" in text

    # Edited, the folder no longer holds its published figures.
    episodes_csv = folder / "eval" / "episodes.csv"
    episodes_csv.write_text(episodes_csv.read_text().replace(episode["return"], "1000.0"))
    code, _, err = run_cli(["report", "--results-dir", str(results)])
    assert code == 2 and "not the evaluation beta was published with" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "a/b"], "plain folder name"),
        (["--name", "x", "--curve-episodes", "0"], "--curve-episodes"),
    ],
)
def test_publish_bad_input(checkpointed_run: Path, tmp_path: Path, argv: list[str], message: str) -> None:
    code, _, err = run_cli(["publish", str(checkpointed_run), "--results-dir", str(tmp_path), *argv])
    assert code == 2 and message in err and err.count("\n") == 1


def test_publish_needs_a_run(tmp_path: Path) -> None:
    code, _, err = run_cli(["publish", str(tmp_path / "missing"), "--name", "x", "--results-dir", str(tmp_path)])
    assert code == 2 and "run directory not found" in err
