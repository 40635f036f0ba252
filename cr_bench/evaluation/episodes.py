"""Evaluation on fixed, held-out tracks with the raw CarRacing return.

Episode ``i`` runs on track seed ``track_seed_start + i``; every agent evaluated with
the same start and backend sees the same tracks. No shaping or early termination.

On one machine an evaluation is bit-for-bit repeatable: the same model, tracks and settings
(backend, and on EnvPool ``n_envs``) give identical episodes. Another CPU rounds differently,
and a 1000-frame episode amplifies that, so across machines only the mean is reproducible
(``cr-bench verify``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import check_for_correct_spaces
from stable_baselines3.common.vec_env import VecEnv

from cr_bench.envs.make import make_env, make_vec_env
from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_write_text
from cr_bench.lifeline import on_parent_exit
from cr_bench.results.stats import lap_summary, summarize
from cr_bench.spec.loader import write_yaml
from cr_bench.spec.run import EnvConfig, EvalConfig, resolve_backend

EPISODE_COLUMNS = ["track_seed", "return", "length", "tile_fraction", "lap_completed", "lap_frames"]
"""Columns every episode table starts from: the track seed, the raw return, the length in raw
frames, and the lap metrics: the fraction of the track's tiles visited, whether the lap was
completed (every tile visited: the env ends the episode) and the frames it took (empty
when not completed).

Each file extends them under its own name, so a column list never means two things."""
SCORE_COLUMNS = EPISODE_COLUMNS[:3]
"""The columns of episode tables written before the lap metrics (a ``play --out`` folder
may still have only these: its lap metrics are then unknown)."""
EVAL_EPISODE_COLUMNS = [*EPISODE_COLUMNS, "steps"]
"""eval/episodes.csv (``cr-bench eval``, ``publish``): plus the episode's agent steps."""
CONDITIONS = {"standard": False, "randomized": True}
"""Evaluation conditions of a comparison (the ``condition`` column): name -> domain_randomize."""
SUITE_EPISODE_COLUMNS = ["agent", "seed", "condition", *EPISODE_COLUMNS]
"""A comparison's episodes.csv (``cr-bench compare``; its cache in each run's eval/ has
:data:`EPISODE_COLUMNS`): plus the agent's name, its training seed and the condition."""
RETURN_DECIMALS = 4
"""Decimals of the returns written to episodes.csv."""


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluation episode: raw return and length in raw frames (``steps`` = agent steps),
    and its lap metrics (:class:`cr_bench.envs.wrappers.ScoreCounters`)."""

    track_seed: int
    true_return: float
    length: int
    steps: int
    tile_fraction: float = float("nan")
    """Fraction of the track's tiles visited (NaN: not measured)."""
    lap_frames: int | None = None
    """Raw frames to the lap's end; None when the lap was not completed."""

    @classmethod
    def from_info(cls, track_seed: int, info: dict[str, Any], steps: int) -> EpisodeResult:
        """The episode that ended with ``info`` (:class:`cr_bench.envs.wrappers.EpisodeScore`'s entries)."""
        return cls(
            track_seed,
            float(info["true_return"]),
            int(info["episode_frames"]),
            steps,
            float(info["tile_fraction"]),
            info["lap_frames"],
        )

    @property
    def lap_completed(self) -> bool:
        """Whether every tile was visited (the env ended the episode for it)."""
        return self.lap_frames is not None


def run_episode(model: Any, env: gym.Env, track_seed: int, deterministic: bool = True) -> EpisodeResult:
    """Play one episode of ``model`` (anything with SB3's ``predict``) in ``env`` (built with
    ``training=False``) on ``track_seed``."""
    check_model_fits(model, env)
    obs, info = env.reset(seed=track_seed)
    state: Any = None
    episode_start = np.ones(1, dtype=bool)
    steps, done = 0, False
    while not done:
        # Batched form, so recurrent policies get their state and episode starts too.
        action, state = model.predict(obs[None], state=state, episode_start=episode_start, deterministic=deterministic)
        obs, _, terminated, truncated, info = env.step(action[0])
        episode_start[:] = False
        steps += 1
        done = terminated or truncated
    return EpisodeResult.from_info(track_seed, info, steps)


def print_episode(result: EpisodeResult) -> None:
    """One line per finished episode, as ``eval`` and ``verify`` show progress."""
    print(f"  track {result.track_seed}: return {result.true_return:.1f}, {result.length} frames")


def check_model_fits(model: Any, env: gym.Env | VecEnv) -> None:
    """Refuse a model whose spaces are not the pipeline's (a model.zip from a run with another config).

    Policies that are not SB3 models (the baselines) are not checked.
    """
    if not isinstance(model, BaseAlgorithm):
        return
    try:
        check_for_correct_spaces(env, model.observation_space, model.action_space)
    except ValueError as error:
        raise CrBenchError(f"the model does not fit this run's env pipeline: {error}") from None


