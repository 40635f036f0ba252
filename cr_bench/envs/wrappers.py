"""CarRacing-v3 wrappers, one behaviour each, composed by :func:`cr_bench.envs.make.make_env`.

Stack order, from the raw env up (see ``make_env``)::

    CarRacing-v3 (TimeLimit 1000 frames)
    -> EpisodeScore          raw return and frame count, below everything else
    -> SkipZoom              no-op frames after reset
    -> training_wrappers(): NoProgressTermination -> OffTrackTermination
       -> CancelOffPlayfieldPenalty -> GrassPenalty -> GasRewardScale      training only
    -> ActionRepeat -> PreprocessFrame -> FrameStack -> DiscreteActions

The state of each per-frame behaviour lives in a batched class over ``n_envs`` envs
(:class:`ScoreCounters`, :class:`FrameStacker` and the :class:`FrameRule` subclasses).
A gymnasium wrapper holds a batch of one; :class:`cr_bench.envs.envpool_backend.EnvPoolVecEnv`
holds the whole batch, and applies the training rules in :func:`training_wrappers`' order.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d.car_racing import CarRacing

if TYPE_CHECKING:
    from cr_bench.spec.run import ShapingConfig

# CarRacing-v3 facts (gymnasium/envs/box2d/car_racing.py).
MAX_EPISODE_FRAMES = 1000
"""CarRacing-v3's time limit in raw frames."""
OFF_TRACK_GRASS_FRACTION = 0.5
"""The car is off track when at least this fraction of the pixels around it is grass."""
MIN_OBS_SIZE = 8
"""Smallest observation side PreprocessFrame accepts, in pixels."""
FRAME_REWARD = -0.1
"""CarRacing's reward for every raw frame, besides the tiles'."""
TRACK_REWARD = 1000.0
"""What CarRacing pays for visiting every tile of a track (1000 / N per tile)."""
OFF_PLAYFIELD_REWARD = -100.0
"""Reward of the frame on which the car leaves the playfield (the episode terminates)."""
INDICATOR_BAR_ROWS = 12
"""Height of the speed/steering indicator bar at the bottom of the 96x96 frame."""
CAR_PATCH = (slice(66, 78), slice(43, 53))
"""Rows and columns of the 96x96 frame around the car, which the camera keeps fixed."""
NOOP = np.zeros(3, dtype=np.float32)
NO_PROGRESS_TOLERANCE = 1e-6
"""Added to the no-progress threshold: CarRacing's -0.1 rewards are differences of a running
float sum, so a window of them averages a hair above -0.1 (seed 000's rule would never fire)."""
_ONE_ENV = np.zeros(1, dtype=np.int64)
"""The env ids of a gymnasium wrapper's batch of one."""

Step = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]


