"""Fault injection: Ctrl-C (SIGINT) and kill -9 at chosen points of train and compare, each
followed by a resume or rerun that must lose nothing finished.

cr-bench runs in a subprocess. Where the fault can come from inside, the point is exact:
``tests/fault_injection.py`` makes the process signal itself at the N-th call of a chosen
function. Where it must come from outside (the driver of ``compare --workers 2``, a second
command against a live run), the test waits for a file the code writes, never a fixed sleep.
Budgets are tiny: tests/conftest.py's TINY and ONE_ENV (gymnasium, one env).

Other issues add their cases here, with the same helpers; tune's go in the last section.
"""

from __future__ import annotations

import csv
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cr_bench.agents.rundir import RunDir
from tests.conftest import ONE_ENV, TINY, run_cli
from tests.test_compare import BACKEND, TINY_SET

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux")

REPO = Path(__file__).resolve().parent.parent
AGENT = "ppo"
TRAIN = ["train", AGENT, *ONE_ENV, *TINY[AGENT]]
ENDLESS = ["--frames", "1000000"]
"""A budget no test reaches: the fault, not the budget, ends the first process."""
TIMEOUT = 180.0
"""Seconds any one phase may take on a loaded 2-core machine."""

# Fault points: functions of ours or of SB3, as module:qualname.
FIRST_RESET = "stable_baselines3.common.vec_env.dummy_vec_env:DummyVecEnv.reset"
"""Start-up: ``learn`` resets the envs before any callback is initialised."""
PROGRESS_SAVED = "cr_bench.agents.rundir:RunDir.write_progress"
"""The end of a checkpoint: model.zip is saved, then progress.json."""


