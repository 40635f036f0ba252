"""Behaviour of each CarRacing wrapper, on the scripted :class:`FakeCarRacing`."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest

from cr_bench.envs.wrappers import (
    DISCRETE_ACTION_SETS,
    ActionRepeat,
    CancelOffPlayfieldPenalty,
    DiscreteActions,
    EpisodeScore,
    FrameBatch,
    FrameStack,
    FrameStacker,
    GasRewardScale,
    GrassPenalty,
    LapBonus,
    NoProgressRule,
    NoProgressTermination,
    OffTrackTermination,
    PreprocessFrame,
    ScoreCounters,
    SkipZoom,
    ThrottleAxis,
    grass_fraction_under_car,
    preprocess_frames,
    training_wrappers,
)
from cr_bench.spec.run import ShapingConfig
from tests.fake_env import GRASS, ROAD, FakeCarRacing, paint, uniform

GAS = np.array([0.0, 1.0, 0.0], dtype=np.float32)
BRAKE = np.array([0.0, 0.0, 0.8], dtype=np.float32)
NOOP = np.zeros(3, dtype=np.float32)


def run(env: gym.Env, frames: int, action: np.ndarray = NOOP) -> list[tuple]:
    """Reset ``env`` and take up to ``frames`` steps of ``action``, stopping at episode end."""
    env.reset(seed=0)
    steps = []
    for _ in range(frames):
        steps.append(env.step(action))
        if steps[-1][2] or steps[-1][3]:
            break
    return steps


# --- EpisodeScore ----------------------------------------------------------------------


def test_episode_score_sums_raw_rewards_and_counts_frames() -> None:
    """info carries the running raw return and frame count; the reward passes through."""
    rewards = [0.5, -0.1, 3.25, -0.1]
    env = EpisodeScore(FakeCarRacing(rewards))
    _, info = env.reset(seed=1)
    assert (info["true_return"], info["episode_frames"]) == (0.0, 0)
    for t, expected in enumerate(rewards, start=1):
        _, reward, _, truncated, info = env.step(NOOP)
        assert reward == expected
        assert info["true_return"] == pytest.approx(sum(rewards[:t]))
        assert info["episode_frames"] == t
    assert truncated


def test_episode_score_ignores_shaping_above_it() -> None:
    """GrassPenalty and GasRewardScale above EpisodeScore change the reward, not the score."""
    rewards = [1.0, -0.5, 2.0]
    fake = FakeCarRacing(rewards, frames=["grass"])
    env = GasRewardScale(GrassPenalty(EpisodeScore(fake), penalty=0.25), scale=2.0)
    steps = run(env, 3, GAS)
    assert [s[1] for s in steps] == pytest.approx([(r - 0.25) * 2.0 for r in rewards])
    assert steps[-1][4]["true_return"] == pytest.approx(sum(rewards))
    assert steps[-1][4]["episode_frames"] == 3


def test_episode_score_when_early_termination_above_ends_episode() -> None:
    """An early termination above EpisodeScore still reports the raw return up to that frame."""
    rewards = [1.0, -1.0, -1.0, -1.0, 5.0, 5.0]
    env = NoProgressTermination(EpisodeScore(FakeCarRacing(rewards)), window=2, threshold=-1.0)
    steps = run(env, 10)
    assert len(steps) == 3
    assert steps[-1][2] and steps[-1][4]["early_termination"] == "no_progress"
    assert steps[-1][4]["true_return"] == pytest.approx(-1.0)
    assert steps[-1][4]["episode_frames"] == 3


def test_episode_score_counts_every_repeated_frame() -> None:
    """Below ActionRepeat, EpisodeScore counts raw frames, not agent steps."""
    rewards = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    env = ActionRepeat(EpisodeScore(FakeCarRacing(rewards)), repeat=3)
    steps = run(env, 2)
    assert [s[4]["episode_frames"] for s in steps] == [3, 6]
    assert steps[-1][4]["true_return"] == pytest.approx(21.0)


def test_episode_score_reset_zeroes_counters() -> None:
    """After reset, the score and frame count start again from zero."""
    env = EpisodeScore(FakeCarRacing([2.0, 3.0, 4.0]))
    run(env, 2)
    assert (env.true_return, env.episode_frames) == (5.0, 2)
    _, info = env.reset()
    assert (info["true_return"], info["episode_frames"]) == (0.0, 0)
    info = env.step(NOOP)[4]
    assert (info["true_return"], info["episode_frames"]) == (2.0, 1)


# --- SkipZoom --------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_skip_zoom_sends_noops_counted_by_episode_score(frames: int) -> None:
    """Reset sends ``frames`` zero actions; EpisodeScore below counts them and their rewards."""
    rewards = [0.5 * t for t in range(1, 11)]
    fake = FakeCarRacing(rewards)
    env = SkipZoom(EpisodeScore(fake), frames=frames)
    _, info = env.reset(seed=0)
    assert len(fake.actions) == frames
    assert all(np.array_equal(a, NOOP) for a in fake.actions)
    assert info["episode_frames"] == frames
    assert info["true_return"] == pytest.approx(sum(rewards[:frames]))
    info = env.step(GAS)[4]
    assert info["episode_frames"] == frames + 1
    assert np.array_equal(fake.actions[-1], GAS)


def test_skip_zoom_repeats_on_every_reset() -> None:
    """Each reset skips the zoom again, from a fresh inner episode."""
    fake = FakeCarRacing([0.0] * 10)
    env = SkipZoom(EpisodeScore(fake), frames=2)
    env.reset(seed=0)
    env.step(GAS)
    _, info = env.reset()
    assert fake.reset_count == 2
    assert len(fake.actions) == 5
    assert info["episode_frames"] == 2


def test_skip_zoom_resets_when_inner_episode_ends_during_zoom() -> None:
    """If the inner episode ends during the no-ops, the env is reset and the zoom finishes."""
    fake = FakeCarRacing([1.0, 1.0], max_frames=2)
    env = SkipZoom(EpisodeScore(fake), frames=3)
    _, info = env.reset(seed=0)
    assert fake.reset_count == 2
    assert len(fake.actions) == 3
    assert info["episode_frames"] == 1
    env.step(NOOP)  # the episode is live: the fake raises on a finished one


# --- NoProgressTermination -------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "threshold", "rewards", "end_frame"),
    [
        # history starts as zeros: means -0.0625, -0.125, -0.1875, then -0.25 <= -0.25
        (4, -0.25, [-0.25] * 10, 4),
        # means 0.25, 0.125, 0, -0.125, then -0.5
        (4, -0.25, [1.0] + [-0.5] * 9, 5),
        (1, 0.0, [0.5, 0.25, 0.0, 1.0], 3),
        # means -0.5, then -1.0 <= -1.0 (equality ends the episode)
        (2, -1.0, [-1.0, -1.0, -1.0], 2),
        # a positive frame in the window holds termination off: means 1, 0, 0.5, -1
        (2, -1.0, [2.0, -2.0, 3.0, -5.0, 0.0], 4),
    ],
)
def test_no_progress_terminates_exactly_when_window_mean_reaches_threshold(
    window: int, threshold: float, rewards: list[float], end_frame: int
) -> None:
    """The episode ends on the first frame whose window mean is <= threshold, not before."""
    env = NoProgressTermination(FakeCarRacing(rewards, max_frames=100), window=window, threshold=threshold)
    steps = run(env, 100)
    assert len(steps) == end_frame
    assert not any(s[2] for s in steps[:-1])
    _, _, terminated, truncated, info = steps[-1]
    assert terminated and not truncated
    assert info["early_termination"] == "no_progress"
    assert all("early_termination" not in s[4] for s in steps[:-1])


def test_no_progress_never_terminates_above_threshold() -> None:
    """Rewards whose window mean stays above the threshold run to truncation."""
    env = NoProgressTermination(FakeCarRacing([-0.25, 0.0] * 10), window=4, threshold=-0.25)
    steps = run(env, 100)
    assert len(steps) == 20
    assert steps[-1][3] and not steps[-1][2]
    assert all("early_termination" not in s[4] for s in steps)


def test_no_progress_reset_clears_history() -> None:
    """After reset the window is zeros again, so the new episode gets the full window."""
    env = NoProgressTermination(FakeCarRacing([-0.25] * 10), window=4, threshold=-0.25)
    assert len(run(env, 100)) == 4
    assert len(run(env, 100)) == 4


def test_no_progress_leaves_natural_termination_alone() -> None:
    """When the env itself terminates, the wrapper adds no early_termination tag."""
    env = NoProgressTermination(FakeCarRacing([-1.0] * 5, off_playfield_at=3), window=2, threshold=-100.0)
    steps = run(env, 10)
    assert len(steps) == 3 and steps[-1][2]
    assert "early_termination" not in steps[-1][4]


def test_no_progress_default_rule_fires_on_standing_still() -> None:
    """Seed 000's rule (window 100, threshold -0.1) ends the episode after 100 idle frames of -0.1."""
    env = NoProgressTermination(FakeCarRacing([-0.1] * 300), window=100, threshold=-0.1)
    assert len(run(env, 300)) == 100


