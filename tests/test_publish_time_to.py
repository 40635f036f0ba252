"""`cr-bench publish`: checkpoints on validation tracks, time to 800 and 900, randomized colours,
and the report of folders published before them."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cr_bench.errors import CrBenchError
from cr_bench.results import publish as publish_module
from cr_bench.results.publish import published_models, read_published
from cr_bench.results.tables import time_to, time_to_text
from cr_bench.spec.loader import read_yaml, write_yaml
from cr_bench.spec.run import TEST_TRACK_START, VALIDATION_TRACK_START, EnvConfig, EvalConfig
from tests.conftest import REAL_ENV, TINY, run_cli, untrained_run

REPO_MODELS = Path(__file__).resolve().parents[1] / "results" / "models"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _table(frames: list[int], means: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"frames": frames, "wall_hours": [f / 1e6 for f in frames], "mean": means})


# -- time_to: a pure function over a checkpoints table ----------------------------------------
def test_time_to_is_the_first_crossing_in_frames_order() -> None:
    # Rows out of order; 800 is first reached at 200k (exactly: >=), 900 at 400k.
    table = _table([400_000, 100_000, 300_000, 200_000], [905.0, 640.0, 850.0, 800.0])
    assert time_to(table) == {
        800: {"frames": 200_000, "wall_hours": 0.2},
        900: {"frames": 400_000, "wall_hours": 0.4},
    }


def test_time_to_keeps_a_crossing_that_falls_back() -> None:
    # 900 at 200k, then below it for the rest of training (the final model last): still 200k.
    table = _table([100_000, 200_000, 300_000, 400_000], [820.0, 910.0, 870.0, 860.0])
    assert time_to(table) == {
        800: {"frames": 100_000, "wall_hours": 0.1},
        900: {"frames": 200_000, "wall_hours": 0.2},
    }


def test_time_to_never_reached_is_none() -> None:
    table = _table([100_000, 200_000], [799.99, float("nan")])
    assert time_to(table) == {800: None, 900: None}
    assert time_to(table.iloc[:0]) == {800: None, 900: None}


# -- publish on a tiny run ----------------------------------------------------------------------
def _recording_evaluate(monkeypatch: pytest.MonkeyPatch) -> list[tuple[range, bool]]:
    """Record the tracks and colours of every evaluation publish runs."""
    calls: list[tuple[range, bool]] = []
    evaluate = publish_module.evaluate

    def recorded(model: Any, env: EnvConfig, settings: EvalConfig, *args: Any, **kwargs: Any) -> Any:
        calls.append((settings.track_seeds, env.domain_randomize))
        return evaluate(model, env, settings, *args, **kwargs)

    monkeypatch.setattr(publish_module, "evaluate", recorded)
    return calls


def test_checkpoints_play_validation_tracks_and_randomized_colours_the_test_tracks(
    checkpointed_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _recording_evaluate(monkeypatch)
    results = tmp_path / "results"
    argv = ["publish", str(checkpointed_run), "--name", "beta", "--results-dir", str(results), "--episodes", "2"]
    code, _, err = run_cli([*argv, "--curve-points", "2", "--curve-episodes", "3"])
    assert code == 0, err
    validation = range(VALIDATION_TRACK_START, VALIDATION_TRACK_START + 3)
    test = range(TEST_TRACK_START, TEST_TRACK_START + 2)
    # Two kept checkpoints and the final model on the validation tracks; the final model on the
    # test tracks, in standard then randomized colours. Never the training seeds (0).
    assert calls == [(validation, False)] * 3 + [(test, False), (test, True)]

    folder = results / "models" / "beta"
    record = read_yaml(folder / "published.yaml")
    assert record["validation_curve"] == {
        "track_seeds": [validation[0], validation[-1]],
        "episodes": 3,
        "backend": "gymnasium",
        "scored": 3,
        "kept": 3,
    }
    scores = _rows(folder / "checkpoints.csv")
    assert [r["episodes"] for r in scores] == ["3", "3", "3"] and scores[-1]["model"] == "model.zip"
    reached = time_to(pd.read_csv(folder / "checkpoints.csv"))
    assert record["time_to"] == reached and list(reached) == [800, 900]

    standard = pd.read_csv(folder / "eval" / "episodes.csv")
    randomized = pd.read_csv(folder / "eval" / "randomized" / "episodes.csv")
    assert list(randomized.columns) == list(standard.columns)
    assert list(randomized["track_seed"]) == list(standard["track_seed"]) == list(test)
    assert not np.array_equal(randomized["return"], standard["return"])  # other colours, other episodes
    assert record["randomized"]["track_seeds"] == [test[0], test[-1]]
    assert record["randomized"]["mean"] == pytest.approx(randomized["return"].mean(), abs=1e-3)
    for key in ("std", "iqm", "success_rate", "lap_rate", "tile_fraction"):
        assert key in record["randomized"], key
    (model,) = published_models(results)
    assert model["randomized"]["mean"] == pytest.approx(randomized["return"].mean())

    # The report shows both beside the standard figures; an edited randomized file is refused.
    code, _, err = run_cli(["report", "--results-dir", str(results)])
    assert code == 0, err
    text = (results / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| [beta]"))
    cells = [f"{randomized['return'].mean():.1f} ± {randomized['return'].std(ddof=0):.1f}",
             time_to_text(reached[800]), time_to_text(reached[900])]  # fmt: skip
    assert row.endswith("| " + " | ".join(cells) + " |")
    assert "on the 3 validation tracks 2000000..2000002" in text and f"time to 800: {cells[1]}" in text
    randomized_csv = folder / "eval" / "randomized" / "episodes.csv"
    first_return = _rows(randomized_csv)[0]["return"]
    randomized_csv.write_text(randomized_csv.read_text().replace(f",{first_return},", ",1000.0,", 1))
    with pytest.raises(CrBenchError, match=r"randomized/episodes\.csv is not the evaluation beta was published with"):
        read_published(folder)


def test_curve_points_all_and_no_randomized(checkpointed_run: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    argv = ["publish", str(checkpointed_run), "--name", "beta", "--results-dir", str(results), "--episodes", "1"]
    code, _, err = run_cli([*argv, "--curve-points", "all", "--curve-episodes", "1", "--no-randomized"])
    assert code == 0, err
    folder = results / "models" / "beta"
    record = read_yaml(folder / "published.yaml")
    assert record["validation_curve"]["scored"] == 4 and record["validation_curve"]["kept"] == 3
    assert len(_rows(folder / "checkpoints.csv")) == 4
    assert record["randomized"] is None and not (folder / "eval" / "randomized").exists()
    code, _, err = run_cli(["report", "--results-dir", str(results)])
    assert code == 0, err
    row = next(line for line in (results / "README.md").read_text().splitlines() if line.startswith("| [beta]"))
    reached = [time_to_text(record["time_to"][score]) for score in (800, 900)]
    assert row.endswith(f"| n/a | {reached[0]} | {reached[1]} |")


def test_model_best_publishes_the_best_validation_point(checkpointed_run: Path, tmp_path: Path) -> None:
    """--model best: the scored point with the highest validation mean (the earliest of equals),
    with its frames and wall time; the run's own are recorded beside the choice."""
    results = tmp_path / "results"
    argv = ["publish", str(checkpointed_run), "--name", "best", "--results-dir", str(results), "--episodes", "1"]
    code, out, err = run_cli(
        [*argv, "--curve-points", "all", "--curve-episodes", "2", "--no-randomized", "--model", "best"]
    )
    assert code == 0, err
    folder = results / "models" / "best"
    scores = pd.read_csv(folder / "checkpoints.csv")
    best = scores.loc[scores["mean"] == scores["mean"].max()].iloc[0]  # rows in frames order
    record = read_yaml(folder / "published.yaml")
    selected = record["selected"]
    assert (selected["model"], selected["by"], selected["points"]) == (best["model"], "validation mean", 4)
    assert selected["run_frames"] == 800 and selected["run_wall_seconds"] >= record["wall_seconds"]
    assert record["frames"] == best["frames"] and read_yaml(folder / "progress.json")["frames_done"] == best["frames"]
    assert (pd.read_csv(folder / "curve.csv")["frames"] <= best["frames"]).all()
    assert f"best on the validation tracks: {best['model']}" in out
    code, _, err = run_cli(["verify", str(folder)])
    assert code == 0, err
    code, _, err = run_cli(["report", "--results-dir", str(results)])
    assert code == 0, err
    assert "the run's own 4 scored points" in (results / "README.md").read_text()
    assert "`cr-bench publish --model best`); the run trained 800 frames" in (results / "README.md").read_text()