def _positive_int(name: str, value: int) -> int:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class ScoreCounters:
    """Raw return, raw frame count and lap progress of each of ``n_envs`` envs since its reset.

    ``true_return`` (float64) and ``episode_frames`` (int64) have shape ``(n_envs,)``;
    frames are raw env frames, not agent steps. Used by :class:`EpisodeScore` (one env)
    and by the EnvPool backend (the whole batch).

    The lap metrics come from the raw rewards alone, so both backends count them alike
    (EnvPool exposes no tile counter): CarRacing pays ``-0.1`` a frame plus
    ``1000 / N`` for each new tile of the track's ``N`` (the tiles under the car at reset are
    paid on the first frame), so ``tile_reward / 1000`` is the fraction of tiles visited. The
    frame that leaves the playfield pays -100 instead, and its tiles (if any) are not counted.
    The env ends an episode itself for a lap (every tile visited) or for leaving the
    playfield; ``lap_frames`` is the frame count at a lap's end (0: no lap completed).

    >>> counters = ScoreCounters(2)
    >>> counters.add(np.array([1, 0]), np.array([-0.1, 3.0]))
    >>> counters.add(np.array([1]), np.array([-0.1]))
    >>> counters.info(1)
    {'true_return': -0.2, 'episode_frames': 2, 'tile_fraction': 0.0, 'lap_frames': None}
    >>> counters.info(0)["tile_fraction"]
    0.0031
    """

    def __init__(self, n_envs: int) -> None:
        self.true_return = np.zeros(n_envs)
        self.episode_frames = np.zeros(n_envs, dtype=np.int64)
        self.tile_reward = np.zeros(n_envs)
        self.lap_frames = np.zeros(n_envs, dtype=np.int64)

    def reset(self, ids: np.ndarray) -> None:
        """Start envs ``ids`` at a zero return, zero frames and no tile visited."""
        self.true_return[ids] = 0.0
        self.episode_frames[ids] = 0
        self.tile_reward[ids] = 0.0
        self.lap_frames[ids] = 0

    def add(self, ids: np.ndarray, rewards: np.ndarray, terminated: np.ndarray | None = None) -> None:
        """Count one raw frame of env ``ids[k]``: raw reward ``rewards[k]``, the raw env's ``terminated[k]``."""
        ended = np.zeros(len(ids), dtype=bool) if terminated is None else np.asarray(terminated, dtype=bool)
        self.true_return[ids] += rewards
        self.episode_frames[ids] += 1
        left = left_playfield(rewards, ended)
        self.tile_reward[ids] += np.where(left, 0.0, np.asarray(rewards) - FRAME_REWARD)
        lap = ids[completed_lap(rewards, ended)]
        self.lap_frames[lap] = self.episode_frames[lap]

    def info(self, env: int) -> dict[str, Any]:
        """The ``info`` entries of env ``env``: ``true_return``, ``episode_frames``, ``tile_fraction``
        (4 decimals) and ``lap_frames`` (the frames to the lap's end, ``None`` before one)."""
        fraction = round(min(max(float(self.tile_reward[env]) / TRACK_REWARD, 0.0), 1.0), 4)
        return {
            "true_return": float(self.true_return[env]),
            "episode_frames": int(self.episode_frames[env]),
            "tile_fraction": fraction,
            "lap_frames": int(self.lap_frames[env]) or None,
        }


class EpisodeScore(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Record the raw CarRacing return, frame count and lap progress in ``info`` on every step.

    ``info["true_return"]`` is the sum of the unwrapped env's rewards since reset,
    ``info["episode_frames"]`` the number of raw frames, and ``tile_fraction`` and
    ``lap_frames`` the lap metrics (:class:`ScoreCounters`). It must
    sit directly on the raw env, below every shaping, termination and repeat wrapper:
    that makes it the score, whatever ends the episode.

    >>> env = EpisodeScore(gym.make("CarRacing-v3"))
    >>> _ = env.reset(seed=0)
    >>> _, reward, _, _, info = env.step(NOOP)
    >>> info["episode_frames"], info["true_return"] == reward
    (1, True)
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.counters = ScoreCounters(1)

    @property
    def true_return(self) -> float:
        """Raw return since reset."""
        return float(self.counters.true_return[0])

    @property
    def episode_frames(self) -> int:
        """Raw frames since reset."""
        return int(self.counters.episode_frames[0])

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.counters.reset(_ONE_ENV)
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, **self.counters.info(0)}

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.counters.add(_ONE_ENV, np.array([float(reward)]), np.array([terminated]))
        return obs, reward, terminated, truncated, {**info, **self.counters.info(0)}