def episodes_at_once(backend: str, episodes: int, gymnasium_envs: int) -> int:
    """How many episodes to play at once: every one on EnvPool (one pool, cheap), else
    ``gymnasium_envs`` worker processes."""
    return episodes if backend == "envpool" else gymnasium_envs


def evaluate(
    model: Any,
    env_config: EnvConfig,
    settings: EvalConfig,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Evaluate ``model`` on ``settings``' tracks: seeds ``track_seed_start .. + episodes - 1``.

    On gymnasium, ``settings.n_envs`` worker processes each hold a copy of the policy (one
    torch thread) and one env, and take the next track as soon as they finish one: no
    lockstep, no process started per episode, and a track's episode does not depend on
    ``n_envs``. On EnvPool, episodes run ``n_envs`` at a time in one pool (env ``i`` of a
    pool seeded with ``start`` plays track ``start + i``; only its first episode is kept).
    ``settings.randomized`` is the caller's: ``env_config.domain_randomize`` is played as is.

    :param model: an SB3 model, or any policy with SB3's ``predict`` (the baselines).
    :param env_config: the run's pipeline; shaping and early termination are not applied.
    :param settings: tracks, backend (the same track seed is a different track on each, so
        compare agents evaluated on one backend), deterministic action, episodes at once.
    :param on_episode: called with each episode as it finishes (in finishing order).
    :return: the episodes in track order.
    """
    config = dataclasses.replace(env_config, backend=resolve_backend(settings.backend))
    seeds = list(settings.track_seeds)
    play = _evaluate_in_pools if config.backend == "envpool" else _evaluate_in_workers
    results = []
    for result in play(model, config, seeds, settings.deterministic, settings.n_envs):
        results.append(result)
        if on_episode is not None:
            on_episode(result)
    return sorted(results, key=lambda result: result.track_seed)


def _evaluate_in_pools(
    model: Any,
    config: EnvConfig,
    seeds: list[int],
    deterministic: bool,
    n_envs: int,
) -> Iterator[EpisodeResult]:
    for first in range(0, len(seeds), n_envs):
        chunk_seeds = seeds[first : first + n_envs]
        venv = make_vec_env(config, len(chunk_seeds), seed=chunk_seeds[0], training=False)
        try:
            chunk = first_episodes(model, venv, chunk_seeds[0], deterministic)
        finally:
            venv.close()
        yield from chunk


def _evaluate_in_workers(
    model: Any,
    config: EnvConfig,
    seeds: list[int],
    deterministic: bool,
    n_envs: int,
) -> Iterator[EpisodeResult]:
    env = make_env(config, training=False)
    try:
        check_model_fits(model, env)
        # DQN's stochastic action is epsilon-greedy in the algorithm, not its policy: it stays here.
        if n_envs == 1 or len(seeds) == 1 or (not deterministic and hasattr(model, "exploration_rate")):
            yield from _evaluate_here(model, env, seeds, deterministic)
            return
    finally:
        env.close()
    yield from _evaluate_in_pool(model, config, seeds, deterministic, min(n_envs, len(seeds)))


def _evaluate_here(
    model: Any,
    env: gym.Env,
    seeds: list[int],
    deterministic: bool,
) -> Iterator[EpisodeResult]:
    """Play in this process as a worker would: one torch thread, and random generators that
    are this process's own again afterwards (a training calling it keeps its draws)."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        devices = list(range(th.cuda.device_count())) if th.cuda.is_initialized() else []
        with th.random.fork_rng(devices=devices):
            for seed in seeds:
                yield _play_episode(model, env, seed, deterministic)
    finally:
        th.set_num_threads(threads)


def _evaluate_in_pool(
    model: Any,
    config: EnvConfig,
    seeds: list[int],
    deterministic: bool,
    workers: int,
) -> Iterator[EpisodeResult]:
    """Play in ``workers`` processes, which exit when this one ends, however it ends
    (:mod:`cr_bench.lifeline`), or when it closes their lifeline after an error or Ctrl-C."""
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    _detach_sde_noise(policy)
    context = multiprocessing.get_context("forkserver")
    parent_alive, alive_end = context.Pipe(duplex=False)
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(policy, config, deterministic, parent_alive)
    )
    finished = False
    try:
        try:  # the workers start here, each with a pickled copy of the policy
            futures = [pool.submit(_worker_episode, seed) for seed in seeds]
        except (pickle.PicklingError, TypeError, AttributeError, RuntimeError) as error:
            raise CrBenchError(f"cannot send the policy to evaluation workers: {error}".splitlines()[0]) from None
        for future in as_completed(futures):
            yield future.result()
        finished = True
    except BrokenProcessPool:
        raise CrBenchError("an evaluation worker died or could not start (killed, out of memory?)") from None
    finally:
        if not finished:
            alive_end.close()  # workers still playing (an error, Ctrl-C) exit now
        pool.shutdown(wait=True, cancel_futures=True)
        alive_end.close()


