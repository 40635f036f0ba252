"""Training: build env and model from a RunConfig, learn for a frame budget, write a run directory.

The run directory's layout and files are :class:`cr_bench.agents.rundir.RunDir`'s.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import os
import platform
import sys
import time
from collections import deque
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from cr_bench import progress
from cr_bench.agents.algorithms import FrameProgress
from cr_bench.agents.init_from import (
    Start,
    Weights,
    check_compatible,
    find_start,
    load_weights,
    read_start,
    read_weights,
    seed_run,
)
from cr_bench.agents.levers import uses_levers
from cr_bench.agents.models import build_model, load_model, set_torch_threads
from cr_bench.agents.registry import get_agent
from cr_bench.agents.run_state import legacy, load_replay_buffer, load_reward_stats, save_replay_buffer
from cr_bench.agents.rundir import CURVE_COLUMNS, PUBLISHED_MARKER, RunDir, training_lock
from cr_bench.envs.make import make_vec_env
from cr_bench.errors import CrBenchError
from cr_bench.results.throughput import machine_text
from cr_bench.spec.loader import to_dict, write_yaml
from cr_bench.spec.run import RunConfig

_PACKAGES = [
    "cr-bench",
    "torch",
    "stable-baselines3",
    "sb3-contrib",
    "gymnasium",
    "numpy",
    "box2d",
    "envpool",
    "optuna",
]


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide a run's numbers."""
    versions = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
    }
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


class FrameCounter:
    """Counts raw env frames across a VecEnv from ``info["episode_frames"]``.

    Each info holds the frames since its env's reset (including reset no-ops); the
    difference from the previous step is what the env consumed.
    """

    def __init__(self, n_envs: int) -> None:
        self._last = np.zeros(n_envs, dtype=np.int64)

    def update(self, infos: Sequence[dict[str, Any]], dones: np.ndarray) -> int:
        """Frames consumed by the step that returned ``infos`` and ``dones``."""
        frames = np.array([info["episode_frames"] for info in infos], dtype=np.int64)
        new_frames = int((frames - self._last).sum())
        self._last = np.where(dones, 0, frames)
        return new_frames