def test_a_folder_published_before_these_fields_still_reports(checkpointed_run: Path, tmp_path: Path) -> None:
    """Folders without time_to, validation_curve or randomized (results/models/* of before) report n/a."""
    results = tmp_path / "results"
    argv = ["publish", str(checkpointed_run), "--name", "beta", "--results-dir", str(results), "--episodes", "1"]
    assert run_cli([*argv, "--curve-points", "0", "--curve-episodes", "1"])[0] == 0
    folder = results / "models" / "beta"
    record = read_yaml(folder / "published.yaml")
    for key in ("time_to", "validation_curve", "randomized"):
        del record[key]
    write_yaml(folder / "published.yaml", record)
    shutil.rmtree(folder / "eval" / "randomized")
    for old in sorted(REPO_MODELS.glob("*/published.yaml")):  # the committed ones of before, as they are
        if "time_to" not in read_yaml(old):
            shutil.copytree(old.parent, results / "models" / old.parent.name)
    code, _, err = run_cli(["report", "--results-dir", str(results)])
    assert code == 0, err
    text = (results / "README.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert rows and all(row.endswith("| n/a | n/a | n/a |") for row in rows)
    assert "kept checkpoints on the first tracks of the same held-out set" in text
    if (REPO_MODELS / "ppo-beta").is_dir():
        assert "| 844.4 ± 79.5 | 864.6 [854.2, 873.8] | 20% | n/a | n/a | n/a | n/a | n/a |" in text


def test_validation_tracks_never_overlap_the_training_seeds(tmp_path: Path) -> None:
    run = untrained_run(tmp_path / "run", model=b"not loaded", seed=VALIDATION_TRACK_START, n_envs=1)
    code, _, err = run_cli(["publish", str(run), "--name", "x", "--results-dir", str(tmp_path / "results")])
    assert code == 2 and "overlap the training seeds" in err and err.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_envpool_publishes_without_randomized_colours(tmp_path: Path) -> None:
    """EnvPool has no domain_randomize: publish says so and records none (as compare RUN_DIR... does)."""
    run = tmp_path / "run"
    argv = ["train", "ppo", "--frames", "400", "--out", str(run), *REAL_ENV, *TINY["ppo"]]
    code, _, err = run_cli([*argv, "--set", "eval.backend=envpool"])
    assert code == 0, err
    results = tmp_path / "results"
    argv = ["publish", str(run), "--name", "pool", "--results-dir", str(results), "--episodes", "2"]
    code, out, err = run_cli([*argv, "--curve-points", "0", "--curve-episodes", "2"])
    assert code == 0, err
    assert "no randomized colours: envpool has no domain_randomize" in out
    folder = results / "models" / "pool"
    record = read_yaml(folder / "published.yaml")
    assert record["randomized"] is None and not (folder / "eval" / "randomized").exists()
    assert record["validation_curve"]["backend"] == "envpool" and record["validation_curve"]["scored"] == 1


@pytest.mark.parametrize(("value", "message"), [("-1", "must be a count >= 0 or all"), ("some", "integer or all")])
def test_bad_curve_points(checkpointed_run: Path, tmp_path: Path, value: str, message: str) -> None:
    argv = ["publish", str(checkpointed_run), "--name", "x", "--results-dir", str(tmp_path), "--curve-points", value]
    code, _, err = run_cli(argv)
    assert code == 2 and err.startswith("cr-bench") and "error:" in err and message in err
    assert err.count("\n") == 1 and "--curve-points" in err


@pytest.mark.slow
def test_randomized_colours_on_real_carracing(trained_run: str, tmp_path: Path) -> None:
    """On CarRacing-v3 itself the randomized episodes are other episodes on the same tracks."""
    results = tmp_path / "results"
    argv = ["publish", trained_run, "--name", "real", "--results-dir", str(results), "--episodes", "1"]
    code, _, err = run_cli([*argv, "--curve-points", "0", "--curve-episodes", "1"])
    assert code == 0, err
    folder = results / "models" / "real"
    (standard,) = _rows(folder / "eval" / "episodes.csv")
    (randomized,) = _rows(folder / "eval" / "randomized" / "episodes.csv")
    assert standard["track_seed"] == randomized["track_seed"] and standard["return"] != randomized["return"]