def _detach_sde_noise(policy: Any) -> None:
    """Make the tensors the policy's action distribution keeps plain ones of the same values.
    gSDE's noise matrices and their distribution are drawn from ``log_std`` with gradients
    (SB3's ``reset_noise``, on load and at each rollout), and such a tensor cannot be pickled
    to a worker; no gradient flows through them, since SB3 acts under ``no_grad``."""
    _detach_attributes(getattr(policy, "action_dist", None))


def _detach_attributes(holder: Any) -> None:
    """Detach ``holder``'s tensors that carry a gradient, and those of its torch distributions."""
    for name, value in list(vars(holder).items()) if holder is not None else []:
        if isinstance(value, th.Tensor) and value.requires_grad and not value.is_leaf:
            setattr(holder, name, value.detach())
        elif isinstance(value, th.distributions.Distribution):
            _detach_attributes(value)


_worker: dict[str, Any] = {}
"""An evaluation worker's policy, env and settings (:func:`_start_worker`)."""


def _start_worker(policy: Any, config: EnvConfig, deterministic: bool, parent_alive: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it ends the workers
    on_parent_exit(parent_alive, lambda: os._exit(0))
    th.set_num_threads(1)  # one worker per core
    _worker.update(policy=policy, env=make_env(config, training=False), deterministic=deterministic)


def _worker_episode(seed: int) -> EpisodeResult:
    return _play_episode(_worker["policy"], _worker["env"], seed, _worker["deterministic"])


def _play_episode(policy: Any, env: gym.Env, seed: int, deterministic: bool) -> EpisodeResult:
    """One episode on track ``seed``; a stochastic policy draws from generators seeded with the
    track, so the episode does not depend on which worker played it or what it played before."""
    th.manual_seed(seed)
    reseed = getattr(policy, "reseed", None)
    if reseed is not None:
        reseed(seed)
    return run_episode(policy, env, seed, deterministic)


def first_episodes(model: BaseAlgorithm, venv: VecEnv, seed_start: int, deterministic: bool) -> list[EpisodeResult]:
    """Play until every env of ``venv`` has finished its first episode."""
    check_model_fits(model, venv)
    finished: dict[int, EpisodeResult] = {}
    steps = np.zeros(venv.num_envs, dtype=np.int64)
    obs = venv.reset()
    state: Any = None
    episode_start = np.ones(venv.num_envs, dtype=bool)
    while len(finished) < venv.num_envs:
        actions, state = model.predict(
            obs,  # type: ignore[arg-type]
            state=state,
            episode_start=episode_start,
            deterministic=deterministic,
        )
        obs, _, dones, infos = venv.step(actions)
        steps += 1
        for i in map(int, np.flatnonzero(dones)):
            if i not in finished:
                finished[i] = EpisodeResult.from_info(seed_start + i, infos[i], int(steps[i]))
        episode_start = dones
    return [finished[i] for i in range(venv.num_envs)]


def write_episode_table(path: Path, results: list[EpisodeResult], columns: list[str] = EVAL_EPISODE_COLUMNS) -> None:
    """Write one row per episode with ``columns`` (:data:`EPISODE_COLUMNS`, perhaps extended with ``steps``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, episode_table_text(results, columns))


def episode_table_text(results: list[EpisodeResult], columns: list[str] = EVAL_EPISODE_COLUMNS) -> str:
    """The CSV text of :func:`write_episode_table`."""
    values = {
        "track_seed": lambda r: r.track_seed,
        "return": lambda r: round(r.true_return, RETURN_DECIMALS),
        "length": lambda r: r.length,
        "tile_fraction": lambda r: r.tile_fraction,
        "lap_completed": lambda r: r.lap_completed,
        "lap_frames": lambda r: "" if r.lap_frames is None else r.lap_frames,
        "steps": lambda r: r.steps,
    }
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows([values[column](r) for column in columns] for r in results)
    return text.getvalue()


def episode_laps(results: list[EpisodeResult]) -> dict[str, float]:
    """:func:`cr_bench.results.stats.lap_summary` of some episodes."""
    return lap_summary([r.tile_fraction for r in results], [r.lap_frames or math.nan for r in results])


def write_episodes(path: Path, results: list[EpisodeResult], backend: str) -> dict[str, float]:
    """Write ``episodes.csv`` (:data:`EVAL_EPISODE_COLUMNS`) and ``summary.yaml`` (with the
    backend) beside it; return the summary."""
    write_episode_table(path, results, EVAL_EPISODE_COLUMNS)
    summary = {**summarize(np.array([r.true_return for r in results])), **episode_laps(results)}
    seeds = [results[0].track_seed, results[-1].track_seed]
    write_yaml(path.parent / "summary.yaml", {**summary, "backend": backend, "track_seeds": seeds})
    return summary
