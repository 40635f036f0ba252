"""Reproduction: bit for bit on one machine, ``cr-bench verify`` across machines.

Per-episode returns differ between CPUs (rounding amplified over 1000 frames), so nothing
here compares the committed models' episodes with the published ones: CI checks only what
holds on every CPU of the kind.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cr_bench.agents.models import load_model
from cr_bench.agents.registry import resolve_config
from cr_bench.agents.rundir import RunDir
from cr_bench.envs.make import make_env
from cr_bench.evaluation.episodes import check_model_fits, evaluate
from cr_bench.results.publish import read_published, sha256
from cr_bench.spec.loader import to_dict
from cr_bench.spec.run import EvalConfig
from tests.conftest import REAL_ENV, TINY, built_once, run_cli

COMMITTED = sorted(p.parent for p in (Path(__file__).parent.parent / "results" / "models").glob("*/published.yaml"))


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: content hash and modification time."""
    return {
        str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _train_and_publish(root: Path) -> None:
    run = root / "run"
    argv = ["train", "ppo", "--frames", "400", "--out", str(run), *REAL_ENV, *TINY["ppo"]]
    code, _, err = run_cli([*argv, "--set", "eval.backend=envpool"])
    assert code == 0, err
    argv = ["publish", str(run), "--name", "tiny", "--results-dir", str(root / "results"), "--episodes", "2"]
    code, _, err = run_cli([*argv, "--curve-points", "0", "--curve-episodes", "1"])
    assert code == 0, err


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ppo run published on 2 EnvPool tracks (fast), its final model scored on 1 validation track; made
    once per session, by whichever worker needs it first. Tests only read it."""
    return built_once(tmp_path_factory, "verify", _train_and_publish) / "results" / "models" / "tiny"


@pytest.fixture
def published_copy(published: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tiny"
    shutil.copytree(published, copy)
    return copy


def test_evaluation_is_bit_for_bit_repeatable(trained_run: str) -> None:
    """Same model file, tracks and settings, evaluated twice from a fresh load: identical episodes.

    On EnvPool for speed; test_cli evaluates twice on gymnasium, the reference.
    """
    run = RunDir(trained_run)
    config = run.read_config()

    def play() -> list[object]:
        model = load_model(config, str(run.model))
        tracks = EvalConfig(episodes=2, track_seed_start=1_000_000, backend="envpool", n_envs=2)
        return list(evaluate(model, config.env, tracks))

    assert play() == play()


def test_verify_replays_exactly_on_the_publishing_machine(published: Path) -> None:
    before = snapshot(published)
    code, out, err = run_cli(["verify", str(published)])
    assert code == 0, err
    assert "2 of 2 episodes replayed exactly" in out
    assert out.splitlines()[-1].startswith(f"verified: {published}: the new mean")
    assert snapshot(published) == before


def test_verify_a_run_of_the_published_tracks(published: Path) -> None:
    code, out, err = run_cli(["verify", str(published), "--episodes", "1", "--track-seed-start", "1000001"])
    assert code == 0, err
    assert "1 of 1 episodes replayed exactly" in out and "1 tracks (1000001..1000001)" in out


def test_verify_fails_outside_the_widened_interval(published_copy: Path) -> None:
    """A published figure the model does not reproduce: exit 1 and a clear last line; a wide margin passes."""
    episodes_csv = published_copy / "eval" / "episodes.csv"
    episodes = pd.read_csv(episodes_csv)
    episodes["return"] += 500.0
    episodes.to_csv(episodes_csv, index=False)
    record = yaml.safe_load((published_copy / "published.yaml").read_text())
    record["episodes_sha256"] = sha256(episodes_csv)
    (published_copy / "published.yaml").write_text(yaml.safe_dump(record, sort_keys=False))

    code, out, _ = run_cli(["verify", str(published_copy)])
    assert code == 1
    assert out.splitlines()[-1].startswith("NOT verified") and "outside the published 95% CI" in out
    assert run_cli(["verify", str(published_copy), "--margin", "1000"])[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--episodes", "3"], "was published on tracks 1000000..1000001"),
        (["--track-seed-start", "999999"], "was published on tracks 1000000..1000001"),
        (["--track-seed-start", "1000001", "--episodes", "2"], "was published on tracks"),
        (["--margin", "-1"], "--margin: must be a finite number >= 0"),
        (["--margin", "nan"], "--margin: must be a finite number >= 0"),
    ],
)
def test_verify_bad_input(published: Path, argv: list[str], message: str) -> None:
    code, _, err = run_cli(["verify", str(published), *argv])
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_verify_refuses_tracks_the_model_trained_on(tmp_path: Path) -> None:
    """Issue 27's one held-out rule in verify: published tracks that overlap the training seeds
    (a config.yaml edited by hand) are no test figure to check; refused before any episode."""
    folder = tmp_path / "model"
    shutil.copytree(COMMITTED[0], folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["seed"] = 1_000_000 - config["n_envs"] + 2  # its last env seeds track 1,000,001
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    code, out, err = run_cli(["verify", str(folder), "--episodes", "2"])
    assert code == 2 and err.count("\n") == 1 and not out, err
    assert f"verifying {folder}: track seeds 1,000,000..1,000,001 overlap the training seeds" in err


def test_verify_needs_an_intact_published_folder(published_copy: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(["verify", str(tmp_path / "missing")])
    assert code == 2 and "run directory not found" in err
    episodes_csv = published_copy / "eval" / "episodes.csv"
    episodes_csv.write_text(episodes_csv.read_text() + "1000002,1.0,1000,125\n")
    code, _, err = run_cli(["verify", str(published_copy)])
    assert code == 2 and "is not the evaluation tiny was published with" in err
    (published_copy / "published.yaml").unlink()
    code, _, err = run_cli(["verify", str(published_copy)])
    assert code == 2 and "is not a published model folder" in err


def test_eval_never_writes_in_a_published_folder(published: Path) -> None:
    """Was: `cr-bench eval results/models/NAME --episodes 1` overwrote the published evaluation."""
    before = snapshot(published)
    for out in ([], ["--out", str(published / "eval")], ["--out", str(published)], ["--out", str(published / "x")]):
        code, _, err = run_cli(["eval", str(published), "--episodes", "1", *out])
        assert code == 2 and "is a published model folder" in err and "cr-bench verify" in err, err
    assert snapshot(published) == before


@pytest.mark.parametrize("folder", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_model_is_intact(folder: Path) -> None:
    """Its evaluation is the published one, its config resolves, and the model loads and fits the pipeline."""
    read_published(folder)
    config = RunDir(folder).read_config()
    resolve_config(config.agent, to_dict(config))
    model = load_model(config, str(folder / "model.zip"))
    env = make_env(config.env, training=False)
    try:
        check_model_fits(model, env)
    finally:
        env.close()


@pytest.mark.parametrize("folder", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_model_verifies_on_a_track(folder: Path) -> None:
    """verify runs end to end on the committed model and touches nothing; whether a one-track
    mean falls inside the interval depends on the CPU, so either verdict is accepted here (and
    a second track would only add its 1000 gymnasium frames)."""
    before = snapshot(folder)
    code, out, err = run_cli(["verify", str(folder), "--episodes", "1"])
    assert code in (0, 1), err
    assert "published: mean" in out and "new:       mean" in out
    assert out.splitlines()[-1].split(":")[0] in ("verified", "NOT verified")
    assert snapshot(folder) == before
