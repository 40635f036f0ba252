"""Policies that do not learn, evaluated beside the agents so each number has context.

Both follow the part of SB3's ``predict`` interface that evaluation uses.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from cr_bench.spec.run import EnvConfig

BASELINE_ENV = EnvConfig(action_repeat=2, frame_stack=1, grayscale=True, obs_size=96)
"""Pipeline of both baselines: one full-size grayscale frame, actions held for 2 frames."""
BASELINES = ("random", "scripted")

# In the grayscale 96x96 frame the road is dark grey (luma ~100-110) and grass light
# (~160-190); the car sits at rows 66-77, columns 45-50.
_ROAD_LUMA = (80, 125)
_LOOKAHEAD_ROWS = slice(46, 62)
_CAR_COLUMN = 47.5


class RandomPolicy:
    """Uniformly random actions from the action space (seeded)."""

    def __init__(self, action_space: gym.spaces.Space, seed: int = 0) -> None:
        self.action_space = action_space
        self.seed = seed
        self.action_space.seed(seed)

    def reseed(self, track_seed: int) -> None:
        """Restart the draws for the episode on ``track_seed`` (evaluation calls it before each)."""
        self.action_space.seed(self.seed + track_seed)

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        return np.stack([self.action_space.sample() for _ in range(len(observation))]), None


class ScriptedDriver:
    """Steers toward the middle of the road seen ahead of the car, with light throttle.

    Reads the last grayscale frame of ``BASELINE_ENV``'s observation: the road is the
    band of dark grey pixels in the rows just ahead of the car. Proportional steering,
    gas only when nearly straight. It knows nothing of speed, so it creeps.
    """

    def __init__(self, gain: float = 2.5, gas: float = 0.12) -> None:
        self.gain, self.gas = gain, gas

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        frames = observation[:, -1, _LOOKAHEAD_ROWS, :].astype(np.int16)  # (n_envs, rows, 96)
        road = (frames >= _ROAD_LUMA[0]) & (frames <= _ROAD_LUMA[1])
        columns = np.arange(frames.shape[-1])
        counts = road.sum(axis=(1, 2))
        centre = np.where(counts > 0, (road * columns).sum(axis=(1, 2)) / np.maximum(counts, 1), _CAR_COLUMN)
        steer = np.clip(self.gain * (centre - _CAR_COLUMN) / _CAR_COLUMN, -1.0, 1.0)
        gas = np.where(np.abs(steer) < 0.3, self.gas, 0.0)
        return np.stack([steer, gas, np.zeros_like(steer)], axis=1).astype(np.float32), None


def make_baseline(name: str, action_space: gym.spaces.Space, seed: int) -> RandomPolicy | ScriptedDriver:
    if name == "random":
        return RandomPolicy(action_space, seed)
    if name == "scripted":
        return ScriptedDriver()
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
