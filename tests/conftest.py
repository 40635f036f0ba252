"""Shared fixtures: tiny budgets so real CarRacing runs finish in seconds."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import pytest

from cr_bench.cli import main

# Per-agent overrides that make a real run take a few seconds on one core.
TINY = {
    "ppo-beta": ["--set", "algo.n_steps=16", "--set", "algo.batch_size=16", "--set", "algo.n_epochs=1"],
    "ppo": ["--set", "algo.n_steps=16", "--set", "algo.batch_size=16", "--set", "algo.n_epochs=1"],
    "ppo-gaussian": ["--set", "algo.n_steps=32", "--set", "algo.batch_size=32", "--set", "algo.n_epochs=1"],
    "dqn": ["--set", "algo.learning_starts=50", "--set", "algo.buffer_size=1000"],
}
ONE_ENV = ["--n-envs", "1", "--set", "vec_env=dummy", "--backend", "gymnasium"]


def run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """Run ``cr-bench argv`` in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ppo-beta run trained for 800 frames, shared by the eval and record tests."""
    run_dir = str(tmp_path_factory.mktemp("runs") / "ppo-beta")
    code, _, err = run_cli(["train", "ppo-beta", "--frames", "800", "--out", run_dir, *ONE_ENV, *TINY["ppo-beta"]])
    assert code == 0, err
    return run_dir