class ObservationsUndrawn:
    """Within, CarRacing's steps skip drawing their observation and return a copy of the last one drawn.

    Drawing the 96x96 ``state_pixels`` is almost all of a gymnasium frame's cost (6.5 ms of
    6.6 here), and nothing in the physics, rewards or time limit reads it. A wrapper that
    throws a frame's observation away (:class:`ActionRepeat`'s inner frames, :class:`SkipZoom`'s
    no-ops) steps within this, and :meth:`draw` gives the frame it returns; no wrapper between
    it and CarRacing may read or change observations. The other render modes (``rgb_array``
    for recording, ``human`` for play) draw as ever. An env that is not CarRacing, or renders
    ``state_pixels`` itself, is stepped unchanged. Contexts nest.
    """

    def __init__(self, env: gym.Env) -> None:
        car = env.unwrapped
        self.car = car if isinstance(car, CarRacing) and car.render_mode != "state_pixels" else None
        self._shown = 0.0
        """The score the last undrawn frame would show: CarRacing draws before its -0.1."""
        self._outer: Any = None
        """An enclosing context's ``_render``, restored on exit."""

    def __enter__(self) -> ObservationsUndrawn:
        car = self.car
        if car is not None:
            draw = car._render
            self._outer = car.__dict__.get("_render")

            def undrawn(mode: str) -> Any:
                if mode != "state_pixels":
                    return draw(mode)
                self._shown = car.reward
                return draw(mode) if self._outer is not None else car.state.copy()

            car._render = undrawn  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.car is None:
            return
        if self._outer is not None:
            self.car._render = self._outer  # type: ignore[method-assign]
        else:
            del self.car._render

    def draw(self, obs: Any) -> Any:
        """The last undrawn frame's observation, exactly as CarRacing would have drawn it
        (drawing reads the state and changes nothing but the observation); ``obs`` for other envs."""
        car = self.car
        if car is None:
            return obs
        reward, car.reward = car.reward, self._shown
        try:
            car.state = type(car)._render(car, "state_pixels")
        finally:
            car.reward = reward
        return car.state