class TrainingMonitor(BaseCallback):
    """Counts env frames, writes the training curve, checkpoints, and stops at the budget.

    Frames come from ``info["episode_frames"]`` (raw frames since reset, recorded by
    :class:`~cr_bench.envs.wrappers.EpisodeScore`), so action repeat and reset no-ops are
    counted exactly. Checkpoints come every ``checkpoint_every_frames`` frames (kept in
    checkpoints/ when ``keep_checkpoints`` is set) and, in between, whenever
    ``checkpoint_every_seconds`` of wall time have passed since the last one (model.zip only).
    """

    def __init__(self, run: RunDir, config: RunConfig, wall_offset: float) -> None:
        super().__init__()
        self.run, self.budget = run, config.frames
        self.checkpoint_every = config.checkpoint_every_frames
        self.checkpoint_every_seconds = config.checkpoint_every_seconds
        self.keep_checkpoints = config.keep_checkpoints
        self.wall_offset = wall_offset
        self.recent_true: deque[float] = deque(maxlen=20)
        self.started = time.monotonic()
        self._curve_file: Any = None
        self._curve: Any = None
        self._bar: tqdm | None = None
        self._counter = FrameCounter(0)
        self._next_checkpoint = 0
        self._frames_at_start = 0
        self._next_timed_checkpoint = self.started + self.checkpoint_every_seconds

    @property
    def frames_done(self) -> int:
        return int(self.frame_model.frames_done)

    @property
    def frame_model(self) -> FrameProgress:
        """The model trained, which counts its frames."""
        assert isinstance(self.model, FrameProgress)
        return self.model

    def wall_seconds(self) -> float:
        return self.wall_offset + time.monotonic() - self.started

    def _on_training_start(self) -> None:
        new_file = not self.run.curve.exists()
        self._curve_file = self.run.curve.open("a", newline="")
        self._curve = csv.writer(self._curve_file)
        if new_file:
            self._curve.writerow(CURVE_COLUMNS)
        self._counter = FrameCounter(self.training_env.num_envs)
        self._next_checkpoint = (self.frames_done // self.checkpoint_every + 1) * self.checkpoint_every
        self._frames_at_start = self.frames_done  # this session's speed counts from here
        # leave=None: kept when it is the only bar, cleared under tune's bar of trials
        self._bar = progress.bar(self.budget, "frame", initial=self.frames_done, unit_scale=True, leave=None)

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        new_frames = self._counter.update(infos, dones)
        self.frame_model.frames_done += new_frames
        for info, done in zip(infos, dones, strict=True):
            if done:
                self._record_episode(info)
        if self._bar is not None:
            self._bar.update(new_frames)
        if self.frames_done >= self._next_checkpoint:
            self.checkpoint(finished=False)
            if self.keep_checkpoints:
                self.run.keep_checkpoint(self.frames_done, self.wall_seconds())
            self._next_checkpoint += self.checkpoint_every
            progress.log_line(self._bar, self._checkpoint_line())
        elif time.monotonic() >= self._next_timed_checkpoint:
            self.checkpoint(finished=False)
        return self.frames_done < self.budget

    def _checkpoint_line(self) -> str:
        """``checkpoint: 400,012 of 6,000,000 frames (7%), 6 min, 1,110 frames/s, true return 310.2 over
        the last 20 episodes``: what a bar shows, as a line in a log."""
        seconds = time.monotonic() - self.started
        fps = (self.frames_done - self._frames_at_start) / max(seconds, 1e-9)
        n = len(self.recent_true)
        returns = (
            f"true return {np.mean(self.recent_true):.1f} over the last {n} episode{'s' * (n > 1)}"
            if n
            else "no episode ended yet"
        )
        share = 100 * self.frames_done / self.budget
        return (
            f"checkpoint: {self.frames_done:,} of {self.budget:,} frames ({share:.0f}%), "
            f"{progress.duration(self.wall_seconds())}, {fps:,.0f} frames/s, {returns}"
        )

    def _record_episode(self, info: dict[str, Any]) -> None:
        true_return = float(info["true_return"])
        shaped = float(info["episode"]["r"]) if "episode" in info else float("nan")
        self._curve.writerow(
            [
                self.frames_done,
                round(self.wall_seconds(), 2),
                round(true_return, 3),
                round(shaped, 3),
                info["episode_frames"],
            ]
        )
        self._curve_file.flush()
        self.recent_true.append(true_return)
        self.logger.record_mean("rollout/true_return_mean", true_return)
        self.logger.record_mean("rollout/true_episode_frames", info["episode_frames"])
        self.logger.record("time/frames", self.frames_done)
        if self._bar is not None:
            self._bar.set_postfix(true_return=f"{np.mean(self.recent_true):.1f}", refresh=False)

    def checkpoint(self, finished: bool) -> None:
        """Save the model and progress; the wall-time cadence counts from here."""
        self.run.checkpoint(self.model, self.wall_seconds(), finished)
        self._next_timed_checkpoint = time.monotonic() + self.checkpoint_every_seconds

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._curve_file is not None:
            self._curve_file.close()


def default_run_dir(config: RunConfig) -> Path:
    return Path("runs") / f"{config.agent}-seed{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    config: RunConfig,
    run_dir: str | Path,
    command: str = "",
    callbacks: Sequence[BaseCallback] = (),
    init_from: str | Path | None = None,
) -> RunDir:
    """Train ``config`` into a new run directory ``run_dir``.

    A folder left by a training stopped before its first checkpoint (a config, no model) is
    started again.

    :param command: the command line, appended to command.txt.
    :param callbacks: extra SB3 callbacks, called after the frame counter (so they can read
        ``model.frames_done``); returning False stops training early.
    :param init_from: start from this run's model or kept checkpoint, its frames counted as
        the new run's first (:mod:`cr_bench.agents.init_from`).
    :raises CrBenchError: if ``run_dir`` already holds a run or files that are not a run, or a
        live process trains it, or ``init_from`` cannot start this config.
    :raises KeyboardInterrupt: after saving a checkpoint, when interrupted.
    """
    run = RunDir(run_dir)
    start = None if init_from is None else find_start(init_from)
    if start is not None:
        check_compatible(start, config)
    if run.holds_other_files():  # a training would add its files to someone else's
        raise CrBenchError(f"{run.path} holds files and is not a cr-bench run; train into an empty or new folder")
    _refuse_trained(run)
    run.path.mkdir(parents=True, exist_ok=True)
    with training_lock(run):
        _refuse_trained(run)  # again, now that no other process can be saving one
        _learn_afresh(run, config, command, callbacks, start)
    return run


