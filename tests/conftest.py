"""Shared fixtures: tiny budgets so real CarRacing runs finish in seconds."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from filelock import FileLock

from cr_bench.agents.registry import resolve_config
from cr_bench.agents.rundir import RunDir
from cr_bench.cli import WORKER_PRELOAD, main
from cr_bench.spec.loader import to_dict, write_yaml
from tests.fake_env import TINY_ENV

# Worker processes fork from multiprocessing's fork server, which imports its preload modules
# once; `cr-bench` sets them in main(). Tests that start workers without main() preload the same.
multiprocessing.set_forkserver_preload(WORKER_PRELOAD)

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


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Each test starts on one torch thread, as REAL_ENV's runs do: the suite runs on every core
    at once (pytest-xdist), where a second intra-op thread per test only spins (test_agents.py
    spends 6x the CPU on two). A test about threads sets them itself; so does a training, from
    its config (``torch_threads``, 2 by default)."""
    torch.set_num_threads(1)


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


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` made by ``build(folder)`` once per test session, whichever
    pytest-xdist worker asks first; the others wait for it and share it (a session fixture
    alone runs once per worker). For expensive inputs that tests only read or copy."""
    basetemp = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is a folder of the session's: that one is shared.
    session = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    folder, done = session / "built-once" / name, session / "built-once" / f"{name}.done"
    folder.parent.mkdir(exist_ok=True)
    with FileLock(session / "built-once" / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            build(folder)
            done.touch()
    return folder


def _train_ppo_beta(run_dir: Path) -> None:
    code, _, err = run_cli(
        ["train", "ppo-beta", "--frames", "800", "--out", str(run_dir), *REAL_ENV, *TINY["ppo-beta"]]
    )
    assert code == 0, err


@pytest.fixture(scope="session")
def _trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_once(tmp_path_factory, "ppo-beta", _train_ppo_beta)


@pytest.fixture
def trained_run(_trained_once: Path, tmp_path: Path) -> str:
    """A ppo-beta run trained on real CarRacing for 800 frames (trained once per session, by
    whichever worker needs it first); each test gets its own copy, so what one test writes into
    it no other test sees."""
    copy = tmp_path / "ppo-beta"
    shutil.copytree(_trained_once, copy)
    return str(copy)


@pytest.fixture(scope="module")
def checkpointed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ppo-beta for 800 frames on the tiny env, a checkpoint kept every 200 (4 kept: the last is
    the final model), evaluated on gymnasium; one per test module."""
    run = tmp_path_factory.mktemp("runs") / "ppo-beta"
    argv = ["train", "ppo-beta", "--frames", "800", "--out", str(run), *ONE_ENV, *TINY["ppo-beta"]]
    code, _, err = run_cli([*argv, "--set", "checkpoint_every_frames=200", "--set", "eval.backend=gymnasium"])
    assert code == 0, err
    return run
