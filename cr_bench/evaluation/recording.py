"""Record one evaluation episode as a GIF or MP4 with a step and score overlay (as seed 000)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from cr_bench.envs.envpool_backend import EnvPoolVecEnv
from cr_bench.envs.make import make_env
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.episodes import EpisodeResult, first_episodes, run_episode
from cr_bench.spec.run import EnvConfig, resolve_backend

VIDEO_SUFFIXES = (".gif", ".mp4")


class RenderCapture(gym.Wrapper):
    """Keep every ``every``-th rendered frame, stamped with the frame number and raw score.

    Sits directly on the raw env, so it sees each frame inside action repeats and reset
    no-ops, and its score is the raw return.
    """

    def __init__(self, env: gym.Env, every: int = 2, scale: float = 0.5) -> None:
        super().__init__(env)
        if every < 1 or not 0 < scale <= 1:
            raise ValueError(f"every must be >= 1 and scale in (0, 1], got {every}, {scale}")
        self.every, self.scale = every, scale
        self.frames: list[np.ndarray] = []
        self.frame_index, self.score = 0, 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        result = self.env.reset(**kwargs)
        self.frames, self.frame_index, self.score = [], 0, 0.0
        self._capture()
        return result

    def step(self, action: Any) -> Any:
        result = self.env.step(action)
        self.frame_index += 1
        self.score += float(result[1])
        if self.frame_index % self.every == 0 or result[2] or result[3]:
            self._capture()
        return result

    def _capture(self) -> None:
        frame = self.env.render()
        assert isinstance(frame, np.ndarray), "RenderCapture needs render_mode='rgb_array'"
        self.frames.append(stamp(frame, self.scale, self.frame_index, self.score))


def stamp(frame: np.ndarray, scale: float, frame_index: int, score: float) -> np.ndarray:
    """Resize an RGB frame by ``scale`` and write the frame number and raw score on it."""
    height, width = frame.shape[:2]
    size = (round(width * scale), round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    frame = cv2.resize(frame, size, interpolation=interpolation)
    text = f"frame {frame_index}  score {score:.1f}"
    cv2.putText(frame, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 40, 40), 2, cv2.LINE_AA)
    return frame


class EnvPoolCapture:
    """The envpool counterpart of RenderCapture: stamps EnvPool's raw 96x96 frames, upscaled 4x."""

    def __init__(self, every: int = 2, scale: float = 4.0) -> None:
        self.every, self.scale = every, scale
        self.frames: list[tuple[int, np.ndarray]] = []
        self.frame_index, self.score = -1, 0.0

    def __call__(self, ids: np.ndarray, frames: np.ndarray, rewards: np.ndarray) -> None:
        self.frame_index += 1
        self.score += float(rewards[0])
        if self.frame_index % self.every == 0:
            self.frames.append((self.frame_index, stamp(frames[0], self.scale, self.frame_index, self.score)))


def record(
    model: BaseAlgorithm,
    env_config: EnvConfig,
    out: Path,
    track_seed: int,
    deterministic: bool = True,
    fps: int = 25,
    every: int = 2,
    backend: str = "gymnasium",
) -> EpisodeResult:
    """Play one episode on ``track_seed`` and write it to ``out`` (.gif, or .mp4 with imageio-ffmpeg).

    gymnasium renders the 600x400 view (shown at half size); EnvPool has only its 96x96
    observation, shown 4x.
    """
    check_video_path(out, "--out")
    if resolve_backend(backend) == "envpool":
        frames, result = _record_envpool(model, env_config, track_seed, deterministic, every)
    else:
        frames, result = _record_gymnasium(model, env_config, track_seed, deterministic, every)
    write_video(out, frames, fps)
    return result


def check_video_path(out: Path, option: str) -> None:
    """Refuse a video path that is neither .gif nor .mp4 (``option`` names the flag)."""
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise CrBenchError(f"{option} must end in .gif or .mp4, got {out.name}")


def write_video(out: Path, frames: list[Any], fps: int) -> None:
    """Write RGB ``frames`` to ``out``: a looping GIF, or an MP4 (needs imageio-ffmpeg)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        imageio.mimsave(out, frames, duration=1000 / fps, loop=0)
        return
    try:
        imageio.mimsave(out, frames, fps=fps, macro_block_size=1)
    except (ImportError, ValueError, RuntimeError) as error:
        raise CrBenchError(f"cannot write mp4 ({error}); install imageio-ffmpeg or use .gif".splitlines()[0]) from None


def _record_gymnasium(
    model: BaseAlgorithm, env_config: EnvConfig, track_seed: int, deterministic: bool, every: int
) -> tuple[list[Any], EpisodeResult]:
    capture: list[RenderCapture] = []

    def wrap(env: gym.Env) -> gym.Env:
        capture.append(RenderCapture(env, every=every))
        return capture[0]

    config = dataclasses.replace(env_config, backend="gymnasium")
    env = make_env(config, training=False, render_mode="rgb_array", raw_wrapper=wrap)
    try:
        result = run_episode(model, env, track_seed, deterministic)
    finally:
        env.close()
    return list(capture[0].frames), result


def _record_envpool(
    model: BaseAlgorithm, env_config: EnvConfig, track_seed: int, deterministic: bool, every: int
) -> tuple[list[Any], EpisodeResult]:
    config = dataclasses.replace(env_config, backend="envpool")
    venv = EnvPoolVecEnv(config, [track_seed], training=False, num_threads=1)
    capture = EnvPoolCapture(every=every)
    venv.frame_hook = capture
    try:
        (result,) = first_episodes(model, venv, track_seed, deterministic)
    finally:
        venv.close()
    # The env resets right after the episode; drop frames of the next one.
    return [frame for index, frame in capture.frames if index <= result.length], result
