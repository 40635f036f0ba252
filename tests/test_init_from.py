"""cr-bench train --init-from: a new run that starts from another run's model under its own config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from cr_bench.agents.init_from import INIT_FILE, find_start, load_weights, read_weights
from cr_bench.agents.models import build_model, load_model
from cr_bench.agents.registry import resolve_config
from cr_bench.agents.rundir import RunDir
from cr_bench.envs.make import make_vec_env
from cr_bench.runner.compare import compare_suite
from cr_bench.spec.loader import read_yaml
from tests.conftest import ONE_ENV, TINY, listing, run_cli
from tests.test_compare import TINY_SET, _suite

EVERY_200 = ["--set", "checkpoint_every_frames=200"]
FORK = [*ONE_ENV, *TINY["ppo"], "--set", "env.shaping.no_progress_window=0", "--set", "algo.learning_rate=3e-4"]


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


def test_a_run_starts_from_another_and_counts_its_frames(checkpointed_run: Path, tmp_path: Path) -> None:
    """The new run trains on under its own config from the source's weights: its folder starts
    with the source's progress, curve, checkpoints and commands, and records where it came from."""
    source = RunDir(checkpointed_run)
    start = find_start(source.path)
    new_config = resolve_config("ppo", {"n_envs": 1, "vec_env": "dummy", "env": {"backend": "gymnasium"}})
    env = make_vec_env(new_config.env, 1, seed=0, vec_env="dummy")
    model = build_model(new_config, env)
    load_weights(model, read_weights(start), start)
    saved = load_model(start.config, str(start.model))
    assert all(torch.equal(value, _weights(saved.policy)[name]) for name, value in _weights(model.policy).items())
    env.close()

    out = tmp_path / "fork"
    code, out_text, err = run_cli(
        ["train", "ppo", "--init-from", str(source.path), "--frames", "1000", "--out", str(out), *FORK]
    )
    assert code == 0, err
    assert out_text.startswith("training ppo seed 0")
    run = RunDir(out)
    assert run.read_progress()["frames_done"] >= 1000 and run.read_progress()["wall_seconds"] >= start.wall_seconds
    curve, before = pd.read_csv(run.curve), pd.read_csv(source.curve)
    pd.testing.assert_frame_equal(curve.iloc[: len(before)], before)  # the source's episodes come first
    assert (curve["frames"].iloc[len(before) :] > start.frames).all()
    assert [c["frames_done"] for c in run.list_checkpoints()][:4] == [
        c["frames_done"] for c in source.list_checkpoints()
    ]
    recorded = read_yaml(run.path / INIT_FILE)
    assert recorded["frames"] == start.frames and recorded["config"]["env"]["shaping"]["no_progress_window"] == 100
    config = run.read_config()
    assert config.env.shaping.no_progress_window == 0 and config.algo["learning_rate"] == 3e-4
    commands = (run.path / "command.txt").read_text().splitlines()
    assert commands[0].startswith("cr-bench train ppo-beta") and "--init-from" in commands[-1]

    # Killed before its first save, it starts from the same model again, not from scratch.
    run.model.unlink()
    code, _, err = run_cli(["train", "ppo", "--out", str(out), "--resume", "--frames", "1100"])
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(run.curve).iloc[: len(before)], before)
    assert run.read_progress()["frames_done"] >= 1100


