"""Evaluation on fixed, held-out tracks with the raw CarRacing return.

Episode ``i`` runs on track seed ``track_seed_start + i``; every agent evaluated with
the same start sees the same tracks. No shaping or early termination is applied.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from cr_bench.config import EnvConfig, write_yaml
from cr_bench.envs import make_env
from cr_bench.stats import summarize

EPISODE_COLUMNS = ["track_seed", "return", "length", "steps"]


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluation episode: raw return and length in raw frames (``steps`` = agent steps)."""

    track_seed: int
    true_return: float
    length: int
    steps: int


def run_episode(model: BaseAlgorithm, env: gym.Env, track_seed: int, deterministic: bool = True) -> EpisodeResult:
    """Play one episode of ``model`` in ``env`` (built with ``training=False``) on ``track_seed``."""
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


def evaluate(
    model: BaseAlgorithm,
    env_config: EnvConfig,
    episodes: int,
    track_seed_start: int,
    deterministic: bool = True,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Evaluate ``model`` on ``episodes`` consecutive track seeds from ``track_seed_start``."""
    env = make_env(env_config, training=False)
    try:
        results = []
        for track_seed in range(track_seed_start, track_seed_start + episodes):
            result = run_episode(model, env, track_seed, deterministic)
            results.append(result)
            if on_episode is not None:
                on_episode(result)
        return results
    finally:
        env.close()


def write_episodes(path: Path, results: list[EpisodeResult]) -> dict[str, float]:
    """Write ``episodes.csv`` and ``summary.yaml`` beside it; return the summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EPISODE_COLUMNS)
        for r in results:
            writer.writerow([r.track_seed, round(r.true_return, 4), r.length, r.steps])
    tmp.replace(path)
    summary = summarize(np.array([r.true_return for r in results]))
    write_yaml(
        path.parent / "summary.yaml", {**summary, "track_seeds": [results[0].track_seed, results[-1].track_seed]}
    )
    return summary
