"""Shared fixtures: tiny budgets so real CarRacing runs finish in seconds."""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cr_bench.agents.registry import resolve_config
from cr_bench.agents.rundir import RunDir
from cr_bench.cli import main
from cr_bench.spec.loader import to_dict, write_yaml
from tests.fake_env import TINY_ENV

# Per-agent overrides that make a real run take a few seconds on one core.
TINY = {
    "ppo-beta": ["--set", "algo.n_steps=16", "--set", "algo.batch_size=16", "--set", "algo.n_epochs=1"],
    "ppo": ["--set", "algo.n_steps=16", "--set", "algo.batch_size=16", "--set", "algo.n_epochs=1"],
    "ppo-gaussian": ["--set", "algo.n_steps=32", "--set", "algo.batch_size=32", "--set", "algo.n_epochs=1"],
    "dqn": ["--set", "algo.learning_starts=50", "--set", "algo.buffer_size=1000"],
}
REAL_ENV = ["--n-envs", "1", "--set", "vec_env=dummy", "--backend", "gymnasium", "--set", "torch_threads=1"]
"""One real CarRacing-v3 env on gymnasium: for the end-to-end tests. One torch thread: the
suite runs on every core at once (pytest-xdist), where a second thread per test only spins."""
ONE_ENV = [*REAL_ENV, *TINY_ENV, "--set", "eval.n_envs=1"]
"""One :class:`~tests.fake_env.TinyCarRacing` env: for orchestration tests (no Box2D)."""


def run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """Run ``cr-bench argv`` in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def listing(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, relative: a refused command leaves it as it was."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def untrained_run(folder: Path, model: bytes | None = None, **changes: Any) -> Path:
    """A finished-looking ppo run folder without a real model: its resolved config (800 frames,
    seed 0 and 4 envs, so training seeds 0..3, and ``changes``), a progress.json of those frames
    and, if given, ``model`` as model.zip. Enough for what commands check before they load a model."""
    run = RunDir(folder)
    run.path.mkdir(parents=True)
    write_yaml(run.config, to_dict(resolve_config("ppo", {"frames": 800, "seed": 0, "n_envs": 4, **changes})))
    run.write_progress(800, 1.0, finished=True)
    if model is not None:
        run.model.write_bytes(model)
    return run.path


@pytest.fixture(scope="session")
def _trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "ppo-beta"
    code, _, err = run_cli(
        ["train", "ppo-beta", "--frames", "800", "--out", str(run_dir), *REAL_ENV, *TINY["ppo-beta"]]
    )
    assert code == 0, err
    return run_dir


@pytest.fixture
def trained_run(_trained_once: Path, tmp_path: Path) -> str:
    """A ppo-beta run trained on real CarRacing for 800 frames (trained once per session); each
    test gets its own copy, so what one test writes into it no other test sees."""
    copy = tmp_path / "ppo-beta"
    shutil.copytree(_trained_once, copy)
    return str(copy)
