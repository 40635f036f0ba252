"""CarRacing-v3 wrappers, one behaviour each, composed by :func:`cr_bench.envs.make_env`.

Stack order, from the raw env up (see ``make_env``)::

    CarRacing-v3 (TimeLimit 1000 frames)
    -> EpisodeScore          raw return and frame count, below everything else
    -> SkipZoom              no-op frames after reset
    -> NoProgressTermination / OffTrackTermination     training only
    -> CancelOffPlayfieldPenalty / GrassPenalty / GasRewardScale   training only
    -> ActionRepeat -> PreprocessFrame -> FrameStack -> DiscreteActions
"""

from __future__ import annotations

from collections import deque
from typing import Any, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np

# CarRacing-v3 facts (gymnasium/envs/box2d/car_racing.py).
MAX_EPISODE_FRAMES = 1000
"""CarRacing-v3's time limit in raw frames."""
OFF_TRACK_GRASS_FRACTION = 0.5
"""The car is off track when at least this fraction of the pixels around it is grass."""
MIN_OBS_SIZE = 8
"""Smallest observation side PreprocessFrame accepts, in pixels."""
OFF_PLAYFIELD_REWARD = -100.0
"""Reward of the frame on which the car leaves the playfield (the episode terminates)."""
INDICATOR_BAR_ROWS = 12
"""Height of the speed/steering indicator bar at the bottom of the 96x96 frame."""
CAR_PATCH = (slice(66, 78), slice(43, 53))
"""Rows and columns of the 96x96 frame around the car, which the camera keeps fixed."""
NOOP = np.zeros(3, dtype=np.float32)

Step = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]


def _positive_int(name: str, value: int) -> int:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class EpisodeScore(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Record the raw CarRacing return and frame count in ``info`` on every step.

    ``info["true_return"]`` is the sum of the unwrapped env's rewards since reset and
    ``info["episode_frames"]`` the number of raw frames. It must sit directly on the raw
    env, below every shaping, termination and repeat wrapper: that makes it the score,
    whatever ends the episode.

    >>> env = EpisodeScore(gym.make("CarRacing-v3"))
    >>> _ = env.reset(seed=0)
    >>> round(env.step(NOOP)[4]["true_return"], 1)
    -0.1
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.true_return = 0.0
        self.episode_frames = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.true_return, self.episode_frames = 0.0, 0
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "true_return": 0.0, "episode_frames": 0}

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.true_return += float(reward)
        self.episode_frames += 1
        return (
            obs,
            reward,
            terminated,
            truncated,
            {**info, "true_return": self.true_return, "episode_frames": self.episode_frames},
        )