# --- OffTrackTermination ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "fraction"),
    [
        (paint("road"), 0.0),
        (paint("grass"), 1.0),
        (paint("car_on_grass"), 1.0),
        (paint("car_on_road"), 0.0),
    ],
)
def test_grass_fraction_under_car(frame: np.ndarray, fraction: float) -> None:
    """Only the pixels around the car count, and grass-green ones are grass."""
    assert grass_fraction_under_car(frame) == fraction


def test_grass_fraction_under_car_partial_patch() -> None:
    """Half the car patch on grass gives 0.5; red car pixels are not grass."""
    frame = paint("road")
    frame[66:72, 43:53] = GRASS
    assert grass_fraction_under_car(frame) == 0.5
    frame[66:72, 43:53] = (204, 0, 0)
    assert grass_fraction_under_car(frame) == 0.0


@pytest.mark.parametrize(
    ("frames", "end_frame"),
    [
        (["car_on_grass"] * 5, 3),
        (["car_on_grass", "car_on_grass", "road", "car_on_grass", "car_on_grass", "car_on_grass", "road"], 6),
        # a mostly-grass frame with road under the car is not off track
        (["car_on_grass", "car_on_grass", "car_on_road", "car_on_grass", "car_on_grass", "car_on_grass"], 6),
    ],
)
def test_off_track_terminates_after_consecutive_grass_frames(frames: list[str], end_frame: int) -> None:
    """Terminates after max_frames consecutive car-on-grass frames; a road frame restarts the count."""
    env = OffTrackTermination(FakeCarRacing(frames=frames, max_frames=20), max_frames=3)
    steps = run(env, 20)
    assert len(steps) == end_frame
    assert not any(s[2] for s in steps[:-1])
    assert steps[-1][2] and not steps[-1][3]
    assert steps[-1][4]["early_termination"] == "off_track"


