"""EnvPool backend: SB3 VecEnv semantics and parity with the gymnasium pipeline."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.box2d import car_racing
from stable_baselines3.common import monitor as sb3_monitor
from stable_baselines3.common.vec_env import vec_monitor as sb3_vec_monitor

from cr_bench.agents.registry import AGENTS, resolve_config
from cr_bench.envs import wrappers
from cr_bench.envs.envpool_backend import EnvPoolVecEnv
from cr_bench.envs.make import make_vec_env
from cr_bench.errors import CrBenchError
from cr_bench.spec.run import EnvConfig, ShapingConfig
from tests.conftest import TINY, run_cli

envpool = pytest.importorskip("envpool")

GYM = "gymnasium"
POOL = "envpool"


class Tape(gym.Wrapper):
    """Records, in order, what gymnasium's raw CarRacing-v3 (``gym.make``'s env) returned to the
    pipeline above it: each reset's frame, and each step's action (as the float64 CarRacing
    steers with) and result. Put under :class:`~cr_bench.envs.wrappers.EpisodeScore` of a
    gymnasium VecEnv's env by :func:`record_raw_frames`; :class:`ReplayPool` plays it back."""

    def __init__(self, env: gym.Env, events: deque[tuple[str, Any, Any]]) -> None:
        super().__init__(env)
        self.events = events

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        frame, info = self.env.reset(**kwargs)
        self.events.append(("reset", None, frame))
        return frame, info

    def step(self, action: Any) -> tuple[Any, ...]:
        result = self.env.step(action)
        self.events.append(("step", np.asarray(action, dtype=np.float64).copy(), result[:4]))
        return result


def record_raw_frames(venv: Any, first_seed: int) -> dict[int, deque[tuple[str, Any, Any]]]:
    """Tape the raw env of each env of the gymnasium DummyVecEnv ``venv``; its tapes by track seed."""
    tapes: dict[int, deque[tuple[str, Any, Any]]] = {}
    for i, env in enumerate(venv.envs):
        while not isinstance(env, wrappers.EpisodeScore):
            env = env.env
        tapes[first_seed + i] = deque()
        env.env = Tape(env.env, tapes[first_seed + i])
    return tapes


