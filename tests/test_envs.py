"""The composed pipeline on the real CarRacing-v3: checkers, spaces, score bookkeeping."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.box2d import car_racing
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from cr_bench.agents.registry import resolve_config
from cr_bench.envs import wrappers
from cr_bench.envs.make import make_env, make_vec_env
from cr_bench.spec.run import EnvConfig, ShapingConfig

ALL_SHAPING = ShapingConfig(
    grass_penalty=0.05,
    cancel_off_playfield_penalty=True,
    gas_reward_scale=1.5,
    no_progress_window=100,
    max_off_track_frames=50,
)


@pytest.mark.parametrize("agent", ["ppo-beta", "ppo", "dqn"])
def test_agent_pipelines_pass_env_checkers(agent: str) -> None:
    """Each agent's training pipeline passes gymnasium's and SB3's env checkers."""
    env = make_env(resolve_config(agent).env, training=True)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    env.close()


def test_full_pipeline_passes_checkers() -> None:
    """Every wrapper at once (continuous, RGB, cropped, zoom skipped, all shaping)."""
    config = EnvConfig(grayscale=False, crop_bottom_bar=True, obs_size=48, skip_zoom_frames=5, shaping=ALL_SHAPING)
    env = make_env(config, training=True)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    assert env.observation_space.shape == (12, 48, 48) and env.observation_space.dtype == np.uint8
    env.close()


def _wrapper_types(env: gym.Env) -> list[type]:
    types = []
    while isinstance(env, gym.Wrapper):
        types.append(type(env))
        env = env.env
    return types


def test_evaluation_pipeline_has_no_shaping_or_early_termination() -> None:
    """training=False drops every shaping and termination wrapper, keeps the rest."""
    config = EnvConfig(skip_zoom_frames=50, discrete_actions="seed002", shaping=ALL_SHAPING)
    training = set(_wrapper_types(make_env(config, training=True)))
    evaluation = set(_wrapper_types(make_env(config, training=False)))
    shaping = {
        wrappers.GrassPenalty,
        wrappers.CancelOffPlayfieldPenalty,
        wrappers.GasRewardScale,
        wrappers.NoProgressTermination,
        wrappers.OffTrackTermination,
    }
    assert shaping <= training
    assert not shaping & evaluation
    assert {wrappers.EpisodeScore, wrappers.SkipZoom, wrappers.ActionRepeat, wrappers.DiscreteActions} <= evaluation


def test_true_return_is_the_raw_return_under_shaping() -> None:
    """With shaping on, info["true_return"] is the raw env's return while the reward differs."""
    config = EnvConfig(action_repeat=4, frame_stack=2, obs_size=32, skip_zoom_frames=10, shaping=ALL_SHAPING)
    shaped_env = make_env(config, training=True)
    raw_env = gym.make("CarRacing-v3")
    shaped_env.reset(seed=3)
    raw_env.reset(seed=3)
    raw_total = sum(float(raw_env.step(wrappers.NOOP)[1]) for _ in range(10))
    shaped_total, steps = 0.0, 0
    action = np.array([0.0, 1.0, 0.0], dtype=np.float32)  # full gas: the gas scale changes rewards
    for _ in range(40):
        _, reward, terminated, truncated, info = shaped_env.step(action)
        shaped_total += float(reward)
        steps += 1
        if terminated or truncated:
            break
    for _ in range(info["episode_frames"] - 10):
        raw_total += float(raw_env.step(action)[1])
    assert info["true_return"] == pytest.approx(raw_total, abs=1e-6)
    assert shaped_total != pytest.approx(info["true_return"])
    assert 10 + 4 * (steps - 1) < info["episode_frames"] <= 10 + 4 * steps


def test_vec_env_seeds_are_reproducible() -> None:
    """The same seed gives the same first observations; a different seed does not."""
    config = EnvConfig(action_repeat=2, frame_stack=1, obs_size=32)
    first = [make_vec_env(config, 2, seed, vec_env="dummy") for seed in (5, 5, 6)]
    observations = [venv.reset() for venv in first]
    assert np.array_equal(observations[0], observations[1])
    assert not np.array_equal(observations[0], observations[2])
    for venv in first:
        venv.close()


def _find(env: gym.Env, kind: type) -> gym.Env:
    while not isinstance(env, kind):
        assert isinstance(env, gym.Wrapper), f"no {kind.__name__} in the stack"
        env = env.env
    return env


