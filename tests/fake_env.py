"""A scripted, CarRacing-like gymnasium env for wrapper tests.

``FakeCarRacing`` has CarRacing-v3's spaces (96x96x3 uint8 frames, ``[steer, gas, brake]``
actions) but its rewards, frames and episode ends are scripted, so a wrapper's effect can
be checked frame by frame without Box2D.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

GRASS = (102, 204, 102)
"""CarRacing's background grass colour."""
ROAD = (105, 105, 105)
"""CarRacing's grey road colour."""
CAR_ROWS, CAR_COLS = slice(66, 78), slice(43, 53)
"""The pixels around the car (``cr_bench.envs.wrappers.CAR_PATCH``)."""
OFF_PLAYFIELD_REWARD = -100.0

FrameSpec = str | np.ndarray
"""A frame: a (96, 96, 3) uint8 array or one of the names accepted by :func:`paint`."""


def paint(kind: str) -> np.ndarray:
    """Paint a 96x96 RGB frame.

    :param kind: ``"road"`` (all grey), ``"grass"`` (all green), ``"car_on_grass"`` (grey
        with green under the car) or ``"car_on_road"`` (green with grey under the car).
    """
    frame = np.empty((96, 96, 3), dtype=np.uint8)
    if kind in ("road", "car_on_grass"):
        frame[:] = ROAD
    elif kind in ("grass", "car_on_road"):
        frame[:] = GRASS
    else:
        raise ValueError(f"unknown frame kind {kind!r}")
    if kind == "car_on_grass":
        frame[CAR_ROWS, CAR_COLS] = GRASS
    elif kind == "car_on_road":
        frame[CAR_ROWS, CAR_COLS] = ROAD
    return frame


def uniform(value: int) -> np.ndarray:
    """A 96x96 RGB frame whose every pixel is ``(value, value, value)``."""
    return np.full((96, 96, 3), value, dtype=np.uint8)


def _as_frame(spec: FrameSpec) -> np.ndarray:
    frame = paint(spec) if isinstance(spec, str) else np.asarray(spec, dtype=np.uint8)
    if frame.shape != (96, 96, 3):
        raise ValueError(f"frames must have shape (96, 96, 3), got {frame.shape}")
    return frame.copy()