class ReplayPool:
    """Stands in for EnvPool's CarRacing, in EnvPool's calling convention, by replaying the raw
    frames the gymnasium path's envs played (their :class:`Tape`), env by env.

    Driving EnvPoolVecEnv with the same raw frames as the gymnasium path isolates the batched
    pipeline (repeat, preprocessing, stacking, shaping, termination, resets) from the
    simulator, so the two paths must agree exactly. Each env must be reset and stepped as the
    gymnasium env was, with the same actions, or the replay fails: the raw calls agree too.
    Simulating once and replaying costs half of stepping a second set of gymnasium envs.
    """

    def __init__(self, tapes: list[deque[tuple[str, Any, Any]]]) -> None:
        self.tapes = tapes
        # float64 actions, as gymnasium computes them (EnvPool's own spec is float32).
        self.spec = SimpleNamespace(action_array_spec={"action": SimpleNamespace(dtype=np.float64)})

    def _replay(self, i: int, kind: str, action: np.ndarray | None = None) -> Any:
        """Env ``i``'s next recorded call, which must be a ``kind`` (with ``action``)."""
        assert self.tapes[i], f"env {i}: a {kind} the gymnasium env did not play"
        recorded_kind, recorded_action, result = self.tapes[i].popleft()
        assert kind == recorded_kind, f"env {i}: a {kind} where the gymnasium env played a {recorded_kind}"
        if action is not None:
            np.testing.assert_array_equal(np.asarray(action, dtype=np.float64), recorded_action)
        return result

    def reset(self, ids: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        frames = [self._replay(i, "reset") for i in ids]
        return np.stack(frames), {"env_id": np.asarray(ids)}

    def send(self, actions: np.ndarray, ids: np.ndarray | None = None) -> None:
        ids = np.arange(len(self.tapes)) if ids is None else ids
        self.sent = actions, ids

    def recv(self) -> tuple[Any, ...]:
        actions, ids = self.sent
        results = [self._replay(i, "step", a) for a, i in zip(actions, ids, strict=True)]
        frames, rewards, terminated, truncated = zip(*results, strict=True)
        return (
            np.stack(frames),
            np.array(rewards),
            np.array(terminated),
            np.array(truncated),
            {"env_id": np.asarray(ids)},
        )

    def close(self) -> None:
        pass


ALL_SHAPING = ShapingConfig(
    grass_penalty=0.05,
    cancel_off_playfield_penalty=True,
    gas_reward_scale=1.5,
    no_progress_window=60,
    max_off_track_frames=30,
)


class FakeClock:
    """Stands in for the ``time`` module of SB3's Monitor and VecMonitor: one second per agent step."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


def assert_same_info(info: dict[str, Any], ref: dict[str, Any]) -> None:
    """Every key of an EnvPoolVecEnv info equals the gymnasium path's, with the same meaning."""
    assert info.keys() == ref.keys()
    for key, expected in ref.items():
        value = info[key]
        if key == "true_return":
            assert value == pytest.approx(expected, abs=1e-6)
        elif key == "terminal_observation":
            np.testing.assert_array_equal(value, expected)
        elif key == "episode":
            assert value.keys() == expected.keys() == {"r", "l", "t"}
            # VecMonitor sums the float32 rewards of the VecEnv; Monitor sums float64 and rounds.
            assert value["r"] == pytest.approx(expected["r"], rel=1e-6, abs=1e-4)
            assert (value["l"], value["t"]) == (expected["l"], expected["t"])
        else:
            assert value == expected, key


@pytest.mark.parametrize(
    "config",
    [
        EnvConfig(action_repeat=4, frame_stack=3, obs_size=48, skip_zoom_frames=10, shaping=ALL_SHAPING),
        EnvConfig(action_repeat=2, frame_stack=2, grayscale=False, crop_bottom_bar=True, obs_size=32),
        EnvConfig(action_repeat=3, frame_stack=2, obs_size=40, discrete_actions="seed002", shaping=ALL_SHAPING),
        EnvConfig(action_repeat=4, frame_stack=2, obs_size=40, throttle_axis=True, shaping=ALL_SHAPING),
    ],
    ids=["shaped", "rgb-cropped", "discrete", "throttle"],
)
def test_batched_pipeline_equals_the_wrapper_stack(config: EnvConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the same raw frames, both backends' VecEnvs agree step for step, on every info key.

    ``episode`` is SB3's on both: shaped return, agent steps and seconds since the
    monitor started (Monitor on gymnasium, VecMonitor on envpool), read from one fake clock.
    """
    # Three envs on two cores: a pool of two envs, whose early terminations leave one of them
    # stepping alone, and a pool of one (EnvPoolVecEnv splits the envs per thread).
    seeds = [11, 12, 13] if config.shaping.max_off_track_frames else [11, 12]
    n = len(seeds)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    clock = FakeClock()
    monkeypatch.setattr(sb3_monitor, "time", clock)
    monkeypatch.setattr(sb3_vec_monitor, "time", clock)
    # EnvPool draws every raw frame, so the tapes must hold them all: the gymnasium path draws
    # every frame here (frames left undrawn play the same episode: tests/test_envs.py).
    monkeypatch.setattr(wrappers.ObservationsUndrawn, "__init__", lambda self, env: setattr(self, "car", None))
    reference = make_vec_env(dataclasses.replace(config, backend=GYM), n, seed=seeds[0], vec_env="dummy")
    tapes = record_raw_frames(reference, seeds[0])
    monkeypatch.setattr(
        EnvPoolVecEnv, "_make_pool", lambda self, seeds, threads: ReplayPool([tapes[seed] for seed in seeds])
    )
    batched = make_vec_env(dataclasses.replace(config, backend=POOL), n, seed=seeds[0], vec_env="dummy")
    assert batched.observation_space == reference.observation_space
    assert batched.action_space == reference.action_space
    # Each reset and step plays on gymnasium first; the batched path replays its raw frames.
    ref_obs = reference.reset()
    np.testing.assert_array_equal(batched.reset(), ref_obs)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(50):  # 2-3 episodes end in each shaped config: resets and terminal infos agree too
        clock.now += 1.0
        if config.discrete_actions:
            actions = rng.integers(0, batched.action_space.n, size=n)  # type: ignore[attr-defined]
        elif config.throttle_axis:
            actions = rng.uniform([-1.0, -0.5], [1.0, 1.0], (n, 2)).astype(np.float32)
        else:
            actions = np.tile([[0.0, 0.6, 0.0]], (n, 1)) + rng.uniform(-0.4, 0.4, (n, 3))
            actions = np.clip(actions, [-1, 0, 0], [1, 1, 1]).astype(np.float32)
        ref_obs, ref_rewards, ref_dones, ref_infos = reference.step(actions)
        obs, rewards, dones, infos = batched.step(actions)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_allclose(rewards, ref_rewards, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(dones, ref_dones)
        for info, ref in zip(infos, ref_infos, strict=True):
            assert_same_info(info, ref)
            episodes += "episode" in ref
    assert episodes >= (2 if config.shaping.no_progress_window else 0), episodes
    assert not any(tapes.values())  # the batched path played every raw frame the gymnasium envs did
    batched.close()
    reference.close()


@pytest.mark.parametrize("agent", list(AGENTS))
def test_backends_have_the_same_spaces(agent: str) -> None:
    """Each agent's pipeline has identical observation and action spaces on both backends."""
    config = resolve_config(agent).env
    spaces = []
    for backend in (GYM, POOL):
        venv = make_vec_env(dataclasses.replace(config, backend=backend), 2, seed=0, vec_env="dummy")
        obs = venv.reset()
        assert obs.dtype == np.uint8 and obs.shape == (2, *venv.observation_space.shape)
        spaces.append((venv.observation_space, venv.action_space))
        venv.close()
    assert spaces[0] == spaces[1]


def _undrawn_frames(render: Any) -> Any:
    """CarRacing's ``_render`` with its observations (``state_pixels``) left black, not drawn."""

    def undrawn(self: car_racing.CarRacing, mode: str) -> Any:
        if mode != "state_pixels":
            return render(self, mode)
        return np.zeros((car_racing.STATE_H, car_racing.STATE_W, 3), dtype=np.uint8)

    return undrawn


def _play(backend: str, action: list[float], seeds: list[int]) -> list[dict[str, Any]]:
    """Play each env's first episode with a fixed action; return the final infos."""
    config = EnvConfig(backend=backend, action_repeat=4, frame_stack=1, obs_size=32)
    venv = make_vec_env(config, len(seeds), seed=seeds[0], training=False, vec_env="dummy")
    venv.reset()
    finals: dict[int, dict[str, Any]] = {}
    while len(finals) < len(seeds):
        _, _, dones, infos = venv.step(np.tile(np.array([action], np.float32), (len(seeds), 1)))
        for i in np.flatnonzero(dones):
            finals.setdefault(int(i), infos[i])
    venv.close()
    return [finals[i] for i in range(len(seeds))]


def test_standing_still_truncates_at_1000_frames_with_matching_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A car that never moves is truncated at 1000 frames on both backends, with near-equal returns.

    Its return is -0.1 per frame plus the tiles under the car at the start, so it depends
    on the track only through the tile count: the backends' means over 4 tracks agree
    within 2 points (measured on 8 tracks: -93.5 on EnvPool, -93.0 on gymnasium).

    No frame plays a part in this (the evaluation pipeline has no shaping), so gymnasium's
    CarRacing skips drawing them: its physics, tile contacts, rewards and time limit run as
    ever, at about 1/100 of the cost (drawing is 6.5 ms of a gymnasium frame's 6.6).
    """
    monkeypatch.setattr(car_racing.CarRacing, "_render", _undrawn_frames(car_racing.CarRacing._render))
    seeds = list(range(100, 104))
    returns = {}
    for backend in (GYM, POOL):
        finals = _play(backend, [0.0, 0.0, 0.0], seeds)
        assert all(f["episode_frames"] == 1000 and f["TimeLimit.truncated"] for f in finals)
        # Only the tiles under the car at the start are visited (about 2 of about 300): no lap.
        assert all(0 < f["tile_fraction"] < 0.02 and f["lap_frames"] is None for f in finals)
        returns[backend] = np.array([f["true_return"] for f in finals])
        assert np.all((returns[backend] > -100) & (returns[backend] < -85))
    assert returns[GYM].mean() == pytest.approx(returns[POOL].mean(), abs=2.0)


def test_true_return_is_envpools_raw_return() -> None:
    """Creeping straight leaves the playfield (terminated, -100); true_return equals EnvPool's own sum."""
    seeds, creep = [100, 101], [0.0, 0.1, 0.0]
    finals = _play(POOL, creep, seeds)
    pool = envpool.make("CarRacing-v3", env_type="gymnasium", num_envs=2, seed=seeds[0], env_seed=seeds)
    pool.reset()
    totals, lengths, ended = np.zeros(2), np.zeros(2, int), np.zeros(2, bool)
    while not ended.all():
        _, rewards, terminated, truncated, _ = pool.step(np.tile(np.array([creep], np.float32), (2, 1)))
        totals += np.where(ended, 0.0, rewards)
        lengths += ~ended
        ended |= terminated | truncated
    pool.close()
    for final, total, length in zip(finals, totals, lengths, strict=True):
        assert final["true_return"] == pytest.approx(total, abs=1e-3)
        # Every frame pays -0.1 and 1000/N per new tile, but the last pays -100 instead.
        assert final["tile_fraction"] == pytest.approx((total + 100 + 0.1 * (length - 1)) / 1000, abs=1e-4)
        assert final["lap_frames"] is None
        assert final["episode_frames"] == length
        assert not final["TimeLimit.truncated"] and length < 1000  # terminated off the playfield
        assert final["lap_finished"] is False  # as gymnasium's CarRacing reports it


def test_envpool_pays_tiles_as_gymnasium_does_so_the_lap_metrics_count_them() -> None:
    """The lap metrics come from the rewards (EnvPool has no tile counter): on EnvPool, as on
    gymnasium, every frame's reward is -0.1 plus a whole number of tiles at 1000/N each."""
    pool = envpool.make("CarRacing-v3", env_type="gymnasium", num_envs=2, seed=300, env_seed=[300, 301])
    pool.reset()
    paid: list[list[float]] = [[], []]
    for _ in range(250):  # the scripted creep of the test above, slower: it drives over tiles
        _, rewards, terminated, _, _ = pool.step(np.tile(np.array([[0.0, 0.05, 0.0]], np.float32), (2, 1)))
        for i in range(2):
            if not terminated[i] and rewards[i] > -0.05:
                paid[i].append(float(rewards[i]) + 0.1)
    pool.close()
    for tiles in paid:
        quantum = min(tiles)
        assert 1000 / 500 < quantum < 1000 / 100  # a track of 100 to 500 tiles
        counts = np.array(tiles) / quantum
        assert len(tiles) >= 3 and np.allclose(counts, np.round(counts), atol=1e-3)


def test_envpool_seeding_is_reproducible_and_per_env() -> None:
    """The same seeds give the same tracks; env i's track depends on seed + i only."""
    config = EnvConfig(backend=POOL, action_repeat=1, frame_stack=1, obs_size=96, grayscale=False)
    first = make_vec_env(config, 3, seed=40).reset()
    again = make_vec_env(config, 3, seed=40).reset()
    shifted = make_vec_env(config, 2, seed=41).reset()
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[1:], shifted)
    assert not np.array_equal(first[0], first[1])


def test_envpool_rejects_domain_randomize() -> None:
    with pytest.raises(CrBenchError, match="domain_randomize is not available on the envpool backend"):
        make_vec_env(EnvConfig(backend=POOL, domain_randomize=True), 1, seed=0)


def test_raw_frames_are_batched_through_one_preprocess_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each agent step preprocesses each group's (pool's) envs in one call, not one call per env."""
    calls: list[int] = []
    original = wrappers.preprocess_frames

    def counting(frames: np.ndarray, *args: Any) -> np.ndarray:
        calls.append(len(frames))
        return original(frames, *args)

    monkeypatch.setattr(wrappers, "preprocess_frames", counting)
    venv = make_vec_env(EnvConfig(backend=POOL, action_repeat=2, obs_size=32), 4, seed=0)
    venv.reset()
    calls.clear()
    venv.step(np.zeros((4, 3), np.float32))
    assert calls == [rows.stop - rows.start for rows in venv.unwrapped.groups]
    assert sum(calls) == 4
    venv.close()


def test_a_short_envpool_training_warns_nothing(tmp_path: Path) -> None:
    """Was: every EnvPool training printed gymnasium's "Box low's/high's precision lowered" warnings."""
    argv = ["train", "ppo", "--frames", "100", "--out", str(tmp_path / "run"), "--n-envs", "2", "--backend", POOL]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run_cli([*argv, *TINY["ppo"]])
    assert code == 0, err
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def test_a_pool_per_thread_plays_the_frames_of_one_pool() -> None:
    """Splitting the envs into a pool per thread changes no env's frames, rewards or episode
    ends (both layouts run here, on the same machine: EnvPool's envs are independent)."""
    config = EnvConfig(backend=POOL, action_repeat=2, frame_stack=2, obs_size=48, shaping=ALL_SHAPING)
    layouts = [EnvPoolVecEnv(config, [5, 6, 7], training=True, num_threads=threads) for threads in (0, 2)]
    first = [venv.reset() for venv in layouts]
    assert [len(venv._shards) for venv in layouts] == [1, 2]
    np.testing.assert_array_equal(first[0], first[1])
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(300):
        actions = np.clip(np.tile([[0.0, 0.5, 0.0]], (3, 1)) + rng.uniform(-0.5, 0.5, (3, 3)), [-1, 0, 0], [1, 1, 1])
        (obs, rewards, dones, infos), (ref_obs, ref_rewards, ref_dones, ref_infos) = (
            venv.step(actions.astype(np.float32)) for venv in layouts
        )
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(rewards, ref_rewards)
        np.testing.assert_array_equal(dones, ref_dones)
        assert [i.get("true_return") for i in infos] == [i.get("true_return") for i in ref_infos]
        ends += int(dones.sum())
    assert ends >= 1  # the comparison crossed a reset
    for venv in layouts:
        venv.close()


def test_a_step_that_fails_midway_leaves_no_frame_in_flight() -> None:
    """Was possible: an error between two pools' frames left one in flight, to come back as
    the next step's. Now the pools close; stepping again asks for a reset, which works."""
    venv = EnvPoolVecEnv(EnvConfig(backend=POOL, obs_size=32), [0, 1], training=False, num_threads=2)
    actions = np.zeros((2, 3), np.float32)
    with pytest.raises(CrBenchError, match="before reset"):
        venv.step(actions)
    venv.reset()

    def broken(*_: Any) -> None:
        raise RuntimeError("a recorder failed")

    venv.frame_hook = broken
    with pytest.raises(RuntimeError, match="a recorder failed"):
        venv.step(actions)
    venv.frame_hook = None
    with pytest.raises(CrBenchError, match="before reset"):
        venv.step(actions)
    assert venv.reset().shape == (2, *venv.observation_space.shape)
    assert venv.step(actions)[0].shape == (2, *venv.observation_space.shape)
    venv.close()


def test_groups_stepped_apart_play_the_frames_of_whole_steps() -> None:
    """Overlapped rollouts' order (a group's next step starts before the other group's step
    ends) plays the same frames, rewards, episode ends and infos as whole steps."""
    config = EnvConfig(backend=POOL, action_repeat=2, frame_stack=2, obs_size=48, shaping=ALL_SHAPING)
    whole, apart = (EnvPoolVecEnv(config, [5, 6, 7, 8], training=True, num_threads=2) for _ in range(2))
    np.testing.assert_array_equal(whole.reset(), apart.reset())
    assert apart.groups == [slice(0, 2), slice(2, 4)]
    rng = np.random.default_rng(1)
    actions = [
        np.clip(np.array([0.0, 0.5, 0.0]) + rng.uniform(-0.5, 0.5, (4, 3)), [-1, 0, 0], [1, 1, 1]).astype(np.float32)
        for _ in range(301)
    ]
    for group, rows in enumerate(apart.groups):
        apart.send_group(group, actions[0][rows])
    ends = 0
    for t in range(300):
        ref_obs, ref_rewards, ref_dones, ref_infos = whole.step(actions[t])
        for group, rows in enumerate(apart.groups):
            np.testing.assert_array_equal(apart.wait_group(group), ref_obs[rows])
            apart.send_group(group, actions[t + 1][rows])
        obs, rewards, dones, infos = apart.step_wait()
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(rewards, ref_rewards)
        np.testing.assert_array_equal(dones, ref_dones)
        for info, ref_info in zip(infos, ref_infos, strict=True):
            np.testing.assert_array_equal(info.pop("terminal_observation", 0), ref_info.pop("terminal_observation", 0))
            assert info == ref_info
        ends += int(dones.sum())
    assert ends >= 1  # the comparison crossed a reset
    # Both groups are in flight: a reset drops their steps and every env starts again.
    assert apart.reset().shape == (4, *apart.observation_space.shape)
    assert apart.step(actions[0])[0].shape == (4, *apart.observation_space.shape)
    for venv in (whole, apart):
        venv.close()


def test_group_steps_out_of_order_are_refused() -> None:
    venv = EnvPoolVecEnv(EnvConfig(backend=POOL, obs_size=32), [0, 1], training=False, num_threads=2)
    action = np.zeros((1, 3), np.float32)
    with pytest.raises(CrBenchError, match="before reset"):
        venv.send_group(0, action)
    venv.reset()
    with pytest.raises(CrBenchError, match="group 0 is not stepping; send_group or step_async first"):
        venv.wait_group(0)
    venv.send_group(0, action)
    with pytest.raises(CrBenchError, match=r"group 0 is still stepping; wait_group\(0\) first"):
        venv.send_group(0, action)
    venv.wait_group(0)
    venv.send_group(0, action)  # its next step may start before step_wait returns this one
    with pytest.raises(CrBenchError, match="group 0's previous step is not returned yet; call step_wait"):
        venv.wait_group(0)
    venv.send_group(1, action)
    assert venv.step_wait()[0].shape == (2, *venv.observation_space.shape)
    venv.close()


def _tiny_ppo(overlap: bool) -> Any:
    """ppo on 4 EnvPool envs in 2 groups, acting by a fixed function of its observations (so
    the comparison is exact), with SB3's loop or overlapped rollouts."""
    import torch as th
    from stable_baselines3.common.vec_env import VecNormalize

    from cr_bench.agents.models import build_model

    config = resolve_config(
        "ppo",
        {"n_envs": 4, "env": {"backend": POOL, "action_repeat": 2}, "algo": {"n_steps": 8, "batch_size": 32}},
    )
    env = make_vec_env(config.env, 4, seed=3, vec_env="auto")
    config.rollout_overlap = overlap  # SB3's loop, or the bench's lever (a LeverPPO)
    model = build_model(config, VecNormalize(env, norm_obs=False, norm_reward=True))

    def forward(obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, ...]:
        level = obs.float().mean(dim=(1, 2, 3)) / 255
        return th.stack([level - 0.5, th.full_like(level, 0.5), th.zeros_like(level)], 1), level[:, None], -level

    model.policy.forward = forward  # type: ignore[method-assign]
    return model


def _record_group_calls(pools: EnvPoolVecEnv) -> list[tuple[str, int]]:
    """The (method, group) of each later send_group and wait_group call on ``pools``."""
    calls: list[tuple[str, int]] = []
    for name in ("send_group", "wait_group"):
        method = getattr(pools, name)

        def recorded(group: int, *args: Any, _name: str = name, _method: Any = method) -> Any:
            calls.append((_name, group))
            return _method(group, *args)

        setattr(pools, name, recorded)
    return calls


def test_overlapped_rollouts_fill_the_buffer_of_sb3s_loop() -> None:
    """Same transitions, normalized rewards, values, log-probs and advantages as SB3's loop,
    while a group's next step starts before the other group's step ends."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Capture(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buffer = self.model.rollout_buffer
            names = ("observations", "actions", "rewards", "episode_starts", "values", "log_probs", "advantages")
            self.buffer = {name: getattr(buffer, name).copy() for name in names}

    buffers = []
    for overlap in (False, True):
        model = _tiny_ppo(overlap)
        calls = _record_group_calls(model.env.unwrapped)
        capture = Capture()
        model.learn(32, callback=capture)  # one rollout of 8 steps x 4 envs
        buffers.append(capture.buffer)
        model.env.close()
    for name, values in buffers[0].items():
        np.testing.assert_array_equal(buffers[1][name], values, err_msg=name)
    # The overlapped run's order: group 0 starts its next step before group 1's ends.
    start = [("send_group", 0), ("send_group", 1)]
    assert calls[:6] == [*start, ("wait_group", 0), ("send_group", 0), ("wait_group", 1), ("send_group", 1)]


def test_a_rollout_stopped_by_a_callback_leaves_the_next_learn_a_fresh_start() -> None:
    """Overlapped rollouts stopped mid-rollout have steps in flight: the next learn resets."""
    from stable_baselines3.common.callbacks import BaseCallback

    class StopAt(BaseCallback):
        def _on_step(self) -> bool:
            return self.n_calls % 3 != 0

    model = _tiny_ppo(overlap=True)
    model.learn(32, callback=StopAt())
    assert model._last_obs is None
    model.learn(32, callback=StopAt(), reset_num_timesteps=False)
    assert model.num_timesteps == 24  # 3 steps of 4 envs, twice
    model.env.close()