@pytest.mark.parametrize(
    ("shaping", "training", "draws_every_frame"),
    [
        (ALL_SHAPING, False, False),  # evaluation: nothing below the repeat reads a frame
        (ShapingConfig(no_progress_window=100, cancel_off_playfield_penalty=True), True, False),
        (ShapingConfig(grass_penalty=0.05), True, True),  # reads each frame's green
        (ShapingConfig(max_off_track_frames=50), True, True),  # reads the pixels under the car
    ],
)
def test_inner_frames_are_drawn_only_where_a_wrapper_reads_them(
    shaping: ShapingConfig, training: bool, draws_every_frame: bool
) -> None:
    repeat = _find(make_env(EnvConfig(shaping=shaping), training=training), wrappers.ActionRepeat)
    assert isinstance(repeat, wrappers.ActionRepeat) and repeat.draw_every_frame is draws_every_frame


def test_undrawn_inner_frames_play_the_same_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skipping the drawing of the frames a repeat and SkipZoom throw away changes nothing an
    agent or a score sees, on a real track: the same observations, rewards, ends and infos as
    drawing every frame, also when the episode ends inside a repeat (30 frames: 4 zoom no-ops,
    8 steps of 3, then 2). Only the frames returned are drawn."""
    draws: list[str] = []
    render = car_racing.CarRacing._render

    def counted(self: car_racing.CarRacing, mode: str) -> object:
        draws.append(mode)
        return render(self, mode)

    monkeypatch.setattr(car_racing.CarRacing, "_render", counted)

    def play() -> list[tuple]:
        draws.clear()
        env = gym.make("CarRacing-v3", max_episode_steps=30)
        env = wrappers.ActionRepeat(wrappers.SkipZoom(wrappers.EpisodeScore(env), 4), 3, draw_every_frame=False)
        obs, info = env.reset(seed=7)
        steps: list[tuple] = [(obs, info)]
        actions = np.random.default_rng(0).uniform([-1, 0, 0], [1, 1, 0.3], (20, 3)).astype(np.float32)
        for action in actions:
            step = env.step(action)
            steps.append(step)
            if step[2] or step[3]:
                break
        return steps

    undrawn = play()
    assert len(draws) == 1 + 1 + 9  # reset, the last no-op, each agent step's last frame
    with monkeypatch.context() as every_frame:  # the reference: nothing is left undrawn
        every_frame.setattr(wrappers.ObservationsUndrawn, "__init__", lambda self, env: setattr(self, "car", None))
        drawn = play()
    assert len(draws) == 1 + 4 + 26
    assert len(undrawn) == len(drawn) == 1 + 9 and drawn[-1][3]  # truncated at frame 30, inside a repeat
    for (obs, *rest), (obs_drawn, *rest_drawn) in zip(undrawn, drawn, strict=True):
        assert np.array_equal(obs, obs_drawn)
        assert rest == rest_drawn


def test_a_late_drawn_frame_shows_the_score_of_its_time() -> None:
    """CarRacing draws a frame's score before it takes the frame's 0.1 off: a frame drawn after
    the step (an episode that ends inside a repeat) shows the score it would have shown then.
    At 100.55 the bar reads 0101, where the score after the step (100.45) reads 0100."""
    drawn_env, undrawn_env = gym.make("CarRacing-v3"), gym.make("CarRacing-v3")
    for env in (drawn_env, undrawn_env):
        env.reset(seed=3)
        env.unwrapped.reward = env.unwrapped.prev_reward = 100.55
    reference = drawn_env.step(wrappers.NOOP)[0]
    with wrappers.ObservationsUndrawn(undrawn_env) as undrawn:
        stale = undrawn_env.step(wrappers.NOOP)[0]
    assert not np.array_equal(stale, reference)
    assert np.array_equal(undrawn.draw(stale), reference)


def test_undrawn_contexts_nest_and_restore_drawing() -> None:
    """A frame left undrawn in an inner context (a repeat inside SkipZoom's no-ops) is drawn
    exactly by the outer one, score included; each exit restores what it replaced."""
    drawn_env, env = gym.make("CarRacing-v3"), gym.make("CarRacing-v3")
    for each in (drawn_env, env):
        each.reset(seed=5)
        each.unwrapped.reward = each.unwrapped.prev_reward = 100.55
    reference = drawn_env.step(wrappers.NOOP)[0]
    car = env.unwrapped
    with wrappers.ObservationsUndrawn(env) as outer:
        with wrappers.ObservationsUndrawn(env):
            stale = env.step(wrappers.NOOP)[0]
        assert "_render" in car.__dict__  # the outer context's
    assert "_render" not in car.__dict__
    assert np.array_equal(outer.draw(stale), reference)