class SkipZoom(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Take ``frames`` no-op steps after each reset, skipping CarRacing's zoom-in (seed 004: 50).

    The skipped frames still count in the episode's frames and raw return; only the last
    one's observation is drawn (:class:`ObservationsUndrawn`).
    """

    def __init__(self, env: gym.Env, frames: int = 50) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, frames=frames)
        super().__init__(env)
        self.frames = _positive_int("frames", frames)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        with ObservationsUndrawn(self.env) as undrawn:
            for _ in range(self.frames):
                obs, _, terminated, truncated, info = self.env.step(NOOP)
                if terminated or truncated:  # cannot happen within the 1000-frame limit; be safe
                    obs, info = self.env.reset()
        return undrawn.draw(obs), info


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


def completed_lap(reward: np.ndarray | float, terminated: np.ndarray | bool) -> np.ndarray:
    """Whether a raw frame completes a lap: the env ends an episode itself only for that (every
    tile visited) or for leaving the playfield (:func:`left_playfield`)."""
    return np.asarray(terminated) & ~left_playfield(reward, terminated)


@dataclass
class FrameBatch:
    """One raw frame of a batch of envs, as the training rules see it and change it.

    Row ``k`` is env ``ids[k]``. A rule shapes ``rewards`` and may end episodes
    (:meth:`stop`) in place; the next rule sees the result, as a wrapper sees the
    wrappers below it.
    """

    ids: np.ndarray
    """``(n,)`` int: the env of each row, an index into the rules' per-env state."""
    frames: np.ndarray
    """``(n, 96, 96, 3)`` uint8: the raw RGB frames."""
    actions: np.ndarray
    """``(n, 3)``: the continuous ``[steer, gas, brake]`` actions that produced them."""
    rewards: np.ndarray
    """``(n,)`` float64: the frames' rewards, raw until a rule shapes them."""
    terminated: np.ndarray
    """``(n,)`` bool."""
    truncated: np.ndarray
    """``(n,)`` bool: the 1000-frame time limit."""
    early_termination: np.ndarray
    """``(n,)`` object: the name of the rule that ended the episode, or ``""``."""

    @classmethod
    def of_one(
        cls, frame: np.ndarray, action: Any, reward: SupportsFloat, terminated: bool, truncated: bool
    ) -> FrameBatch:
        """A batch of one env (env 0), from a gymnasium step."""
        return cls(
            ids=_ONE_ENV,
            frames=np.asarray(frame)[None],
            actions=np.asarray(action, dtype=np.float64).reshape(1, -1),
            rewards=np.array([float(reward)]),
            terminated=np.array([terminated]),
            truncated=np.array([truncated]),
            early_termination=np.array([""], dtype=object),
        )

    def stop(self, rows: np.ndarray, reason: str) -> None:
        """End the episodes of ``rows`` (an ``(n,)`` bool mask) because of ``reason``.

        Episodes already ended, by the env or by an earlier rule, keep their ending.
        """
        rows = rows & ~(self.terminated | self.truncated)
        self.terminated = self.terminated | rows
        self.early_termination[rows] = reason


class FrameRule(abc.ABC):
    """A training-only behaviour applied to every raw frame of ``n_envs`` envs.

    Rules with state keep one row of it per env; :meth:`reset` clears the rows of envs
    that start a new episode. :class:`FrameRuleWrapper` applies a rule to one gymnasium
    env, EnvPoolVecEnv to its whole batch.
    """

    reads_frames: ClassVar[bool] = False
    """Whether :meth:`apply` reads ``batch.frames``: then every frame's observation is drawn."""

    def __init__(self, n_envs: int) -> None:
        self.n_envs = _positive_int("n_envs", n_envs)

    def reset(self, ids: np.ndarray) -> None:  # noqa: B027 (stateless rules keep this no-op)
        """Envs ``ids`` start new episodes."""

    @abc.abstractmethod
    def apply(self, batch: FrameBatch) -> None:
        """Update the state of ``batch.ids`` and change ``batch`` in place."""


class NoProgressRule(FrameRule):
    """End an episode when the mean reward of its last ``window`` frames is <= ``threshold``.

    The history starts as zeros, as in seed 000. State: ``rewards``, ``(n_envs, window)``,
    oldest first.

    >>> rule = NoProgressRule(1, window=2, threshold=-1.0)
    >>> batch = FrameBatch.of_one(np.zeros((96, 96, 3), np.uint8), NOOP, -2.0, False, False)
    >>> rule.apply(batch)
    >>> bool(batch.terminated[0]), batch.early_termination[0]
    (True, 'no_progress')
    """

    def __init__(self, n_envs: int, window: int, threshold: float) -> None:
        super().__init__(n_envs)
        self.window = _positive_int("window", window)
        self.threshold = float(threshold)
        self.rewards = np.zeros((n_envs, self.window))

    def reset(self, ids: np.ndarray) -> None:
        self.rewards[ids] = 0.0

    def apply(self, batch: FrameBatch) -> None:
        history = self.rewards[batch.ids]
        history[:, :-1] = history[:, 1:]
        history[:, -1] = batch.rewards
        self.rewards[batch.ids] = history
        # cumsum adds oldest to newest one at a time, so the mean does not depend on the batch.
        mean = np.cumsum(history, axis=1)[:, -1] / self.window
        batch.stop(mean <= self.threshold + NO_PROGRESS_TOLERANCE, "no_progress")


class OffTrackRule(FrameRule):
    """End an episode after ``max_frames`` consecutive frames with the car on grass.

    "On grass" is read from the pixels around the car (:func:`grass_fraction_under_car`).
    State: ``off_track_frames``, ``(n_envs,)`` int, the current run of grass frames.
    """

    reads_frames = True

    def __init__(self, n_envs: int, max_frames: int, grass_fraction: float = OFF_TRACK_GRASS_FRACTION) -> None:
        super().__init__(n_envs)
        self.max_frames = _positive_int("max_frames", max_frames)
        if not 0.0 < grass_fraction <= 1.0:
            raise ValueError(f"grass_fraction must be in (0, 1], got {grass_fraction!r}")
        self.grass_fraction = float(grass_fraction)
        self.off_track_frames = np.zeros(n_envs, dtype=np.int64)

    def reset(self, ids: np.ndarray) -> None:
        self.off_track_frames[ids] = 0

    def apply(self, batch: FrameBatch) -> None:
        off_track = grass_fraction_under_car(batch.frames) >= self.grass_fraction
        frames = np.where(off_track, self.off_track_frames[batch.ids] + 1, 0)
        self.off_track_frames[batch.ids] = frames
        batch.stop(frames >= self.max_frames, "off_track")


class CancelOffPlayfieldRule(FrameRule):
    """Set the -100 reward of leaving the playfield to 0. Stateless."""

    def apply(self, batch: FrameBatch) -> None:
        batch.rewards = np.where(left_playfield(batch.rewards, batch.terminated), 0.0, batch.rewards)


class GrassPenaltyRule(FrameRule):
    """Subtract ``penalty`` from frames whose playfield's mean green channel exceeds ``green_threshold``."""

    reads_frames = True

    def __init__(self, n_envs: int, penalty: float, green_threshold: float) -> None:
        super().__init__(n_envs)
        if penalty <= 0:
            raise ValueError(f"penalty must be positive, got {penalty!r}")
        if not 0 <= green_threshold <= 255:
            raise ValueError(f"green_threshold must be in [0, 255], got {green_threshold!r}")
        self.penalty = float(penalty)
        self.green_threshold = float(green_threshold)

    def apply(self, batch: FrameBatch) -> None:
        grass = playfield_green_mean(batch.frames) > self.green_threshold
        batch.rewards = np.where(grass, batch.rewards - self.penalty, batch.rewards)


class LapBonusRule(FrameRule):
    """Add ``bonus`` to the reward of the frame that completes a lap. Stateless.

    Needs the env's own ``terminated``: it comes before every rule that ends episodes."""

    def __init__(self, n_envs: int, bonus: float) -> None:
        super().__init__(n_envs)
        if bonus <= 0:
            raise ValueError(f"bonus must be positive, got {bonus!r}")
        self.bonus = float(bonus)

    def apply(self, batch: FrameBatch) -> None:
        lap = completed_lap(batch.rewards, batch.terminated) & (batch.early_termination == "")
        batch.rewards = np.where(lap, batch.rewards + self.bonus, batch.rewards)


class GasRewardScaleRule(FrameRule):
    """Multiply the reward of frames played with the gas pressed (``action[1] > 0``) by ``scale``."""

    def __init__(self, n_envs: int, scale: float) -> None:
        super().__init__(n_envs)
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.scale = float(scale)

    def apply(self, batch: FrameBatch) -> None:
        batch.rewards = np.where(batch.actions[:, 1] > 0, batch.rewards * self.scale, batch.rewards)


class FrameRuleWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Apply a :class:`FrameRule` to one env, as a batch of one.

    Subclasses name the rule (``rule_class``) and its arguments; an episode the rule ends
    gets ``info["early_termination"]``, the rule's reason.
    """

    rule_class: ClassVar[type[FrameRule]]

    def __init__(self, env: gym.Env, **arguments: Any) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, **arguments)
        super().__init__(env)
        self.rule = self.rule_class(1, **arguments)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.rule.reset(_ONE_ENV)
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        batch = FrameBatch.of_one(obs, action, reward, terminated, truncated)
        self.rule.apply(batch)
        if batch.early_termination[0]:
            info = {**info, "early_termination": batch.early_termination[0]}
        return obs, float(batch.rewards[0]), bool(batch.terminated[0]), truncated, info


class NoProgressTermination(FrameRuleWrapper):
    """End the episode when the mean reward of the last ``window`` frames is <= ``threshold``.

    Seed 000's rule (window 100, threshold -0.1): stops episodes where the car stands
    still or drives on grass, since no new tile gives -0.1 per frame. The history starts
    as zeros, as in the seed (:class:`NoProgressRule`). Training only.
    """

    rule_class = NoProgressRule

    def __init__(self, env: gym.Env, window: int = 100, threshold: float = -0.1) -> None:
        super().__init__(env, window=window, threshold=threshold)


class OffTrackTermination(FrameRuleWrapper):
    """End the episode after ``max_frames`` consecutive frames with the car on grass.

    Seed 002 stops an episode after a number of off-track steps; it guesses "off track"
    from the reward, here it is read from the pixels around the car, so it works the
    same on any backend (:class:`OffTrackRule`). Training only.
    """

    rule_class = OffTrackRule

    def __init__(self, env: gym.Env, max_frames: int = 50, grass_fraction: float = OFF_TRACK_GRASS_FRACTION) -> None:
        super().__init__(env, max_frames=max_frames, grass_fraction=grass_fraction)


class CancelOffPlayfieldPenalty(FrameRuleWrapper):
    """Add back the -100 of leaving the playfield (seed 000's "die" bonus). Training only."""

    rule_class = CancelOffPlayfieldRule


class GrassPenalty(FrameRuleWrapper):
    """Subtract ``penalty`` from frames whose mean green channel exceeds ``green_threshold``.

    Seed 000's green penalty (0.05 above 185): a frame that is mostly grass means the car
    left the track. The mean is taken over the playfield, without the black indicator
    bar, which in seed 000's whole-frame mean keeps even all-grass frames below 185.
    Training only.
    """

    rule_class = GrassPenaltyRule

    def __init__(self, env: gym.Env, penalty: float = 0.05, green_threshold: float = 185.0) -> None:
        super().__init__(env, penalty=penalty, green_threshold=green_threshold)


class GasRewardScale(FrameRuleWrapper):
    """Multiply a frame's reward by ``scale`` when the gas pedal is pressed (seed 002: 1.5).

    As in seed 002 the whole reward is scaled, so progress is worth more and idling
    (-0.1) costs more while accelerating. Expects the continuous action
    ``[steer, gas, brake]``. Training only.
    """

    rule_class = GasRewardScaleRule

    def __init__(self, env: gym.Env, scale: float = 1.5) -> None:
        super().__init__(env, scale=scale)


class LapBonus(FrameRuleWrapper):
    """Add ``bonus`` to the reward of the frame that completes a lap. Training only.

    CarRacing ends an episode when every tile has been visited, so a lap is worth only the
    frames it saves (0.1 each): a car that misses a tile in a corner drives on until the time
    limit at almost the same return. The bonus makes every tile worth the lap.
    """

    rule_class = LapBonusRule

    def __init__(self, env: gym.Env, bonus: float) -> None:
        super().__init__(env, bonus=bonus)


TrainingWrapper = tuple[type[FrameRuleWrapper], dict[str, Any]]
"""A training-only wrapper class and its arguments (without the env)."""


def training_wrappers(shaping: ShapingConfig) -> list[TrainingWrapper]:
    """The training-only wrappers ``shaping`` turns on, innermost first.

    The one home of their order: :func:`cr_bench.envs.make.make_env` stacks the wrappers in
    this order, EnvPoolVecEnv applies their rules (``cls.rule_class(n_envs, **arguments)``)
    to each raw frame in this order.

    >>> from cr_bench.spec.run import ShapingConfig
    >>> [cls.__name__ for cls, _ in training_wrappers(ShapingConfig(grass_penalty=0.05, no_progress_window=100))]
    ['NoProgressTermination', 'GrassPenalty']
    """
    chosen: list[TrainingWrapper] = []
    # First: it reads the env's own episode ends, before a rule ends one.
    if shaping.lap_bonus:
        chosen.append((LapBonus, {"bonus": shaping.lap_bonus}))
    if shaping.no_progress_window:
        arguments = {"window": shaping.no_progress_window, "threshold": shaping.no_progress_threshold}
        chosen.append((NoProgressTermination, arguments))
    if shaping.max_off_track_frames:
        chosen.append((OffTrackTermination, {"max_frames": shaping.max_off_track_frames}))
    # Directly above the raw rewards, so it recognises the -100 before other shaping.
    if shaping.cancel_off_playfield_penalty:
        chosen.append((CancelOffPlayfieldPenalty, {}))
    if shaping.grass_penalty:
        arguments = {"penalty": shaping.grass_penalty, "green_threshold": shaping.grass_green_threshold}
        chosen.append((GrassPenalty, arguments))
    if shaping.gas_reward_scale != 1.0:
        chosen.append((GasRewardScale, {"scale": shaping.gas_reward_scale}))
    return chosen


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Repeat each action for ``repeat`` frames, summing rewards and stopping at episode end.

    The observation and info returned are the last frame's. With ``draw_every_frame=False``
    the frames before the last are not drawn (:class:`ObservationsUndrawn`): ``repeat`` times
    faster on gymnasium and the same episode, for stacks where no wrapper below reads or
    changes observations (:func:`cr_bench.envs.make.make_env` decides).

    >>> env = ActionRepeat(gym.make("CarRacing-v3"), repeat=8)
    """

    def __init__(self, env: gym.Env, repeat: int, draw_every_frame: bool = True) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat, draw_every_frame=draw_every_frame)
        super().__init__(env)
        self.repeat = _positive_int("repeat", repeat)
        self.draw_every_frame = bool(draw_every_frame)

    def step(self, action: Any) -> Step:
        total = 0.0
        for frame in range(1, self.repeat + 1):
            if self.draw_every_frame or frame == self.repeat:
                obs, reward, terminated, truncated, info = self.env.step(action)
            else:
                with ObservationsUndrawn(self.env) as undrawn:
                    obs, reward, terminated, truncated, info = self.env.step(action)
                if terminated or truncated:
                    obs = undrawn.draw(obs)
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


class FrameStacker:
    """The last ``frames`` channel-first observations of ``n_envs`` envs, stacked on the channel axis.

    ``stack`` has shape ``(n_envs, frames * C, H, W)``, oldest first. Used by
    :class:`FrameStack` (one env) and by the EnvPool backend (the whole batch).

    >>> stacker = FrameStacker(1, frames=3, shape=(1, 1, 1))
    >>> stacker.reset(np.array([0]), np.full((1, 1, 1, 1), 7, np.uint8))
    >>> stacker.push(np.full((1, 1, 1, 1), 8, np.uint8))
    >>> stacker.stack.ravel().tolist()
    [7, 7, 8]
    """

    def __init__(self, n_envs: int, frames: int, shape: tuple[int, ...]) -> None:
        self.frames = _positive_int("frames", frames)
        if len(shape) != 3:
            raise ValueError(f"FrameStacker expects (C, H, W) observations, got shape {shape}")
        self.channels = shape[0]
        self.stack = np.zeros((n_envs, self.channels * self.frames, *shape[1:]), np.uint8)

    def reset(self, ids: np.ndarray, observations: np.ndarray) -> None:
        """Fill envs ``ids``' stacks with copies of their first observations ``(len(ids), C, H, W)``."""
        self.stack[ids] = np.tile(observations, (1, self.frames, 1, 1))

    def push(self, observations: np.ndarray, rows: slice = slice(None)) -> None:
        """Append the newest observation ``(n, C, H, W)`` of the envs in ``rows`` (all by
        default), dropping their oldest."""
        stack = self.stack[rows]
        stack[:, : -self.channels] = stack[:, self.channels :]
        stack[:, -self.channels :] = observations


class FrameStack(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Stack the last ``frames`` channel-first observations along the channel axis.

    After reset the stack holds copies of the first observation (seed 000 and 002 do so).
    Shape ``(C, H, W)`` becomes ``(frames * C, H, W)``, oldest first (:class:`FrameStacker`).
    """

    def __init__(self, env: gym.Env, frames: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, frames=frames)
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box) and len(space.shape) == 3, "FrameStack expects (C, H, W) frames"
        self.stacker = FrameStacker(1, frames, space.shape)
        self.frames = self.stacker.frames
        self.observation_space = gym.spaces.Box(0, 255, self.stacker.stack.shape[1:], np.uint8)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.stacker.reset(_ONE_ENV, obs[None])
        return self.stacker.stack[0].copy(), info

    def step(self, action: Any) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.stacker.push(obs[None])
        return self.stacker.stack[0].copy(), reward, terminated, truncated, info


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
