"""Record one evaluation episode as a GIF or MP4 with a step and score overlay (as seed 000)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from cr_bench.config import EnvConfig
from cr_bench.envs import make_env
from cr_bench.errors import CrBenchError
from cr_bench.evaluation import EpisodeResult, run_episode

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
        height, width = frame.shape[:2]
        frame = cv2.resize(frame, (int(width * self.scale), int(height * self.scale)), interpolation=cv2.INTER_AREA)
        text = f"frame {self.frame_index}  score {self.score:.1f}"
        cv2.putText(frame, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 40, 40), 2, cv2.LINE_AA)
        self.frames.append(frame)


def record(
    model: BaseAlgorithm,
    env_config: EnvConfig,
    out: Path,
    track_seed: int,
    deterministic: bool = True,
    fps: int = 25,
    every: int = 2,
) -> EpisodeResult:
    """Play one episode on ``track_seed`` and write it to ``out`` (.gif, or .mp4 with imageio-ffmpeg)."""
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise CrBenchError(f"--out must end in .gif or .mp4, got {out.name}")
    capture: list[RenderCapture] = []

    def wrap(env: gym.Env) -> gym.Env:
        capture.append(RenderCapture(env, every=every))
        return capture[0]

    env = make_env(env_config, training=False, render_mode="rgb_array", raw_wrapper=wrap)
    try:
        result = run_episode(model, env, track_seed, deterministic)
    finally:
        env.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    frames: list[Any] = list(capture[0].frames)
    if out.suffix.lower() == ".gif":
        imageio.mimsave(out, frames, duration=1000 / fps, loop=0)
    else:
        try:
            imageio.mimsave(out, frames, fps=fps, macro_block_size=1)
        except (ImportError, ValueError, RuntimeError) as error:
            raise CrBenchError(
                f"cannot write mp4 ({error}); install imageio-ffmpeg or use .gif".splitlines()[0]
            ) from None
    return result