class SkipZoom(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Take ``frames`` no-op steps after each reset, skipping CarRacing's zoom-in (seed 004: 50).

    The skipped frames still count in the episode's frames and raw return.
    """

    def __init__(self, env: gym.Env, frames: int = 50) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, frames=frames)
        super().__init__(env)
        self.frames = _positive_int("frames", frames)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.frames):
            obs, _, terminated, truncated, info = self.env.step(NOOP)
            if terminated or truncated:  # cannot happen within the 1000-frame limit; be safe
                obs, info = self.env.reset()
        return obs, info


class NoProgressTermination(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """End the episode when the mean reward of the last ``window`` frames is <= ``threshold``.

    Seed 000's rule (window 100, threshold -0.1): stops episodes where the car stands
    still or drives on grass, since no new tile gives -0.1 per frame. The history starts
    as zeros, as in the seed. Training only.
    """

    def __init__(self, env: gym.Env, window: int = 100, threshold: float = -0.1) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, window=window, threshold=threshold)
        super().__init__(env)
        self.window = _positive_int("window", window)
        self.threshold = float(threshold)
        self._rewards: deque[float] = deque(maxlen=self.window)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._rewards = deque([0.0] * self.window, maxlen=self.window)
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._rewards.append(float(reward))
        # Tolerance: CarRacing's -0.1 rewards are differences of a running float sum, so a
        # window of them averages a hair above -0.1 (seed 000's rule would never fire).
        if sum(self._rewards) / self.window <= self.threshold + 1e-6 and not (terminated or truncated):
            terminated = True
            info = {**info, "early_termination": "no_progress"}
        return obs, reward, terminated, truncated, info


def grass_fraction_under_car(frames: np.ndarray) -> np.ndarray:
    """Fraction of grass pixels around the car in raw RGB frames ``(..., 96, 96, 3)``.

    Grass is drawn green (R=102, G>=200, B=102 in the default colours); track, kerbs and
    the car are not. Not meaningful with ``domain_randomize=True``. Returns shape ``(...)``.
    """
    patch = frames[..., CAR_PATCH[0], CAR_PATCH[1], :].astype(np.int16)
    grass = (patch[..., 1] >= 150) & (patch[..., 1] - patch[..., 0] >= 50)
    return np.asarray(grass.mean(axis=(-2, -1)))


def playfield_green_mean(frames: np.ndarray) -> np.ndarray:
    """Mean green channel of raw frames ``(..., 96, 96, 3)`` above the indicator bar, shape ``(...)``."""
    return np.asarray(frames[..., :-INDICATOR_BAR_ROWS, :, 1].mean(axis=(-2, -1)))


def left_playfield(reward: np.ndarray | float, terminated: np.ndarray | bool) -> np.ndarray:
    """Whether a raw frame is the one on which the car left the playfield (-100, terminated)."""
    # The raw env sets the reward to exactly -100 on that frame.
    return np.asarray(terminated) & (np.asarray(reward) <= OFF_PLAYFIELD_REWARD + 1e-6)


class OffTrackTermination(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """End the episode after ``max_frames`` consecutive frames with the car on grass.

    Seed 002 stops an episode after a number of off-track steps; it guesses "off track"
    from the reward, here it is read from the pixels around the car, so it works the
    same on any backend. Training only.
    """

    def __init__(self, env: gym.Env, max_frames: int = 50, grass_fraction: float = OFF_TRACK_GRASS_FRACTION) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, max_frames=max_frames, grass_fraction=grass_fraction)
        super().__init__(env)
        self.max_frames = _positive_int("max_frames", max_frames)
        if not 0.0 < grass_fraction <= 1.0:
            raise ValueError(f"grass_fraction must be in (0, 1], got {grass_fraction!r}")
        self.grass_fraction = grass_fraction
        self.off_track_frames = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.off_track_frames = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        off_track = bool(grass_fraction_under_car(obs) >= self.grass_fraction)
        self.off_track_frames = self.off_track_frames + 1 if off_track else 0
        if self.off_track_frames >= self.max_frames and not (terminated or truncated):
            terminated = True
            info = {**info, "early_termination": "off_track"}
        return obs, reward, terminated, truncated, info


class GrassPenalty(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Subtract ``penalty`` from frames whose mean green channel exceeds ``green_threshold``.

    Seed 000's green penalty (0.05 above 185): a frame that is mostly grass means the car
    left the track. The mean is taken over the playfield, without the black indicator
    bar, which in seed 000's whole-frame mean keeps even all-grass frames below 185.
    Training only.
    """

    def __init__(self, env: gym.Env, penalty: float = 0.05, green_threshold: float = 185.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, penalty=penalty, green_threshold=green_threshold)
        super().__init__(env)
        if penalty <= 0:
            raise ValueError(f"penalty must be positive, got {penalty!r}")
        if not 0 <= green_threshold <= 255:
            raise ValueError(f"green_threshold must be in [0, 255], got {green_threshold!r}")
        self.penalty = float(penalty)
        self.green_threshold = float(green_threshold)

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if playfield_green_mean(obs) > self.green_threshold:
            reward = float(reward) - self.penalty
        return obs, reward, terminated, truncated, info


class CancelOffPlayfieldPenalty(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Add back the -100 of leaving the playfield (seed 000's "die" bonus). Training only."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if left_playfield(float(reward), terminated):
            reward = 0.0
        return obs, reward, terminated, truncated, info


class GasRewardScale(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Multiply a frame's reward by ``scale`` when the gas pedal is pressed (seed 002: 1.5).

    As in seed 002 the whole reward is scaled, so progress is worth more and idling
    (-0.1) costs more while accelerating. Expects the continuous action
    ``[steer, gas, brake]``. Training only.
    """

    def __init__(self, env: gym.Env, scale: float = 1.5) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale)
        super().__init__(env)
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.scale = float(scale)

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if np.asarray(action)[1] > 0:
            reward = float(reward) * self.scale
        return obs, reward, terminated, truncated, info


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Repeat each action for ``repeat`` frames, summing rewards and stopping at episode end.

    The info returned is the last frame's.

    >>> env = ActionRepeat(gym.make("CarRacing-v3"), repeat=8)
    """

    def __init__(self, env: gym.Env, repeat: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        super().__init__(env)
        self.repeat = _positive_int("repeat", repeat)

    def step(self, action: Any) -> Step:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def preprocess_frames(frames: np.ndarray, grayscale: bool, crop_bottom_bar: bool, size: int) -> np.ndarray:
    """Turn raw RGB frames ``(..., 96, 96, 3)`` into uint8 ``(..., C, size, size)``, C = 1 or 3.

    One frame or a whole batch in two OpenCV calls: the batch is stacked into one tall
    image, converted (ITU-R 601 luma, as seed 000) and resized with area averaging. Frame
    boundaries fall on output pixel boundaries, so no output pixel mixes two frames and
    the result equals per-frame processing.
    """
    if crop_bottom_bar:
        frames = frames[..., :-INDICATOR_BAR_ROWS, :, :]
    batch_shape, (height, width, _) = frames.shape[:-3], frames.shape[-3:]
    count = int(np.prod(batch_shape))
    tall = np.ascontiguousarray(frames).reshape(count * height, width, 3)
    if grayscale:
        tall = cv2.cvtColor(tall, cv2.COLOR_RGB2GRAY)[..., None]
    if (height, width) != (size, size):
        tall = cv2.resize(tall, (size, count * size), interpolation=cv2.INTER_AREA).reshape(count * size, size, -1)
    batch = tall.reshape(count, size, size, -1).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch.reshape(*batch_shape, *batch.shape[1:]))


class PreprocessFrame(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Grayscale, crop the indicator bar, resize; output channel-first uint8 ``(C, size, size)``.

    Frames stay uint8: the policy divides by 255 inside the network.

    >>> env = PreprocessFrame(gym.make("CarRacing-v3"), grayscale=True, crop_bottom_bar=True, size=64)
    >>> env.observation_space.shape
    (1, 64, 64)
    """

    def __init__(self, env: gym.Env, grayscale: bool = True, crop_bottom_bar: bool = False, size: int = 96) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, grayscale=grayscale, crop_bottom_bar=crop_bottom_bar, size=size)
        super().__init__(env)
        self.size = _positive_int("size", size)
        if self.size < MIN_OBS_SIZE:
            raise ValueError(f"size must be at least {MIN_OBS_SIZE} pixels, got {size}")
        self.grayscale, self.crop_bottom_bar = grayscale, crop_bottom_bar
        channels = 1 if grayscale else 3
        self.observation_space = gym.spaces.Box(0, 255, (channels, self.size, self.size), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return preprocess_frames(observation, self.grayscale, self.crop_bottom_bar, self.size)


class FrameStack(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Stack the last ``frames`` channel-first observations along the channel axis.

    After reset the stack holds copies of the first observation (seed 000 and 002 do so).
    Shape ``(C, H, W)`` becomes ``(frames * C, H, W)``, oldest first.
    """

    def __init__(self, env: gym.Env, frames: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, frames=frames)
        super().__init__(env)
        self.frames = _positive_int("frames", frames)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box) and len(space.shape) == 3, "FrameStack expects (C, H, W) frames"
        self._channels = space.shape[0]
        self.observation_space = gym.spaces.Box(0, 255, (self._channels * self.frames, *space.shape[1:]), np.uint8)
        self._stack = np.zeros(self.observation_space.shape, np.uint8)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._stack[:] = np.tile(obs, (self.frames, 1, 1))
        return self._stack.copy(), info

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._stack = np.roll(self._stack, -self._channels, axis=0)
        self._stack[-self._channels :] = obs
        return self._stack.copy(), reward, terminated, truncated, info


# Seed 002's table: {left, straight, right} x {full gas, half gas, brake 0.2, coast}.
# fmt: off
_SEED002_ACTIONS = np.array(
    [
        [-1, 1, 0], [0, 1, 0], [1, 1, 0],
        [-1, 0.5, 0], [0, 0.5, 0], [1, 0.5, 0],
        [-1, 0, 0.2], [0, 0, 0.2], [1, 0, 0.2],
        [-1, 0, 0], [0, 0, 0], [1, 0, 0],
    ],
    dtype=np.float64,
)
# fmt: on

DISCRETE_ACTION_SETS: dict[str, np.ndarray] = {
    "seed002": _SEED002_ACTIONS,
    # CarRacing-v3(continuous=False): noop, steer(-0.6), steer(+0.6), gas 0.2, brake 0.8;
    # the raw env steers by -action[0], hence the signs.
    "gymnasium": np.array(
        [[0, 0, 0], [0.6, 0, 0], [-0.6, 0, 0], [0, 0.2, 0], [0, 0, 0.8]],
        dtype=np.float64,
    ),
}
"""Named discrete action sets as rows of continuous ``[steer, gas, brake]`` actions.

float64, so the raw env (which computes in float64) gets exactly 0.2, not 0.2000000030.
"""


class DiscreteActions(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Expose ``Discrete(len(actions))`` over a continuous ``[steer, gas, brake]`` env.

    :param actions: a name from ``DISCRETE_ACTION_SETS`` or an array of shape ``(n, 3)``.
    """

    def __init__(self, env: gym.Env, actions: str | np.ndarray) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, actions=actions)
        super().__init__(env)
        if isinstance(actions, str):
            if actions not in DISCRETE_ACTION_SETS:
                raise ValueError(f"unknown discrete action set {actions!r}; known: {', '.join(DISCRETE_ACTION_SETS)}")
            actions = DISCRETE_ACTION_SETS[actions]
        table = np.asarray(actions, dtype=np.float64)
        space = env.action_space
        assert isinstance(space, gym.spaces.Box)
        inside = table.ndim == 2 and np.all(table >= space.low) and np.all(table <= space.high)
        if table.shape[1:] != space.shape or not inside:
            raise ValueError(f"discrete actions must be rows inside {space}, got shape {table.shape}")
        self.table = table
        self.action_space = gym.spaces.Discrete(len(table))

    def action(self, action: Any) -> np.ndarray:
        return self.table[int(action)]


def throttle_to_pedals(actions: np.ndarray) -> np.ndarray:
    """``[steer, throttle]`` rows -> ``[steer, gas, brake]``: throttle > 0 is gas, < 0 is brake.

    >>> throttle_to_pedals(np.array([[0.5, 0.8], [-1.0, -0.25]]))
    array([[ 0.5 ,  0.8 ,  0.  ],
           [-1.  ,  0.  ,  0.25]])
    """
    actions = np.asarray(actions, dtype=np.float64)
    throttle = actions[..., 1]
    return np.stack([actions[..., 0], np.maximum(throttle, 0.0), np.maximum(-throttle, 0.0)], axis=-1)


CAR_RACING_ACTIONS = gym.spaces.Box(np.array([-1.0, 0.0, 0.0], np.float32), np.ones(3, np.float32))
"""CarRacing-v3's continuous action space: ``[steer, gas, brake]``."""
THROTTLE_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
"""The action space of ``env.throttle_axis``: ``[steer, throttle]``."""


class ThrottleAxis(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Act with ``[steer, throttle]`` in [-1, 1]^2 over a ``[steer, gas, brake]`` env.

    One pedal axis: gas and brake are never pressed together, and an action at the
    centre of the space coasts instead of braking as hard as it accelerates.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.action_space = THROTTLE_SPACE

    def action(self, action: Any) -> np.ndarray:
        return throttle_to_pedals(np.clip(action, -1.0, 1.0))