def _refuse_trained(run: RunDir) -> None:
    """A folder with a model holds a run to resume, not to train over."""
    if run.model.exists():
        raise CrBenchError(f"run directory {run.path} already holds a run; use --resume or another --out")


def resume(
    run_dir: str | Path,
    frames: int | None = None,
    command: str = "",
    torch_threads: int | None = None,
    callbacks: Sequence[BaseCallback] = (),
) -> RunDir:
    """Continue the run saved in ``run_dir`` up to its budget, or to ``frames`` if given.

    A run stopped before its first checkpoint has no model to continue: it starts again
    from frame 0 with its saved config.

    :param torch_threads: learner threads for this session (parallel jobs share the cores).
    :param callbacks: extra SB3 callbacks, as :func:`train`'s.

    :raises CrBenchError: if there is no run to resume, it already reached its budget, or
        a live process trains it.
    """
    run = RunDir(run_dir)
    config = run.read_config()
    if (run.path / PUBLISHED_MARKER).is_file():
        raise CrBenchError(f"{run.path} is a published model folder; resume the run it was published from")
    if frames is not None:
        config.frames = frames
    if torch_threads is not None:
        config.torch_threads = torch_threads
    with training_lock(run):
        if not run.model.is_file():
            _learn_afresh(run, config, command, callbacks)
            return run
        done = run.read_progress()["frames_done"]
        if done >= config.frames:
            raise CrBenchError(f"run {run.path} already has {done} of {config.frames} frames; pass a larger --frames")
        _learn(run, config, command, resume=True, callbacks=callbacks)
    return run


def _learn_afresh(
    run: RunDir,
    config: RunConfig,
    command: str,
    callbacks: Sequence[BaseCallback] = (),
    start: Start | None = None,
) -> None:
    """Train ``config`` from frame 0 (or from ``start``) into ``run``, clearing what an unsaved
    earlier attempt left; a run that recorded a start starts from it again."""
    start = start or read_start(run)
    weights = None if start is None else read_weights(start)
    if run.config.exists():
        print(f"cr-bench: {run.path} was stopped before its first checkpoint; training starts again", file=sys.stderr)
        run.discard_unsaved_training()
    if start is not None:
        seed_run(run, start)
    _learn(run, config, command, resume=False, callbacks=callbacks, start=start, weights=weights)


def _learn(
    run: RunDir,
    config: RunConfig,
    command: str,
    resume: bool,
    callbacks: Sequence[BaseCallback] = (),
    start: Start | None = None,
    weights: Weights | None = None,
) -> None:
    set_torch_threads(config.torch_threads)
    env: VecEnv = make_vec_env(config.env, config.n_envs, config.seed, training=True, vec_env=config.vec_env)
    if config.normalize_reward:  # a start's statistics were copied into the run
        env = _normalize_rewards(env, run, float(config.algo.get("gamma", 0.99)), resume or start is not None)
    try:
        if resume:
            model = load_model(config, str(run.model), env=env, device=config.device, levers=uses_levers(config))
            assert isinstance(model, FrameProgress)
            model.configure(config)  # the settings a saved model does not hold
            _restore_replay_buffer(model, run, config)
            run.trim_curve(int(model.frames_done))
        else:
            model = build_model(config, env, tensorboard_log=str(run.tensorboard))
            assert isinstance(model, FrameProgress)
            model.frames_done = 0
            if start is not None and weights is not None:
                load_weights(model, weights, start)
                model.frames_done = start.frames
        # Written once env and model exist, so a run that cannot start leaves no run behind.
        write_yaml(run.config, to_dict(config))
        # A run may train over sessions on several machines: each one is kept.
        machines = sorted({*run.machines(), machine_text()})
        write_yaml(run.versions, {**library_versions(), "machines": machines})
        with (run.path / "command.txt").open("a") as handle:
            handle.write(command + "\n")
        if start is not None:  # from here a resume continues this run's model, not the start's
            run.checkpoint(model, start.wall_seconds, finished=False)
        monitor = TrainingMonitor(run, config, run.read_progress()["wall_seconds"])
        try:
            # SB3 counts agent steps; each is at least one frame, so this bound never binds
            # before TrainingMonitor stops training at the frame budget.
            remaining = config.frames - int(model.frames_done)
            model.learn(
                remaining,
                callback=CallbackList([monitor, *callbacks]),
                reset_num_timesteps=not resume,
                tb_log_name=config.agent,
            )
        except KeyboardInterrupt:
            drop_half_made_adam_states(model.policy.optimizer)
            # Not monitor.checkpoint: an interrupt during learn's start-up (its first env reset)
            # comes before SB3 hands the model to the callbacks.
            run.checkpoint(model, monitor.wall_seconds(), finished=False)
            _save_replay_buffer(model, run)
            raise
        finally:
            monitor.close()
        monitor.checkpoint(finished=True)
    finally:
        _close_quietly(env)