# -- Helpers ---------------------------------------------------------------------------------
def run_faulted(
    signal_name: str, at: str, argv: list[str], call: int = 1, after: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``cr-bench argv`` in a subprocess that sends itself SIG``signal_name`` at a call of ``at``."""
    options = ["--signal", signal_name, "--at", at, "--call", str(call), *(["--after"] if after else [])]
    return subprocess.run(
        [sys.executable, "-m", "tests.fault_injection", *options, "--", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def start(argv: list[str], log: Path) -> subprocess.Popen[str]:
    """Start ``cr-bench argv`` in its own session (so a Ctrl-C can go to its whole group).

    Its output goes to the file ``log``, not a pipe: children that outlive it (the bug this
    module looks for) would hold a pipe open and hang whoever reads it to the end.
    """
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "cr_bench.cli", *argv],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` while ``process`` lives; fail if it exits first."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process.poll() is None, f"exited {process.returncode} before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def training(run: Path, sessions: int = 1) -> bool:
    """Whether ``learn`` has got past its start-up: SB3 opens the TensorBoard log after the first
    reset, a new file in the run's one folder each time (``sessions``: the how-manieth training)."""
    return len(list((run / "tb").rglob("events.out.tfevents.*"))) >= sessions


def all_training(runs: list[Path], sessions: int = 1) -> bool:
    """Whether every one of ``runs`` is :func:`training` (its ``sessions``-th training)."""
    return all(training(run, sessions) for run in runs)


def progress(run: Path) -> dict[str, Any]:
    return RunDir(run).read_progress()


def curve_rows(run: Path) -> list[dict[str, str]]:
    with (run / "curve.csv").open() as handle:
        return list(csv.DictReader(handle))


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` in the process tree (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: set[int] = set()
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.add(child)
            queue.append(child)
    return found


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie has exited."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until_gone(pids: set[int], timeout: float = 60.0) -> set[int]:
    """Wait for ``pids`` to exit; return those still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while {pid for pid in pids if alive(pid)} and time.monotonic() < deadline:
        time.sleep(0.2)
    return {pid for pid in pids if alive(pid)}


def kill_all(pids: set[int]) -> None:
    """Clean up after a failed test: SIGKILL processes seen alive a moment ago."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def kill_tree(process: subprocess.Popen[str]) -> None:
    """Clean up after a failed test: SIGKILL a live process and everything below it."""
    family = descendants(process.pid)
    process.kill()
    process.wait()
    kill_all(family)


def resume_finishes(run: Path, frames: int) -> dict[str, Any]:
    """``cr-bench train --resume --frames frames`` exits 0 with the run finished; its progress."""
    code, _, err = run_cli(["train", AGENT, "--out", str(run), "--resume", "--frames", str(frames)])
    assert code == 0, err
    done = progress(run)
    assert done["finished"] and frames <= done["frames_done"] < frames + 16
    return done


def one_tensorboard_log(run: Path) -> bool:
    """A run trained by one process at a time, resumed or not, logs to a single TensorBoard folder."""
    return len(list((run / "tb").iterdir())) == 1


# -- train -----------------------------------------------------------------------------------
def test_ctrl_c_during_start_up_exits_130_and_the_run_resumes(tmp_path: Path) -> None:
    """Issue 10, fault 3: SIGINT in learn's first env reset gave an AttributeError and exit 1."""
    run = tmp_path / "run"
    result = run_faulted("INT", FIRST_RESET, [*TRAIN, *ENDLESS, "--out", str(run)])
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert f"continue it with `cr-bench train {AGENT} --out {run} --resume`" in result.stderr
    assert (run / "model.zip").is_file() and progress(run)["frames_done"] == 0
    resume_finishes(run, 150)
    assert one_tensorboard_log(run)


@pytest.mark.parametrize("existed", [False, True])
def test_ctrl_c_before_anything_is_saved_says_so(tmp_path: Path, existed: bool) -> None:
    """Issue 27: Ctrl-C before the env and model existed left an empty folder and advised
    --resume, which then refused it (no config.yaml). The folder train created goes; the
    message names the command that starts again."""
    run = tmp_path / "runs" / "run"
    if existed:
        run.mkdir(parents=True)
    argv = [*TRAIN, *ENDLESS, "--out", str(run)]
    result = run_faulted("INT", "cr_bench.agents.training:make_vec_env", argv)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr and "--resume" not in result.stderr
    assert "nothing was saved" in result.stderr and shlex.join(["cr-bench", *argv]) in result.stderr
    assert run.is_dir() == existed and (tmp_path / "runs").is_dir() == existed
    if existed:
        assert not any(run.iterdir())


def test_kill_9_before_the_first_checkpoint_leaves_a_restartable_run(tmp_path: Path) -> None:
    """Issue 10, faults 1 and 2: a live run is refused to a second process; once it is killed
    (before any checkpoint: config.yaml, no model), --resume and a fresh train both restart it."""
    run = tmp_path / "run"
    process = start([*TRAIN, *ENDLESS, "--out", str(run)], tmp_path / "train.log")
    try:
        wait_until(lambda: training(run), process, "training")
        for argv in (["train", AGENT, "--out", str(run), "--resume"], [*TRAIN, "--out", str(run)]):
            code, _, err = run_cli(argv)
            assert code == 2 and f"pid {process.pid}" in err, err
    finally:
        kill_tree(process)  # the fault, kill -9 (and the clean-up, should an assertion fail)
    assert (run / "config.yaml").is_file() and not (run / "model.zip").exists()
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)

    resume_finishes(run, 150)  # from frame 0, with the saved config
    code, _, err = run_cli([*TRAIN, "--frames", "150", "--out", str(copy)])
    assert code == 0, err
    for restarted in (run, copy):
        assert one_tensorboard_log(restarted)
        assert all(int(row["frames"]) <= progress(restarted)["frames_done"] for row in curve_rows(restarted))
        assert len((restarted / "command.txt").read_text().splitlines()) == 1


def test_kill_9_after_a_wall_time_checkpoint_resumes_from_it(tmp_path: Path) -> None:
    """Issue 10, fault 2: with only frame checkpoints (200,000 frames) a kill -9 lost minutes of work.
    A wall-time save (checkpoint_every_seconds) updates model.zip without keeping a checkpoint."""
    run = tmp_path / "run"
    argv = [*TRAIN, *ENDLESS, "--out", str(run), "--set", "checkpoint_every_seconds=0.001"]
    result = run_faulted("KILL", PROGRESS_SAVED, argv, after=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    saved = progress(run)
    assert saved["frames_done"] > 0 and not saved["finished"]
    assert not (run / "checkpoints").exists()
    finished_episodes = curve_rows(run)
    resume_finishes(run, saved["frames_done"] + 100)
    assert curve_rows(run)[: len(finished_episodes)] == finished_episodes
    assert one_tensorboard_log(run)


def test_resume_drops_the_curve_rows_of_lost_work(tmp_path: Path) -> None:
    """Episodes recorded after the last checkpoint were trained by a model that is gone: a resume
    replays those frames, so their rows would count twice."""
    run = RunDir(tmp_path)
    run.curve.write_text("frames,wall_seconds,true_return,shaped_return,episode_frames\n"
                         "100,1.0,-50.0,-1.0,100\n200,2.0,-40.0,-1.0,100\n300,3.0,-30.0,-1.0,100\n")  # fmt: skip
    run.trim_curve(200)
    assert [row["frames"] for row in curve_rows(tmp_path)] == ["100", "200"]


# -- compare ---------------------------------------------------------------------------------
def write_suite(folder: Path, frames: int) -> Path:
    """Two tiny runs of one agent, on TinyCarRacing with one env each."""
    path = folder / "faults.yaml"
    agent = {"name": "tiny", "agent": AGENT, "set": TINY_SET}
    suite = {
        "name": "faults",
        "frames": frames,
        "seeds": [0, 1],
        "agents": [agent],
        "eval": {"episodes": 1, "backend": BACKEND, "randomized": False, "n_envs": 1},
        "baselines": [],
    }
    path.write_text(yaml.safe_dump(suite))
    return path


def compare_argv(folder: Path) -> list[str]:
    return ["compare", "--suite", str(folder / "faults.yaml"), "--workers", "2",
            "--results-dir", str(folder / "results"), "--runs-dir", str(folder / "runs")]  # fmt: skip


def test_compare_workers_stop_with_their_driver_and_a_rerun_resumes(tmp_path: Path) -> None:
    """Issue 10, fault 1: kill -9 of `compare --workers 2` left its workers training as orphans,
    and a rerun trained second copies into the same folders (tb/ppo_1 and tb/ppo_2).

    Ctrl-C or kill -9 of the driver stops every worker, each saving its run; the rerun resumes them.
    Both faults in one sequence, each driver's start-up serving one: Ctrl-C the first driver, kill -9
    the same command run again once its workers have resumed training, then rerun with a budget.
    """
    write_suite(tmp_path, frames=1_000_000)
    runs = [tmp_path / "runs" / "compare" / "faults" / "tiny" / f"seed-{seed}" for seed in (0, 1)]
    saved: list[dict[str, Any]] = [{"frames_done": 0}] * len(runs)
    for session, fault in enumerate(["ctrl-c", "kill -9"], start=1):
        log = tmp_path / f"compare-{session}.log"
        driver = start(compare_argv(tmp_path), log)
        try:
            wait_until(functools.partial(all_training, runs, session), driver, "both workers training")
            family = descendants(driver.pid)  # workers, their fork server, resource tracker
            if fault == "ctrl-c":
                os.killpg(driver.pid, signal.SIGINT)
                assert driver.wait(timeout=TIMEOUT) == 130, log.read_text()
                assert "run the same command again to continue" in log.read_text(), log.read_text()
                assert "--resume" not in log.read_text(), log.read_text()
            else:
                driver.kill()
                driver.wait()
            orphans = wait_until_gone(family)
            kill_all(orphans)
            assert not orphans, f"workers outlived their driver ({fault})"
            assert "Traceback" not in log.read_text(), log.read_text()
        finally:
            if driver.poll() is None:  # failed before the fault
                kill_tree(driver)
        before, saved = saved, [progress(run) for run in runs]
        for run, done in zip(runs, saved, strict=True):
            assert (run / "model.zip").is_file() and not done["finished"]
        # The same command again resumed the runs: no frame trained before the fault is lost.
        assert all(done["frames_done"] >= old["frames_done"] for done, old in zip(saved, before, strict=True))

    budget = max(done["frames_done"] for done in saved) + 100
    write_suite(tmp_path, frames=budget)
    code, _, err = run_cli(compare_argv(tmp_path))
    assert code == 0, err
    command = shlex.join(["cr-bench", *compare_argv(tmp_path)])
    for seed, run in enumerate(runs):
        assert progress(run)["finished"] and progress(run)["frames_done"] >= budget
        assert one_tensorboard_log(run)
        which = f"{command} (run tiny seed {seed}"
        assert (run / "command.txt").read_text().splitlines() == [f"{which})", *[f"{which}, resumed)"] * 2]
    assert (tmp_path / "results" / "faults" / "summary.csv").is_file()


# -- tune ------------------------------------------------------------------------------------
# Cases for `cr-bench tune` go here, with the helpers above: run_faulted for a signal at an
# exact call, start + wait_until for a signal from outside, descendants and wait_until_gone
# for worker processes (--n-jobs), and a rerun of the same command that must lose no
# finished trial.
TRIAL_TRAINING = "cr_bench.runner.tuning:train"
"""A trial's training, called after its parameters are sampled."""


def _tune_argv(tmp_path: Path) -> list[str]:
    """`cr-bench tune ppo` for 2 tiny trials (trial 0 is the base config) on a journal in tmp_path."""
    from tests.test_tuning import SMALL_SPACE, TINY_BASE

    space, base = tmp_path / "space.yaml", tmp_path / "base.yaml"
    space.write_text(yaml.safe_dump(SMALL_SPACE))
    base.write_text(yaml.safe_dump({"agent": "ppo", **TINY_BASE}))
    return ["tune", "ppo", "--trials", "2", "--frames-per-trial", "160", "--evals-per-trial", "1",
            "--value-evals", "1", "--eval-episodes", "1", "--final-eval-episodes", "1", "--space", str(space),
            "--config", str(base), "--results-dir", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"),
            "--study-name", "faults", "--n-jobs", "1"]  # fmt: skip


def _tune_trials(tmp_path: Path) -> list[Any]:
    import optuna

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "results" / "tune" / "faults" / "journal.log"))
    )
    return optuna.load_study(study_name="faults", storage=storage).get_trials()


@pytest.mark.parametrize("fault", ["KILL", "INT"])
def test_tune_killed_or_interrupted_in_a_trial_resumes_without_losing_one(tmp_path: Path, fault: str) -> None:
    """A fault in trial 1's training keeps trial 0; the rerun runs trial 1's parameters again
    and the study ends with exactly the asked trials counted."""
    from optuna.trial import TrialState

    from cr_bench.runner.study import interrupted

    argv = _tune_argv(tmp_path)
    faulted = run_faulted(fault, TRIAL_TRAINING, argv, call=2)
    assert faulted.returncode == (-signal.SIGKILL if fault == "KILL" else 130), faulted.stderr
    if fault == "INT":  # was: "continue ... with --resume", a flag tune does not have
        assert "run the same command again to continue" in faulted.stderr and "--resume" not in faulted.stderr
    before = _tune_trials(tmp_path)
    assert before[0].state == TrialState.COMPLETE and before[1].params
    code, out, err = run_cli(argv)
    assert code == 0, err
    trials = _tune_trials(tmp_path)
    assert trials[0].value == before[0].value  # the finished trial is kept as it was
    assert interrupted(trials[1]) and trials[2].params == before[1].params
    assert trials[2].state == TrialState.COMPLETE and "faults: 2 trials" in out