def test_a_kept_checkpoint_is_a_start(checkpointed_run: Path, tmp_path: Path) -> None:
    first = sorted((checkpointed_run / "checkpoints").glob("frames-*.zip"))[0]
    code, _, err = run_cli(
        ["train", "ppo", "--init-from", str(first), "--frames", "600", "--out", str(tmp_path / "f"), *FORK, *EVERY_200]
    )
    assert code == 0, err
    start = find_start(first)
    assert start.frames < 400 and read_yaml(tmp_path / "f" / INIT_FILE)["model"] == str(first)
    curve = pd.read_csv(tmp_path / "f" / "curve.csv")
    kept = [round(c["frames_done"], -2) for c in RunDir(tmp_path / "f").list_checkpoints()]
    assert kept[:3] == [200, 400, 600] and curve["frames"].is_monotonic_increasing  # the first is the source's


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "env.frame_stack=2"], "the network would differ in env.frame_stack"),
        (["--set", "policy.features_dim=64"], "the network would differ in policy.features_dim"),
        (["--frames", "400"], "--frames must be more (the total budget)"),
    ],
)
def test_a_start_that_cannot_continue_is_refused(
    checkpointed_run: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    argv = ["train", "ppo", "--init-from", str(checkpointed_run), "--frames", "1000", "--out", str(tmp_path / "f")]
    code, _, err = run_cli([*argv, *FORK, *extra])
    assert code == 2 and err.startswith("cr-bench: error: ") and message in err and err.count("\n") == 1
    assert listing(tmp_path) == []


def test_a_run_in_progress_is_no_start_and_ppo_v1_continues_ppo(checkpointed_run: Path, tmp_path: Path) -> None:
    """A run still training moves its model.zip on (its kept checkpoints do not). ppo-v1 and ppo
    differ only in defaults: one continues the other's run (here a ppo-beta, i.e. ppo-v1, run)."""
    running = tmp_path / "running"
    shutil.copytree(checkpointed_run, running)
    RunDir(running).write_progress(800, 1.0, finished=False)
    argv = ["train", "ppo", "--init-from", str(running), "--frames", "1000", "--out", str(tmp_path / "f"), *FORK]
    code, _, err = run_cli(argv)
    assert code == 2 and "the run is not finished (800 of 800 frames)" in err
    code, _, err = run_cli([*argv[:3], str(checkpointed_run), *argv[4:]])
    assert code == 0, err


def test_init_from_needs_a_model(tmp_path: Path) -> None:
    code, _, err = run_cli(["train", "ppo", "--init-from", str(tmp_path), "--out", str(tmp_path / "f"), *FORK])
    assert code == 2 and "no model.zip" in err
    code, _, err = run_cli(["train", "ppo", "--init-from", str(tmp_path / "x.zip"), *FORK])
    assert code == 2 and "not a run folder or a kept checkpoint" in err


def test_a_suite_starts_its_runs_from_another_suites(tmp_path: Path) -> None:
    """A suite agent's ``init_from`` (``{seed}``: each run's seed) forks the other suite's runs;
    one that cannot continue is refused before anything trains."""
    agents = [{"name": "beta", "agent": "ppo", "set": TINY_SET}]
    results, runs = tmp_path / "results", tmp_path / "runs"
    compare_suite(_suite(tmp_path, frames=80, seeds=[0], agents=agents, baselines=[]), 1, results, runs, "c")
    source = runs / "compare" / "tiny" / "beta" / "seed-{seed}"
    fork = [{"name": "fork", "agent": "ppo", "set": TINY_SET, "init_from": str(source)}]
    later = tmp_path / "later"
    later.mkdir()
    compare_suite(_suite(later, name="later", frames=160, seeds=[0], agents=fork, baselines=[]), 1, results, runs, "c")
    run = RunDir(runs / "compare" / "later" / "fork" / "seed-0")
    assert read_yaml(run.path / INIT_FILE)["source"] == str(source).format(seed=0)
    assert run.read_progress()["frames_done"] >= 160 and run.read_config().frames == 160

    bad = [{**fork[0], "name": "bad", "set": {**TINY_SET, "env": {**TINY_SET["env"], "frame_stack": 2}}}]
    code, _, err = run_cli(["compare", "--suite", str(_suite(later, name="bad", frames=160, seeds=[0], agents=bad)),
                            "--runs-dir", str(runs), "--results-dir", str(results)])  # fmt: skip
    assert code == 2 and "the network would differ in env.frame_stack" in err
    assert not (runs / "compare" / "bad").exists() or not list((runs / "compare" / "bad").rglob("model.zip"))