def _normalize_rewards(env: VecEnv, run: RunDir, gamma: float, resume: bool) -> VecNormalize:
    """Reward-only VecNormalize; a resumed run continues with its saved statistics."""
    if resume and (run.reward_stats.is_file() or legacy(run.reward_stats).is_file()):
        normalizer = load_reward_stats(run.reward_stats, env)
        normalizer.training = True
        normalizer.gamma = gamma  # the run's (a run started from another may discount otherwise)
        return normalizer
    if resume:
        print(f"cr-bench: no {run.reward_stats.name} in {run.path}; reward statistics start afresh", file=sys.stderr)
    return VecNormalize(env, norm_obs=False, norm_reward=True, gamma=gamma)


def drop_half_made_adam_states(optimizer: Any) -> None:
    """Drop what an interrupt inside Adam's first step left half made: a parameter's state
    with ``step`` and ``exp_avg`` but no ``exp_avg_sq``, which the resumed run's first step
    cannot read (KeyError). That parameter has taken no step, so Adam makes its state afresh."""
    if not isinstance(optimizer, th.optim.Adam):
        return
    for group in optimizer.param_groups:
        keys = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if group.get("amsgrad") else set())
        for param in group["params"]:
            state = optimizer.state.get(param)
            if state and not keys <= state.keys():
                del optimizer.state[param]


def _save_replay_buffer(model: BaseAlgorithm, run: RunDir) -> None:
    """Saved on interruption only: a full buffer is gigabytes (50,000 x 2 stacked frames)."""
    if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
        save_replay_buffer(model.replay_buffer, run.replay_buffer)


def _restore_replay_buffer(model: BaseAlgorithm, run: RunDir, config: RunConfig) -> None:
    if not isinstance(model, OffPolicyAlgorithm) or model.replay_buffer is None:
        return
    saved = run.replay_buffer.is_file() or legacy(run.replay_buffer).is_file()
    if saved and load_replay_buffer(model.replay_buffer, run.replay_buffer):
        for path in (run.replay_buffer, legacy(run.replay_buffer)):  # a later hard kill must not bring it back
            path.unlink(missing_ok=True)
        return
    if not saved:  # killed before it could save its buffer, or resumed on another machine
        print(f"cr-bench: no replay buffer in {run.path}; refilling it before training resumes", file=sys.stderr)
    # The recipe's learning_starts, not the model's: that holds an earlier refill's end.
    model.learning_starts = model.num_timesteps + recipe_learning_starts(type(model), config)
    run.record_refill(int(run.read_progress()["frames_done"]))  # a table says which runs did


def recipe_learning_starts(algorithm: type[OffPolicyAlgorithm], config: RunConfig) -> int:
    """The transitions the run's recipe collects before learning: its config's
    ``learning_starts``, else the algorithm's default."""
    if "learning_starts" in config.algo:
        return int(config.algo["learning_starts"])
    return int(inspect.signature(algorithm).parameters["learning_starts"].default)


def refill_frames(config: RunConfig) -> int:
    """The env frames of random actions a refill of the replay buffer plays (the recipe's
    ``learning_starts`` transitions, each ``action_repeat`` frames); 0 for an on-policy agent."""
    algorithm = get_agent(config.agent).algorithm
    if not issubclass(algorithm, OffPolicyAlgorithm):
        return 0
    return recipe_learning_starts(algorithm, config) * config.env.action_repeat


def _close_quietly(env: Any) -> None:
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        env.close()  # subprocess workers may already be gone after Ctrl-C
