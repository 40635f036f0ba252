"""cr-bench play: the arrow keys drive the car, the score is the raw return, eval's files come out,
and without a display it is one line. Headless: SDL's dummy video driver, with the key events
posted by the test in place of pygame's event queue."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pygame
import pytest

from cr_bench.evaluation.episodes import EpisodeResult
from cr_bench.evaluation.play import NO_DISPLAY, HumanEpisode, Keyboard, play_episode
from cr_bench.spec.run import ENV_ID, TEST_TRACK_START
from tests.conftest import run_cli


def _key(kind: int, key: int) -> pygame.event.Event:
    return pygame.event.Event(kind, key=key)


def _scripted(schedule: dict[int, list[pygame.event.Event]]) -> Callable[[], list[Any]]:
    """Stands in for ``pygame.event.get``: call ``i`` (frame ``i``) returns ``schedule[i]``."""
    calls = iter(range(10**6))
    return lambda: schedule.get(next(calls), [])


def _raw_return(actions: list[list[float]], track_seed: int) -> float:
    env = gym.make(ENV_ID)
    env.reset(seed=track_seed)
    total = sum(float(env.step(np.array(action, dtype=np.float32))[1]) for action in actions)
    env.close()
    return total


def test_no_display_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run_cli(["play"])
    assert code == 2
    assert err.strip() == f"cr-bench: error: {NO_DISPLAY}"
    assert "xvfb-run" in NO_DISPLAY


def test_arrow_keys_map_as_in_seed_004() -> None:
    keyboard = Keyboard()
    assert keyboard.action().tolist() == [0.0, 0.0, 0.0]
    keyboard.handle([_key(pygame.KEYDOWN, pygame.K_UP), _key(pygame.KEYDOWN, pygame.K_RIGHT)])
    assert keyboard.action().tolist() == [1.0, 1.0, 0.0]
    keyboard.handle([_key(pygame.KEYDOWN, pygame.K_LEFT), _key(pygame.KEYDOWN, pygame.K_DOWN)])
    assert keyboard.action().tolist() == [-1.0, 1.0, 1.0]  # left wins over right, as seed 004's if/elif
    keyboard.handle([_key(pygame.KEYUP, pygame.K_UP), _key(pygame.KEYUP, pygame.K_LEFT)])
    assert keyboard.action().tolist() == [1.0, 0.0, 1.0] and not keyboard.quit
    keyboard.handle([_key(pygame.KEYDOWN, pygame.K_ESCAPE)])
    assert keyboard.quit


def test_keys_drive_the_car_and_the_score_is_the_raw_return(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gas for 80 frames, then left for 40, then the window closes at frame 200: the episode's
    score equals the raw env's return for those actions on the same track, every frame is kept
    for the video, and the driven car beats a parked one."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    schedule = {
        0: [_key(pygame.KEYDOWN, pygame.K_UP)],
        80: [_key(pygame.KEYUP, pygame.K_UP), _key(pygame.KEYDOWN, pygame.K_LEFT)],
        120: [_key(pygame.KEYUP, pygame.K_LEFT)],
        200: [pygame.event.Event(pygame.QUIT)],
    }
    episode = play_episode(TEST_TRACK_START, fps=1000, keep_frames=True, events=_scripted(schedule))
    actions = [[0.0, 1.0, 0.0]] * 80 + [[-1.0, 0.0, 0.0]] * 40 + [[0.0, 0.0, 0.0]] * 80
    assert [a.tolist() for a in episode.actions] == actions
    assert episode.ended_early and len(episode.frames) == 200
    result = episode.result
    assert (result.track_seed, result.length, result.steps) == (TEST_TRACK_START, 200, 200)
    driven = _raw_return(actions, TEST_TRACK_START)
    assert result.true_return == pytest.approx(driven, abs=1e-6)
    assert driven > _raw_return([[0.0, 0.0, 0.0]] * 200, TEST_TRACK_START) + 5  # the keys moved the car
    assert result.tile_fraction == pytest.approx((driven + 0.1 * 200) / 1000, abs=1e-4)  # its tiles are counted
    assert result.lap_frames is None


def test_play_keeps_finished_episodes_and_films_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two tracks: the first driven to its end, the second left with Esc. episodes.csv (eval's
    format) holds the finished one only; the GIF holds both; the session stops at Esc."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    played: list[int] = []

    def fake_episode(track_seed: int, fps: int, keep_frames: bool) -> HumanEpisode:
        played.append(track_seed)
        early = len(played) == 2
        result = EpisodeResult(track_seed, 10.0 * len(played), 500 if early else 1000, 62 if early else 125, 0.75)
        frames = [np.full((200, 300, 3), 30 * (3 * len(played) + k), dtype=np.uint8) for k in range(3)]
        return HumanEpisode(result, [], frames, ended_early=early)

    monkeypatch.setattr("cr_bench.evaluation.play.play_episode", fake_episode)
    out, video = tmp_path / "human", tmp_path / "human.gif"
    code, stdout, err = run_cli(["play", "--episodes", "3", "--out", str(out), "--record", str(video)])
    assert code == 0, err
    assert played == [TEST_TRACK_START, TEST_TRACK_START + 1]
    assert "not kept as a score" in stdout
    with (out / "episodes.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"track_seed": str(TEST_TRACK_START), "return": "10.0", "length": "1000", "tile_fraction": "0.75",
                     "lap_completed": "False", "lap_frames": "", "steps": "125"}]  # fmt: skip
    assert len(imageio.mimread(video)) == 6
    assert (out / "summary.yaml").exists() and (out / "command.txt").read_text().startswith("cr-bench play")
