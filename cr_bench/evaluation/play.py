"""``cr-bench play``: drive CarRacing-v3 with the keyboard, as seed 004 does.

The keys are :data:`KEYS` (left wins when both steering keys are held). The window shows
gymnasium's 600x400 view with the frame number and the raw score; Esc or closing the window
ends the episode early, and such an episode is shown but not kept as a score.

The score is the raw CarRacing-v3 return (:class:`~cr_bench.envs.wrappers.EpisodeScore`), the
same as ``cr-bench eval``'s, so a human's episodes join a comparison like any agent's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from cr_bench.envs.wrappers import EpisodeScore
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.episodes import EpisodeResult
from cr_bench.evaluation.recording import stamp
from cr_bench.spec.run import ENV_ID

KEYS = "seed 004's keys: left/right steer fully, up is full gas, down full brake; Esc quits"
"""The keyboard mapping, as the help and the window title say it."""
NO_DISPLAY = (
    "play needs a display (no DISPLAY or WAYLAND_DISPLAY is set); on a machine without a screen, "
    "run it on a virtual one: xvfb-run -a cr-bench play ... (Debian: apt install xvfb)"
)


def check_display(environ: dict[str, str] | None = None) -> None:
    """Refuse to open a window where there is no screen (SDL's ``dummy`` driver counts as one).

    :raises CrBenchError: with how to get a virtual display.
    """
    environ = dict(os.environ) if environ is None else environ
    if not sys.platform.startswith("linux"):
        return  # macOS and Windows always have a screen for SDL
    if not any(environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")):
        raise CrBenchError(NO_DISPLAY)


@dataclass
class Keyboard:
    """The held arrow keys, from pygame events, and the action they make (seed 004's mapping)."""

    held: set[int] = field(default_factory=set)
    quit: bool = False

    def handle(self, events: Iterable[Any]) -> None:
        import pygame

        for event in events:
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                self.quit = True
            elif event.type == pygame.KEYDOWN:
                self.held.add(event.key)
            elif event.type == pygame.KEYUP:
                self.held.discard(event.key)

    def action(self) -> np.ndarray:
        """``[steer, gas, brake]``."""
        import pygame

        steer = -1.0 if pygame.K_LEFT in self.held else 1.0 if pygame.K_RIGHT in self.held else 0.0
        gas = 1.0 if pygame.K_UP in self.held else 0.0
        brake = 1.0 if pygame.K_DOWN in self.held else 0.0
        return np.array([steer, gas, brake], dtype=np.float32)


@dataclass
class HumanEpisode:
    """One played episode: its result, the actions taken and (with recording) its frames."""

    result: EpisodeResult
    actions: list[np.ndarray]
    frames: list[np.ndarray]
    ended_early: bool


def play_episode(
    track_seed: int, fps: int, keep_frames: bool, events: Callable[[], Iterable[Any]] | None = None
) -> HumanEpisode:
    """Drive one episode on ``track_seed`` in a pygame window until it ends or the player quits.

    :param fps: frames per second shown (CarRacing's own rate is 50).
    :param keep_frames: keep every frame, stamped, at half size (for ``--record``).
    :param events: where key events come from (default ``pygame.event.get``).
    """
    import pygame

    try:
        pygame.display.init()
        screen = pygame.display.set_mode((600, 400))
    except pygame.error as error:
        raise CrBenchError(f"cannot open a window ({error}); {NO_DISPLAY.split('; ', 1)[1]}") from None
    pygame.display.set_caption(f"cr-bench play: {KEYS}")
    get_events = events or pygame.event.get
    env = EpisodeScore(gym.make(ENV_ID, render_mode="rgb_array"))
    keyboard, clock = Keyboard(), pygame.time.Clock()
    actions: list[np.ndarray] = []
    frames: list[np.ndarray] = []
    try:
        env.reset(seed=track_seed)
        done = False
        while not done:
            keyboard.handle(get_events())
            if keyboard.quit:
                break
            actions.append(keyboard.action())
            _, _, terminated, truncated, _ = env.step(actions[-1])
            done = terminated or truncated
            view = np.asarray(env.render())
            shown = stamp(view, 1.0, env.episode_frames, env.true_return)
            screen.blit(pygame.surfarray.make_surface(shown.swapaxes(0, 1)), (0, 0))
            pygame.display.flip()
            if keep_frames:
                frames.append(stamp(view, 0.5, env.episode_frames, env.true_return))
            clock.tick(fps)
        result = EpisodeResult.from_info(track_seed, env.counters.info(0), len(actions))
    finally:
        env.close()
        pygame.display.quit()
    return HumanEpisode(result, actions, frames, ended_early=not done)