class FakeCarRacing(gym.Env):
    """Scripted CarRacing stand-in; every episode replays the same script from frame 1.

    Frame ``t`` (1-based, counted since reset) gives ``rewards[t - 1]`` (0 beyond the
    list) and observation ``frames[t - 1]`` (the last entry beyond the list).

    :param rewards: reward of each frame.
    :param frames: observation after each frame; default all ``"road"``.
    :param reset_frame: observation returned by ``reset``.
    :param off_playfield_at: frame at which the car leaves the playfield: reward -100,
        ``terminated=True`` and ``info["lap_finished"] = False``, as in CarRacing-v3.
    :param lap_finished_at: frame at which the lap is completed: the scripted reward,
        ``terminated=True`` and ``info["lap_finished"] = True``.
    :param max_frames: frames after which the episode is truncated; default
        ``len(rewards)`` (1000 without rewards).

    Records a copy of every action received in ``actions`` and the number of resets in
    ``reset_count``.
    Stepping a finished episode raises ``RuntimeError``.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self,
        rewards: Sequence[float] = (),
        frames: Sequence[FrameSpec] | None = None,
        reset_frame: FrameSpec = "road",
        off_playfield_at: int | None = None,
        lap_finished_at: int | None = None,
        max_frames: int | None = None,
    ) -> None:
        super().__init__()
        self.observation_space = gym.spaces.Box(0, 255, (96, 96, 3), np.uint8)
        self.action_space = gym.spaces.Box(
            np.array([-1, 0, 0], dtype=np.float32), np.array([1, 1, 1], dtype=np.float32), dtype=np.float32
        )
        self.rewards = [float(r) for r in rewards]
        self.frames = [_as_frame(f) for f in (frames if frames is not None else ["road"])]
        self.reset_frame = _as_frame(reset_frame)
        self.off_playfield_at = off_playfield_at
        self.lap_finished_at = lap_finished_at
        self.max_frames = max_frames if max_frames is not None else (len(self.rewards) or 1000)
        self.actions: list[np.ndarray] = []
        self.reset_count = 0
        self.frame = 0
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.reset_count += 1
        self.frame = 0
        self._done = False
        return self.reset_frame.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset()")
        self.actions.append(np.array(action, copy=True))
        self.frame += 1
        t = self.frame
        reward = self.rewards[t - 1] if t <= len(self.rewards) else 0.0
        obs = self.frames[min(t, len(self.frames)) - 1].copy()
        info: dict[str, Any] = {}
        terminated = False
        if t == self.off_playfield_at:
            reward, terminated = OFF_PLAYFIELD_REWARD, True
            info["lap_finished"] = False
        elif t == self.lap_finished_at:
            terminated = True
            info["lap_finished"] = True
        truncated = not terminated and t >= self.max_frames
        self._done = terminated or truncated
        return obs, reward, terminated, truncated, info


class TinyCarRacing(gym.Env):
    """A CarRacing-v3 stand-in for orchestration tests (train, eval, tune, compare, publish).

    It has CarRacing's spaces, a 200-frame limit (registered as ``TinyCarRacing-v0``;
    cr-bench reaches it with ``--set env.id=tests.fake_env:TinyCarRacing-v0``) and runs
    thousands of frames/s without Box2D. A track is a sequence of bends drawn from the
    seed; a frame's reward is ``0.1 * speed - 0.05 * |steer - bend|``, so returns differ
    between tracks and policies, and the frame shows the road shifted by the bend and the
    speed. ``domain_randomize`` changes the grass colour on every reset.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(self, domain_randomize: bool = False, render_mode: str | None = None) -> None:
        super().__init__()
        self.observation_space = gym.spaces.Box(0, 255, (96, 96, 3), np.uint8)
        self.action_space = gym.spaces.Box(
            np.array([-1, 0, 0], dtype=np.float32), np.array([1, 1, 1], dtype=np.float32), dtype=np.float32
        )
        self.domain_randomize, self.render_mode = domain_randomize, render_mode
        self.bends = np.zeros(1000)
        self.grass = np.array(GRASS, dtype=np.uint8)
        self.speed, self.frame = 0.0, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.bends = np.repeat(self.np_random.uniform(-1, 1, 20), 50)
        if self.domain_randomize:
            self.grass = self.np_random.integers(0, 256, 3).astype(np.uint8)
        self.speed, self.frame = 0.0, 0
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        steer, gas, brake = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, 1.0)
        bend = self.bends[min(self.frame, 999)]
        self.speed = 0.95 * self.speed + gas - brake
        self.speed = max(self.speed, 0.0)
        self.frame += 1
        reward = 0.1 * self.speed - 0.05 * abs(steer - bend)
        return self._observation(), float(reward), False, False, {}

    def _observation(self) -> np.ndarray:
        frame = np.empty((96, 96, 3), dtype=np.uint8)
        frame[:] = self.grass
        centre = 48 + int(20 * self.bends[min(self.frame, 999)])
        width = 10 + min(int(self.speed), 20)
        frame[:84, max(0, centre - width) : centre + width] = ROAD
        return frame

    def render(self) -> np.ndarray:
        return np.repeat(np.repeat(self._observation(), 4, axis=0), 6, axis=1)[:400, :600]


TINY_EPISODE_FRAMES = 200
"""Frames of a :class:`TinyCarRacing` episode: a fifth of CarRacing's 1000, so evaluating on it
(most of an orchestration test's time) is cheap."""

DIE_ONCE_MARKER = "CR_BENCH_TEST_DIE_ONCE"
"""Environment variable naming the marker file of :class:`DieOnceCarRacing`."""


class DieOnceCarRacing(TinyCarRacing):
    """:class:`TinyCarRacing` whose first construction anywhere kills its process (as a node or
    a worker dying mid-task): it creates the marker file named by ``$CR_BENCH_TEST_DIE_ONCE``,
    then exits; once the marker exists it is a plain TinyCarRacing."""

    def __init__(self, domain_randomize: bool = False, render_mode: str | None = None) -> None:
        marker = os.environ.get(DIE_ONCE_MARKER)
        if marker and not os.path.exists(marker):
            with open(marker, "w") as handle:
                handle.write(str(os.getpid()))
            os._exit(1)
        super().__init__(domain_randomize, render_mode)


if "DieOnceCarRacing-v0" not in gym.registry:
    gym.register("DieOnceCarRacing-v0", entry_point=DieOnceCarRacing, max_episode_steps=TINY_EPISODE_FRAMES)
DIE_ONCE_ENV_ID = "tests.fake_env:DieOnceCarRacing-v0"

if "TinyCarRacing-v0" not in gym.registry:
    gym.register("TinyCarRacing-v0", entry_point=TinyCarRacing, max_episode_steps=TINY_EPISODE_FRAMES)
TINY_ENV_ID = "tests.fake_env:TinyCarRacing-v0"
"""``env.id`` of :class:`TinyCarRacing` (the module registers it on import)."""
TINY_ENV = ["--set", f"env.id={TINY_ENV_ID}"]
"""``cr-bench`` flags that run on :class:`TinyCarRacing` (gymnasium backend)."""
