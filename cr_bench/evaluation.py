"""Evaluation on fixed, held-out tracks with the raw CarRacing return.

Episode ``i`` runs on track seed ``track_seed_start + i``; every agent evaluated with
the same start and backend sees the same tracks. No shaping or early termination.

On one machine an evaluation is bit-for-bit repeatable: the same model, tracks and settings
(backend, ``n_envs``, torch threads) give identical episodes. Another CPU rounds differently,
and a 1000-frame episode amplifies that, so across machines only the mean is reproducible
(``cr-bench verify``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import check_for_correct_spaces
from stable_baselines3.common.vec_env import VecEnv

from cr_bench.envs import make_vec_env
from cr_bench.errors import CrBenchError
from cr_bench.io import write_csv
from cr_bench.spec.loader import write_yaml
from cr_bench.spec.run import EnvConfig, resolve_backend
from cr_bench.stats import summarize

EPISODE_COLUMNS = ["track_seed", "return", "length"]
"""Columns every episode table starts from: the track seed, the raw return, the length in raw frames.

Each file extends them under its own name, so a column list never means two things."""
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
    """One evaluation episode: raw return and length in raw frames (``steps`` = agent steps)."""

    track_seed: int
    true_return: float
    length: int
    steps: int


def run_episode(model: BaseAlgorithm, env: gym.Env, track_seed: int, deterministic: bool = True) -> EpisodeResult:
    """Play one episode of ``model`` in ``env`` (built with ``training=False``) on ``track_seed``."""
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
    return EpisodeResult(track_seed, float(info["true_return"]), int(info["episode_frames"]), steps)


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
    model: BaseAlgorithm,
    env_config: EnvConfig,
    episodes: int,
    track_seed_start: int,
    deterministic: bool = True,
    backend: str = "gymnasium",
    n_envs: int = 2,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Evaluate ``model`` on track seeds ``track_seed_start .. track_seed_start + episodes - 1``.

    Episodes run ``n_envs`` at a time: a VecEnv seeded with a chunk's first track seed
    gives env ``i`` track ``start + i``, and only each env's first episode is kept.

    :param env_config: the run's pipeline; shaping and early termination are not applied.
    :param backend: ``gymnasium`` or ``envpool``; the same track seed is a different
        track on each, so compare agents evaluated on one backend.
    """
    config = dataclasses.replace(env_config, backend=resolve_backend(backend))
    results: list[EpisodeResult] = []
    for chunk_start in range(track_seed_start, track_seed_start + episodes, n_envs):
        size = min(n_envs, track_seed_start + episodes - chunk_start)
        venv = make_vec_env(config, size, seed=chunk_start, training=False)
        try:
            chunk = first_episodes(model, venv, chunk_start, deterministic)
        finally:
            venv.close()
        for result in chunk:
            results.append(result)
            if on_episode is not None:
                on_episode(result)
    return results


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
                info = infos[i]
                finished[i] = EpisodeResult(
                    seed_start + i, float(info["true_return"]), int(info["episode_frames"]), int(steps[i])
                )
        episode_start = dones
    return [finished[i] for i in range(venv.num_envs)]


def write_episode_table(path: Path, results: list[EpisodeResult], columns: list[str] = EVAL_EPISODE_COLUMNS) -> None:
    """Write one row per episode with ``columns`` (:data:`EPISODE_COLUMNS`, perhaps extended with ``steps``)."""
    values = {
        "track_seed": lambda r: r.track_seed,
        "return": lambda r: round(r.true_return, RETURN_DECIMALS),
        "length": lambda r: r.length,
        "steps": lambda r: r.steps,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, columns, ([values[column](r) for column in columns] for r in results))


def write_episodes(path: Path, results: list[EpisodeResult], backend: str) -> dict[str, float]:
    """Write ``episodes.csv`` (:data:`EVAL_EPISODE_COLUMNS`) and ``summary.yaml`` (with the
    backend) beside it; return the summary."""
    write_episode_table(path, results, EVAL_EPISODE_COLUMNS)
    summary = summarize(np.array([r.true_return for r in results]))
    seeds = [results[0].track_seed, results[-1].track_seed]
    write_yaml(path.parent / "summary.yaml", {**summary, "backend": backend, "track_seeds": seeds})
    return summary