def test_off_track_never_terminates_on_road() -> None:
    """Car-on-road frames, even in a mostly green frame, never end the episode."""
    env = OffTrackTermination(FakeCarRacing(frames=["car_on_road"], max_frames=10), max_frames=1)
    steps = run(env, 20)
    assert len(steps) == 10 and steps[-1][3] and not steps[-1][2]


def test_off_track_reset_clears_count() -> None:
    """Grass frames before a reset do not count towards the next episode's limit."""
    env = OffTrackTermination(FakeCarRacing(frames=["car_on_grass"], max_frames=10), max_frames=3)
    assert len(run(env, 2)) == 2
    steps = run(env, 10)
    assert len(steps) == 3


# --- GrassPenalty, CancelOffPlayfieldPenalty, GasRewardScale ---------------------------


@pytest.mark.parametrize(
    ("frame", "penalised"),
    [
        (paint("grass"), True),
        (paint("road"), False),
        (paint("car_on_grass"), False),
        (np.full((96, 96, 3), (0, 185, 0), np.uint8), False),  # exactly at the threshold
        (np.full((96, 96, 3), (0, 186, 0), np.uint8), True),
    ],
)
def test_grass_penalty_applies_above_mean_green_threshold(frame: np.ndarray, penalised: bool) -> None:
    """The penalty is subtracted only when the frame's mean green channel exceeds the threshold."""
    env = GrassPenalty(FakeCarRacing([1.0], frames=[frame]), penalty=0.25, green_threshold=185.0)
    reward = run(env, 1)[0][1]
    assert reward == (0.75 if penalised else 1.0)


def test_grass_penalty_mean_over_whole_frame() -> None:
    """A frame half grass, half road has mean green (204 + 105) / 2 < 185: no penalty."""
    frame = paint("road")
    frame[:48] = GRASS
    assert frame[..., 1].mean() == pytest.approx((GRASS[1] + ROAD[1]) / 2)
    env = GrassPenalty(FakeCarRacing([1.0], frames=[frame]), penalty=0.25)
    assert run(env, 1)[0][1] == 1.0


def test_cancel_off_playfield_penalty_zeroes_the_minus_100_frame() -> None:
    """The -100 of leaving the playfield becomes 0; the raw score below still has it."""
    env = CancelOffPlayfieldPenalty(EpisodeScore(FakeCarRacing([1.0, 1.0, 1.0, 1.0], off_playfield_at=3)))
    steps = run(env, 10)
    assert [s[1] for s in steps] == [1.0, 1.0, 0.0]
    assert steps[-1][2]
    assert steps[-1][4]["true_return"] == pytest.approx(-98.0)


@pytest.mark.parametrize(
    "fake",
    [
        FakeCarRacing([1.0, -100.0, 1.0]),  # -100 without termination
        FakeCarRacing([1.0, -5.0], lap_finished_at=2),  # an ordinary terminal reward
    ],
)
def test_cancel_off_playfield_penalty_leaves_other_rewards(fake: FakeCarRacing) -> None:
    """Rewards of frames that are not an off-playfield termination pass through unchanged."""
    steps = run(CancelOffPlayfieldPenalty(fake), 2)
    assert [s[1] for s in steps] == fake.rewards[:2]


@pytest.mark.parametrize(
    ("action", "reward", "expected"),
    [
        ([0.0, 1.0, 0.0], 2.0, 3.0),
        ([0.5, 0.25, 0.0], -0.5, -0.75),
        ([-1.0, 0.0, 0.0], 2.0, 2.0),
        ([0.0, 0.0, 1.0], -0.5, -0.5),
    ],
)
def test_gas_reward_scale_only_when_gas_pressed(action: list[float], reward: float, expected: float) -> None:
    """The reward is multiplied by scale only when action[1] (gas) > 0."""
    env = GasRewardScale(FakeCarRacing([reward]), scale=1.5)
    assert run(env, 1, np.array(action, np.float32))[0][1] == expected


@pytest.mark.parametrize(
    ("fake", "rewards"),
    [
        (FakeCarRacing([1.0, 3.0, 1.0], lap_finished_at=2), [1.0, 53.0]),  # the lap's frame gets the bonus
        (FakeCarRacing([1.0, 1.0, 1.0], off_playfield_at=2), [1.0, -100.0]),  # leaving the playfield: no lap
        (FakeCarRacing([1.0, 2.0]), [1.0, 2.0]),  # the time limit: no lap
    ],
)
def test_lap_bonus_rewards_only_the_frame_that_completes_a_lap(fake: FakeCarRacing, rewards: list[float]) -> None:
    steps = run(LapBonus(fake, bonus=50.0), 10)
    assert [s[1] for s in steps] == rewards
    assert steps[-1][2] or steps[-1][3]


def test_lap_bonus_reads_the_env_s_own_episode_end() -> None:
    """Innermost of the training rules: an episode a rule ends (no progress here, on the lap's
    own frame) is not a lap, and the lap it reaches is, whatever the other rules."""
    shaping = ShapingConfig(lap_bonus=50.0, no_progress_window=2, cancel_off_playfield_penalty=True)
    assert training_wrappers(shaping)[0][0] is LapBonus
    env = FakeCarRacing([-0.1, -0.1, 5.0], lap_finished_at=3)
    for cls, arguments in training_wrappers(shaping):
        env = cls(env, **arguments)
    steps = run(env, 10)
    assert len(steps) == 2 and steps[-1][4]["early_termination"] == "no_progress"
    env = FakeCarRacing([1.0, 5.0], lap_finished_at=2)
    for cls, arguments in training_wrappers(shaping):
        env = cls(env, **arguments)
    assert [s[1] for s in run(env, 10)] == [1.0, 55.0]


# --- ActionRepeat ----------------------------------------------------------------------


def test_action_repeat_sums_rewards_and_repeats_action() -> None:
    """Each agent step sends the same action ``repeat`` times and returns the reward sum."""
    fake = FakeCarRacing([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    env = ActionRepeat(fake, repeat=3)
    action = np.array([0.5, 0.25, 0.0], np.float32)
    steps = run(env, 5, action)
    assert [s[1] for s in steps] == [6.0, 15.0]
    assert len(fake.actions) == 6
    assert all(np.array_equal(a, action) for a in fake.actions)
    assert steps[-1][3]


@pytest.mark.parametrize(
    ("fake", "inner_steps", "reward", "terminated"),
    [
        (FakeCarRacing([1.0] * 10, off_playfield_at=2), 2, 1.0 - 100.0, True),
        (FakeCarRacing([1.0] * 10, max_frames=5), 2, 2.0, False),
    ],
)
def test_action_repeat_stops_at_episode_end(
    fake: FakeCarRacing, inner_steps: int, reward: float, terminated: bool
) -> None:
    """Repetition stops on the frame that terminates or truncates the episode."""
    env = ActionRepeat(fake, repeat=3)
    env.reset(seed=0)
    if not terminated:
        env.step(NOOP)  # frames 1-3; frames 4-5 then reach the time limit
        fake.actions.clear()
    _, total, term, trunc, _ = env.step(GAS)
    assert len(fake.actions) == inner_steps
    assert total == reward
    assert (term, trunc) == (terminated, not terminated)


def test_action_repeat_returns_last_frame_info() -> None:
    """The info of an agent step is the last repeated frame's."""
    env = ActionRepeat(EpisodeScore(FakeCarRacing([1.0] * 8)), repeat=4)
    steps = run(env, 1)
    assert steps[0][4]["episode_frames"] == 4


# --- PreprocessFrame / preprocess_frames -----------------------------------------------


@pytest.mark.parametrize("grayscale", [True, False])
@pytest.mark.parametrize("crop", [True, False])
@pytest.mark.parametrize("size", [8, 64, 84, 96])
def test_preprocess_frame_shapes_and_dtype(grayscale: bool, crop: bool, size: int) -> None:
    """Observations are uint8 (C, size, size), C = 1 for grayscale and 3 for RGB, inside the space."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    env = PreprocessFrame(FakeCarRacing([0.0], frames=[frame], reset_frame=frame), grayscale, crop, size)
    expected_shape = (1 if grayscale else 3, size, size)
    assert env.observation_space.shape == expected_shape
    obs, _ = env.reset(seed=0)
    step_obs = env.step(NOOP)[0]
    for o in (obs, step_obs):
        assert o.dtype == np.uint8 and o.shape == expected_shape
        assert env.observation_space.contains(o)


def test_preprocess_crop_removes_indicator_bar_before_resizing() -> None:
    """With cropping, the 12 bottom rows are dropped and the remaining 84 rows are kept as is."""
    frame = np.empty((96, 96, 3), np.uint8)
    frame[:42] = 40
    frame[42:84] = 120
    frame[84:] = 255
    cropped = preprocess_frames(frame, grayscale=True, crop_bottom_bar=True, size=84)
    assert cropped.shape == (1, 84, 84)
    assert (cropped[0, :42] == 40).all() and (cropped[0, 42:] == 120).all()
    uncropped = preprocess_frames(frame, grayscale=True, crop_bottom_bar=False, size=96)
    assert (uncropped[0, 84:] == 255).all()
    resized = preprocess_frames(frame, grayscale=True, crop_bottom_bar=False, size=84)
    assert (resized[0, -5:] == 255).all()


def test_preprocess_grayscale_uses_luma_weights() -> None:
    """Grayscale values match 0.299 R + 0.587 G + 0.114 B within 1."""
    frame = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    gray = preprocess_frames(frame, grayscale=True, crop_bottom_bar=False, size=96)[0]
    expected = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray.astype(np.float64) - expected).max() <= 1.0


def test_preprocess_rgb_without_resize_is_channel_first_copy() -> None:
    """RGB at full size only moves the channels first."""
    frame = np.random.default_rng(2).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    out = preprocess_frames(frame, grayscale=False, crop_bottom_bar=False, size=96)
    assert np.array_equal(out, frame.transpose(2, 0, 1))


@pytest.mark.parametrize(("grayscale", "crop", "size"), [(True, False, 96), (True, True, 64), (False, True, 84)])
def test_preprocess_batch_equals_per_frame(grayscale: bool, crop: bool, size: int) -> None:
    """A batch (..., 96, 96, 3) gives (..., C, S, S), each frame as when processed alone."""
    frames = np.random.default_rng(3).integers(0, 256, (2, 3, 96, 96, 3), dtype=np.uint8)
    batch = preprocess_frames(frames, grayscale, crop, size)
    assert batch.shape == (2, 3, 1 if grayscale else 3, size, size)
    assert batch.dtype == np.uint8
    for i in range(2):
        for j in range(3):
            assert np.array_equal(batch[i, j], preprocess_frames(frames[i, j], grayscale, crop, size))
    flat = preprocess_frames(frames[0], grayscale, crop, size)
    assert np.array_equal(flat, batch[0])


# --- FrameStack ------------------------------------------------------------------------


def stacked_env(values: list[int], k: int, grayscale: bool = True) -> FrameStack:
    """FrameStack over 8x8 frames; the reset frame has value 10, frame t has ``values[t - 1]``."""
    fake = FakeCarRacing([0.0] * len(values), frames=[uniform(v) for v in values], reset_frame=uniform(10))
    return FrameStack(PreprocessFrame(fake, grayscale=grayscale, size=8), k)


def slot_values(obs: np.ndarray, channels: int) -> list[int]:
    """The value of each stacked frame (frames are uniform)."""
    return [int(obs[i * channels].flat[0]) for i in range(obs.shape[0] // channels)]


@pytest.mark.parametrize(("grayscale", "channels"), [(True, 1), (False, 3)])
def test_frame_stack_shape(grayscale: bool, channels: int) -> None:
    """k stacked (C, H, W) frames have shape (k * C, H, W), uint8, inside the space."""
    env = stacked_env([20, 30], k=4, grayscale=grayscale)
    assert env.observation_space.shape == (4 * channels, 8, 8)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4 * channels, 8, 8) and obs.dtype == np.uint8
    assert env.observation_space.contains(env.step(NOOP)[0])


@pytest.mark.parametrize(("grayscale", "channels"), [(True, 1), (False, 3)])
def test_frame_stack_order(grayscale: bool, channels: int) -> None:
    """After reset all slots hold the first frame; each step appends last and drops the oldest."""
    env = stacked_env([20, 30, 40, 50], k=3, grayscale=grayscale)
    obs, _ = env.reset(seed=0)
    assert slot_values(obs, channels) == [10, 10, 10]
    history = [slot_values(env.step(NOOP)[0], channels) for _ in range(4)]
    assert history == [[10, 10, 20], [10, 20, 30], [20, 30, 40], [30, 40, 50]]
    obs, _ = env.reset()
    assert slot_values(obs, channels) == [10, 10, 10]


def test_frame_stack_returns_copies() -> None:
    """Changing a returned observation does not change later ones."""
    env = stacked_env([20, 30, 40], k=2)
    obs, _ = env.reset(seed=0)
    obs[:] = 0
    obs = env.step(NOOP)[0]
    assert slot_values(obs, 1) == [10, 20]
    obs[:] = 0
    assert slot_values(env.step(NOOP)[0], 1) == [20, 30]


# --- DiscreteActions -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "n"), [("seed002", 12), ("gymnasium", 5)])
def test_discrete_actions_send_table_rows(name: str, n: int) -> None:
    """Index i sends row i of the named table to the inner continuous env."""
    fake = FakeCarRacing([0.0] * 20)
    env = DiscreteActions(fake, name)
    assert env.action_space == gym.spaces.Discrete(n)
    env.reset(seed=0)
    for i in range(n):
        env.step(i)
    sent = np.stack(fake.actions)
    assert np.array_equal(sent, DISCRETE_ACTION_SETS[name])
    assert (sent >= fake.action_space.low).all() and (sent <= fake.action_space.high).all()


def test_discrete_actions_custom_table() -> None:
    """An explicit (n, 3) table is used as given."""
    table = np.array([[0.25, 0.5, 0.0], [-0.75, 0.0, 1.0]], np.float32)
    fake = FakeCarRacing([0.0] * 5)
    env = DiscreteActions(fake, table)
    assert env.action_space == gym.spaces.Discrete(2)
    env.reset(seed=0)
    env.step(np.int64(1))
    env.step(0)
    assert np.array_equal(np.stack(fake.actions), table[[1, 0]])


@pytest.mark.parametrize(
    "actions",
    [
        "nope",
        np.array([[0.0, -0.5, 0.0]]),  # negative gas
        np.array([[1.5, 0.0, 0.0]]),  # steering beyond 1
        np.array([[0.0, 0.0, 2.0]]),  # brake beyond 1
        np.zeros((3, 2)),  # wrong row length
        np.zeros(3),  # not a table
    ],
)
def test_discrete_actions_reject_invalid_tables(actions: str | np.ndarray) -> None:
    """Unknown names and rows outside the continuous action space raise ValueError."""
    with pytest.raises(ValueError):
        DiscreteActions(FakeCarRacing(), actions)


GYMNASIUM_SEQUENCE = [3] * 20 + [1, 3, 2, 3, 4, 0] * 7
"""62 discrete CarRacing actions using all five: gas, then steer, brake and coast."""


def run_side_by_side(seed: int) -> list[tuple[tuple, tuple]]:
    """Step DiscreteActions(CarRacing-v3, "gymnasium") and CarRacing-v3(continuous=False) in lockstep."""
    ours = DiscreteActions(gym.make("CarRacing-v3"), "gymnasium")
    theirs = gym.make("CarRacing-v3", continuous=False)
    try:
        obs_a, _ = ours.reset(seed=seed)
        obs_b, _ = theirs.reset(seed=seed)
        pairs = [((obs_a, 0.0, False, False), (obs_b, 0.0, False, False))]
        pairs += [(ours.step(k)[:4], theirs.step(k)[:4]) for k in GYMNASIUM_SEQUENCE]
        return pairs
    finally:
        ours.close()
        theirs.close()


def test_discrete_actions_match_gymnasium_discrete_car_racing() -> None:
    """The "gymnasium" set gives CarRacing-v3(continuous=False)'s rewards and, up to a few pixels, frames."""
    for ours, theirs in run_side_by_side(seed=0):
        assert ours[1:] == theirs[1:]
        assert (ours[0] != theirs[0]).any(axis=-1).sum() <= 20


def test_discrete_actions_match_gymnasium_discrete_car_racing_exactly() -> None:
    """The "gymnasium" set reproduces CarRacing-v3(continuous=False) frame for frame."""
    for ours, theirs in run_side_by_side(seed=0):
        assert ours[1:] == theirs[1:]
        assert np.array_equal(ours[0], theirs[0])


# --- parameter validation --------------------------------------------------------------


def _stackable() -> gym.Env:
    return PreprocessFrame(FakeCarRacing(), size=8)


@pytest.mark.parametrize(
    "build",
    [
        lambda env: ActionRepeat(env, 0),
        lambda env: ActionRepeat(env, -2),
        lambda env: ActionRepeat(env, 2.0),
        lambda env: FrameStack(_stackable(), 0),
        lambda env: GrassPenalty(env, penalty=0.0),
        lambda env: GrassPenalty(env, penalty=-0.05),
        lambda env: GrassPenalty(env, green_threshold=300.0),
        lambda env: OffTrackTermination(env, max_frames=0),
        lambda env: OffTrackTermination(env, grass_fraction=0.0),
        lambda env: OffTrackTermination(env, grass_fraction=1.5),
        lambda env: NoProgressTermination(env, window=0),
        lambda env: SkipZoom(env, frames=0),
        lambda env: PreprocessFrame(env, size=0),
        lambda env: PreprocessFrame(env, size=4),
        lambda env: GasRewardScale(env, scale=0.0),
    ],
    ids=[
        "repeat-0",
        "repeat-negative",
        "repeat-float",
        "stack-0",
        "penalty-0",
        "penalty-negative",
        "green-threshold-300",
        "off-track-0",
        "grass-fraction-0",
        "grass-fraction-1.5",
        "window-0",
        "skip-zoom-0",
        "size-0",
        "size-4",
        "gas-scale-0",
    ],
)
def test_invalid_parameters_raise_value_error(build: Callable[[gym.Env], gym.Env]) -> None:
    """Each wrapper rejects invalid parameters with ValueError when built."""
    with pytest.raises(ValueError):
        build(FakeCarRacing())


# --- ThrottleAxis -----------------------------------------------------------------------


class _LastAction(gym.Wrapper):
    """Remembers the action the wrapped env received."""

    def step(self, action: np.ndarray) -> tuple:
        self.last = np.array(action)
        return self.env.step(action)


@pytest.mark.parametrize(
    ("action", "pedals"),
    [([0.3, 0.8], [0.3, 0.8, 0.0]), ([-1.0, -0.4], [-1.0, 0.0, 0.4]), ([0.0, 0.0], [0.0, 0.0, 0.0]),
     ([2.0, -3.0], [1.0, 0.0, 1.0])],
)  # fmt: skip
def test_throttle_axis_presses_gas_or_brake_never_both(action: list[float], pedals: list[float]) -> None:
    """[steer, throttle]: throttle > 0 is gas, < 0 is brake; out-of-range actions are clipped."""
    inner = _LastAction(FakeCarRacing([0.0]))
    env = ThrottleAxis(inner)
    assert env.action_space.shape == (2,)
    env.reset(seed=0)
    env.step(np.array(action, np.float32))
    np.testing.assert_allclose(inner.last, pedals)


# --- Batched state shared with the EnvPool backend ---------------------------------------

ALL_SHAPING = ShapingConfig(
    grass_penalty=0.25,
    cancel_off_playfield_penalty=True,
    gas_reward_scale=2.0,
    no_progress_window=3,
    no_progress_threshold=-0.5,
    max_off_track_frames=4,
)


def test_training_wrappers_order() -> None:
    """Terminations first, then the -100 refund before the other shaping, the gas scale last."""
    names = [wrapper.__name__ for wrapper, _ in training_wrappers(ALL_SHAPING)]
    assert names == [
        "NoProgressTermination",
        "OffTrackTermination",
        "CancelOffPlayfieldPenalty",
        "GrassPenalty",
        "GasRewardScale",
    ]
    assert training_wrappers(ShapingConfig()) == []


def test_shaping_order_refunds_the_off_playfield_frame_before_scaling() -> None:
    """On the -100 frame with gas on grass: refunded to 0, then -0.25, then doubled."""
    fake = FakeCarRacing([1.0] * 5, frames=["grass"], off_playfield_at=2)
    env: gym.Env = fake
    for wrapper, arguments in training_wrappers(ALL_SHAPING):
        env = wrapper(env, **arguments)
    steps = run(env, 5, GAS)
    assert [s[1] for s in steps] == [(1.0 - 0.25) * 2.0, (0.0 - 0.25) * 2.0]


SCRIPTS = [
    # env 0: no progress after 3 frames of -1 (mean of the window <= -0.5)
    FakeCarRacing([0.5, -1.0, -1.0, -1.0, 1.0, 1.0], frames=["road"], max_frames=6),
    # env 1: car on grass from frame 2, off track at frame 5, grass-penalised throughout
    FakeCarRacing([2.0] * 8, frames=["grass", "car_on_grass"], max_frames=8),
    # env 2: leaves the playfield at frame 3
    FakeCarRacing([1.0] * 8, frames=["car_on_road"], off_playfield_at=3),
    # env 3: runs to the time limit
    FakeCarRacing([0.5] * 4, frames=["road"]),
]
ACTIONS = [GAS, BRAKE, GAS, np.array([0.3, 0.5, 0.0], np.float32)]


def test_batched_rules_equal_the_wrappers_env_by_env() -> None:
    """The rules over a batch of 4 envs (the EnvPool path) give each env's wrapper-stack steps.

    Envs finish at different frames, so later frames hold fewer envs, in shuffled order.
    """
    expected = []
    for fake, action in zip(SCRIPTS, ACTIONS, strict=True):
        env: gym.Env = fake
        for wrapper, arguments in training_wrappers(ALL_SHAPING):
            env = wrapper(env, **arguments)
        expected.append([(s[1], s[2], s[4].get("early_termination", "")) for s in run(env, 20, action)])
    rules = [wrapper.rule_class(4, **arguments) for wrapper, arguments in training_wrappers(ALL_SHAPING)]
    got: list[list[tuple]] = [[] for _ in SCRIPTS]
    for fake in SCRIPTS:
        fake.reset(seed=0)
    for rule in rules:
        rule.reset(np.arange(4))
    active = [3, 1, 0, 2]
    while active:
        steps = [SCRIPTS[i].step(ACTIONS[i]) for i in active]
        batch = FrameBatch(
            ids=np.array(active),
            frames=np.stack([s[0] for s in steps]),
            actions=np.stack([ACTIONS[i] for i in active]).astype(np.float64),
            rewards=np.array([s[1] for s in steps], dtype=np.float64),
            terminated=np.array([s[2] for s in steps]),
            truncated=np.array([s[3] for s in steps]),
            early_termination=np.full(len(active), "", dtype=object),
        )
        for rule in rules:
            rule.apply(batch)
        for k, i in enumerate(active):
            got[i].append((batch.rewards[k], batch.terminated[k], batch.early_termination[k]))
        active = [i for k, i in enumerate(active) if not (batch.terminated[k] or batch.truncated[k])][::-1]
    assert got == expected
    assert [e[-1][2] for e in expected] == ["no_progress", "off_track", "", ""]


def test_frame_batch_stop_keeps_the_first_ending() -> None:
    """stop() ends only live episodes: an env or earlier rule's ending and reason stay."""
    batch = FrameBatch(
        ids=np.arange(3),
        frames=np.zeros((3, 96, 96, 3), np.uint8),
        actions=np.zeros((3, 3)),
        rewards=np.zeros(3),
        terminated=np.array([True, False, False]),
        truncated=np.array([False, True, False]),
        early_termination=np.full(3, "", dtype=object),
    )
    batch.stop(np.array([False, False, True]), "first")
    batch.stop(np.ones(3, bool), "second")
    assert batch.terminated.tolist() == [True, False, True]
    assert batch.early_termination.tolist() == ["", "", "first"]


def test_no_progress_rule_reset_clears_only_the_named_envs() -> None:
    """Resetting env 1 zeroes its history; env 0 keeps its window."""
    rule = NoProgressRule(2, window=2, threshold=-1.0)
    frames = np.zeros((2, 96, 96, 3), np.uint8)

    def step(ids: list[int], rewards: list[float]) -> list[bool]:
        n = len(ids)
        batch = FrameBatch(
            np.array(ids), frames[:n], np.zeros((n, 3)), np.array(rewards),
            np.zeros(n, bool), np.zeros(n, bool), np.full(n, "", dtype=object),
        )  # fmt: skip
        rule.apply(batch)
        return batch.terminated.tolist()

    assert step([0, 1], [-1.0, -1.0]) == [False, False]
    rule.reset(np.array([1]))
    assert rule.rewards.tolist() == [[0.0, -1.0], [0.0, 0.0]]
    assert step([1, 0], [-1.0, -1.0]) == [False, True]


def test_score_counters_count_each_env_apart() -> None:
    """Rewards and frames add up per env, in any row order; reset zeroes only the named envs."""
    counters = ScoreCounters(3)
    counters.add(np.array([2, 0]), np.array([1.5, -0.1]))
    counters.add(np.array([0]), np.array([-0.1]))
    assert counters.info(0) == {"true_return": pytest.approx(-0.2), "episode_frames": 2, **NO_LAP}
    assert counters.info(1) == {"true_return": 0.0, "episode_frames": 0, **NO_LAP}
    assert counters.info(2) == {"true_return": 1.5, "episode_frames": 1, "tile_fraction": 0.0016, "lap_frames": None}
    counters.reset(np.array([0, 2]))
    assert counters.info(0) == counters.info(2) == {"true_return": 0.0, "episode_frames": 0, **NO_LAP}


NO_LAP = {"tile_fraction": 0.0, "lap_frames": None}


def test_score_counters_count_tiles_and_the_frame_a_lap_ends() -> None:
    """A 4-tile track pays 250 a tile: the tiles visited are the tile rewards over 1000; the
    env ending the episode itself (not off the playfield) is a lap, at that frame; the frame
    that leaves the playfield (-100) counts no tile."""
    counters = ScoreCounters(2)
    ids = np.array([0, 1])
    counters.add(ids, np.array([499.9, 249.9]))  # two tiles under the car at reset, one
    counters.add(ids, np.array([-0.1, 249.9]), np.array([False, False]))
    assert [counters.info(i)["tile_fraction"] for i in (0, 1)] == [0.5, 0.5]
    counters.add(ids, np.array([499.9, -100.0]), np.array([True, True]))  # env 0 ends the lap; env 1 leaves
    assert counters.info(0) == {"true_return": pytest.approx(999.7), "episode_frames": 3, "tile_fraction": 1.0,
                                "lap_frames": 3}  # fmt: skip
    assert counters.info(1) == {"true_return": pytest.approx(399.8), "episode_frames": 3, "tile_fraction": 0.5,
                                "lap_frames": None}  # fmt: skip


def _pure_pursuit(car_racing: gym.Env) -> np.ndarray:
    """Steer at the track a few tiles ahead of the car's nearest tile, at a moderate speed (it reads
    the simulator's state: a test driver that laps a short track, not a baseline)."""
    car = car_racing.car
    x, y = car.hull.position
    forward = car.hull.GetWorldVector((0, 1))
    points = np.array([tile[2:4] for tile in car_racing.track])
    tx, ty = points[(int(np.argmin(((points - (x, y)) ** 2).sum(axis=1))) + 3) % len(points)] - (x, y)
    angle = np.arctan2(forward[0] * ty - forward[1] * tx, forward[0] * tx + forward[1] * ty)
    speed = np.linalg.norm(car.hull.linearVelocity)
    return np.array([np.clip(-2.5 * angle, -1, 1), 0.5 if speed < 40 else 0.0, 0.6 if speed > 45 else 0.0])


def test_lap_metrics_follow_car_racings_own_tile_counter_to_the_end_of_a_lap() -> None:
    """On a real track, the reward-derived tile fraction equals CarRacing's own tile counter at
    every frame, and the lap ends with every tile visited at the frame the env ends it.

    A lap of a whole track takes a fast driver; the test shortens the lap to the track's first
    40 tiles (CarRacing ends an episode when it has counted ``len(track)`` tiles, each paid
    ``1000 / len(track)``), so the pursuit driver completes it in a few hundred frames.
    """
    env = EpisodeScore(gym.make("CarRacing-v3"))
    _, info = env.reset(seed=1_000_000)
    car_racing = env.unwrapped
    assert info["tile_fraction"] == 0.0 and info["lap_frames"] is None  # the reset's tiles are paid on frame 1
    car_racing.track = car_racing.track[:40]
    car_racing.reward = car_racing.prev_reward = car_racing.tile_visited_count = 0  # the reset's tiles unpaid
    for tile in car_racing.road:
        tile.road_visited = False
    terminated = truncated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(_pure_pursuit(car_racing))
        if not terminated:
            assert info["tile_fraction"] == pytest.approx(car_racing.tile_visited_count / 40, abs=1e-4)
            assert info["lap_frames"] is None
    env.close()
    assert terminated and not truncated
    assert info["tile_fraction"] == 1.0 and car_racing.tile_visited_count == 40
    assert info["lap_frames"] == info["episode_frames"] < 1000


def test_frame_stacker_resets_one_env_while_others_continue() -> None:
    """A reset env's stack is its first frame k times; the other envs' stacks keep shifting."""
    stacker = FrameStacker(2, frames=3, shape=(1, 2, 2))

    def frames(*values: int) -> np.ndarray:
        return np.array(values, np.uint8).reshape(-1, 1, 1, 1).repeat(2, axis=2).repeat(2, axis=3)

    stacker.reset(np.array([0, 1]), frames(1, 5))
    stacker.push(frames(2, 6))
    stacker.reset(np.array([1]), frames(9))
    stacker.push(frames(3, 10))
    assert stacker.stack[:, :, 0, 0].tolist() == [[1, 2, 3], [9, 9, 10]]
    stacker.push(frames(11), slice(1, 2))  # one env's step: the other's stack stays
    assert stacker.stack[:, :, 0, 0].tolist() == [[1, 2, 3], [9, 10, 11]]
    with pytest.raises(ValueError, match="frames must be a positive integer, got 0"):
        FrameStacker(1, frames=0, shape=(1, 2, 2))
