"""Agent registry: every agent builds, learns a little, and round-trips through save/load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cr_bench.agents.models import build_model, load_model
from cr_bench.agents.registry import AGENTS, get_agent, resolve_config
from cr_bench.envs.make import make_vec_env
from cr_bench.errors import CrBenchError
from cr_bench.spec.commands import positive
from custom_policies import BetaCnnPolicy

SMALL = {
    "ppo": {"algo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}},
    "ppo-v1": {"algo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}},
    "ppo-gaussian": {"algo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}},
    "dqn": {"algo": {"learning_starts": 10, "buffer_size": 500}},
    "recurrent-ppo": {"algo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}},
    "qrdqn": {"algo": {"learning_starts": 10, "buffer_size": 500}},
}


@pytest.mark.parametrize("agent", list(AGENTS))
def test_save_load_round_trip_predicts_the_same(agent: str, tmp_path: Path) -> None:
    """After a short learn, a saved and reloaded model gives identical deterministic actions."""
    config = resolve_config(agent, {"n_envs": 1, "vec_env": "dummy", "frames": 200}, SMALL[agent])
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    model = build_model(config, env)
    model.frames_done = 0  # type: ignore[attr-defined]
    model.learn(40)
    observations = np.stack([env.step(np.array([env.action_space.sample()]))[0][0] for _ in range(5)])
    before, _ = model.predict(observations, deterministic=True)
    model.save(tmp_path / "model.zip")
    loaded = load_model(config, str(tmp_path / "model.zip"))
    after, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(before, after)
    assert type(loaded.policy) is type(model.policy)
    env.close()


def test_ppo_uses_the_beta_policy_and_covers_the_box() -> None:
    """ppo's policy is BetaCnnPolicy; its sampled steering reaches both signs."""
    config = resolve_config("ppo", {"n_envs": 1, "vec_env": "dummy"})
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    model = build_model(config, env)
    assert isinstance(model.policy, BetaCnnPolicy)
    obs = np.repeat(env.reset(), 256, axis=0)
    actions, _ = model.predict(obs, deterministic=False)
    assert actions[:, 0].min() < -0.2 and actions[:, 0].max() > 0.2
    assert np.all(actions[:, 1:] >= 0) and np.all(actions[:, 1:] <= 1)
    env.close()


def test_schedules_follow_frames_not_agent_steps() -> None:
    """A linear learning rate reaches its midpoint when half the frame budget is spent."""
    config = resolve_config(
        "ppo", {"n_envs": 1, "vec_env": "dummy", "frames": 1000}, {"algo": {"learning_rate": "lin_1e-3"}}
    )
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    model = build_model(config, env)
    model.frames_done = 500  # type: ignore[attr-defined]
    model._update_current_progress_remaining(num_timesteps=10, total_timesteps=1000)
    assert model.lr_schedule(model._current_progress_remaining) == pytest.approx(5e-4)
    env.close()


@pytest.mark.parametrize(("agent", "buffer"), [("ppo", "rollout_buffer"), ("dqn", "replay_buffer")])
def test_buffers_store_uint8_observations(agent: str, buffer: str) -> None:
    """Rollout and replay buffers keep frames as uint8 (4x smaller than float32, 8x than float64)."""
    config = resolve_config(agent, {"n_envs": 1, "vec_env": "dummy"}, SMALL[agent])
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    model = build_model(config, env)
    stored = getattr(model, buffer)
    assert stored.observations.dtype == np.uint8
    if buffer == "replay_buffer":
        assert stored.next_observations.dtype == np.uint8
    env.close()


def test_former_name_ppo_beta_is_the_former_recipe() -> None:
    """Commands and suites written before the default changed mean what they meant: ppo-beta
    (the Beta PPO's name then) resolves to ppo-v1, the recipe it trained."""
    assert get_agent("ppo-beta") is get_agent("ppo-v1")
    assert resolve_config("ppo-beta").agent == "ppo-v1"
    assert resolve_config("ppo-v1", {"agent": "ppo-beta"}).agent == "ppo-v1"
    with pytest.raises(CrBenchError, match="names agent 'ppo-beta'"):
        resolve_config("ppo", {"agent": "ppo-beta"})


def test_initial_action_mean_sets_the_untrained_policy_mean() -> None:
    """policy.initial_action_mean: the untrained deterministic action is the requested mean."""
    config = resolve_config(
        "ppo", {"n_envs": 1, "vec_env": "dummy", "policy": {"initial_action_mean": [0.0, 0.6, 0.05]}}
    )
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    model = build_model(config, env)
    actions, _ = model.predict(env.reset(), deterministic=True)
    np.testing.assert_allclose(actions[0], [0.0, 0.6, 0.05], atol=0.03)
    env.close()
    with pytest.raises(CrBenchError, match="initial_action_mean"):
        resolve_config("ppo", {"policy": {"initial_action_mean": [0.0, 1.5, 0.0]}})


def test_runs_saved_before_the_rename_keep_their_agent(tmp_path: Path) -> None:
    """A config.yaml written when `ppo` was the Gaussian recipe reads as ppo-gaussian; new ones stay ppo."""
    from cr_bench.agents.rundir import RunDir
    from cr_bench.spec.loader import to_dict, write_yaml

    old = to_dict(resolve_config("ppo-gaussian"))
    old["agent"] = "ppo"
    del old["policy"]["initial_action_mean"], old["env"]["throttle_axis"]  # keys added since
    write_yaml(tmp_path / "config.yaml", old)
    assert RunDir(tmp_path).read_config().agent == "ppo-gaussian"
    write_yaml(tmp_path / "config.yaml", to_dict(resolve_config("ppo", {"policy": {"initial_action_mean": None}})))
    assert RunDir(tmp_path).read_config().agent == "ppo"


def test_a_config_sb3_rejects_is_a_user_error_but_our_bug_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """SB3's own check on a bad argument (batch_size 1) is a one-line CrBenchError; the same
    exception type raised by our code is a bug and keeps its type and traceback."""
    config = resolve_config("ppo", {"n_envs": 1, "vec_env": "dummy", "env": {"backend": "gymnasium"}}, SMALL["ppo"])
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    config.algo["batch_size"] = 1
    with pytest.raises(CrBenchError, match="cannot build ppo"):
        build_model(config, env)
    config.algo["batch_size"] = 16

    def broken_kwargs(_: object) -> dict[str, object]:
        positive("8")  # type: ignore[arg-type]  # a TypeError raised in cr_bench's own code
        return {}

    monkeypatch.setattr("cr_bench.agents.models.policy_kwargs", broken_kwargs)
    with pytest.raises(TypeError, match="not supported between"):
        build_model(config, env)
    env.close()


@pytest.mark.parametrize(("rollout_threads", "seen"), [(1, 1), (0, 2), (3, 2)])
def test_rollouts_run_on_their_own_threads(rollout_threads: int, seen: int) -> None:
    """With the learner on 2 torch threads, rollouts (here: every env step) run on
    ``rollout_threads`` (0: the learner's; never more), the learner on 2, and 2 remain after."""
    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.vec_env import DummyVecEnv

    from cr_bench.agents.algorithms import FramePPO

    during_steps: set[int] = set()
    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    step = venv.step_wait

    def counting_step() -> object:
        during_steps.add(th.get_num_threads())
        return step()

    venv.step_wait = counting_step  # type: ignore[method-assign]
    model = FramePPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, device="cpu")
    model.rollout_threads = rollout_threads
    during_training: set[int] = set()
    train = model.train

    def counting_train() -> None:
        during_training.add(th.get_num_threads())
        train()

    model.train = counting_train  # type: ignore[method-assign]
    threads = th.get_num_threads()
    th.set_num_threads(2)
    try:
        model.learn(32)
        assert (during_steps, during_training, th.get_num_threads()) == ({seen}, {2}, 2)
    finally:
        th.set_num_threads(threads)


def _weights(policy: object) -> np.ndarray:
    import torch as th

    assert isinstance(policy, th.nn.Module)
    return th.cat([weight.detach().reshape(-1) for weight in policy.parameters()]).numpy()


def test_overlapped_learner_learns_each_rollout_while_the_next_is_played() -> None:
    """learner_overlap: the learner trains on rollout k (its buffer as collected, from the
    weights rollout k-1 left, on the learner's 2 torch threads where the rollout uses 1)
    while rollout k+1 is played by the policy from before that update, whose optimizer
    state the learner does not change; the model ends with the weights and optimizer state
    of the last update."""
    import threading

    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from cr_bench.agents.levers import LeverPPO

    rollouts = 5
    stepping = [threading.Event() for _ in range(rollouts)]  # set once rollout k has played a step
    trained: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = []  # obs, start, end, overlapped

    threads: list[int] = []
    learner_tensors: set[int] = set()
    model_tensors: set[int] = set()

    def optimizer_tensors(policy: th.nn.Module) -> set[int]:
        state = policy.optimizer.state_dict()["state"]  # type: ignore[operator]
        return {value.data_ptr() for entry in state.values() for value in entry.values()}

    class Probe(LeverPPO):
        def train(self) -> None:
            k = len(trained)
            # SB3's loop plays no step of rollout k+1 before train() returns: this waits in
            # vain there. Here the rollout runs, on its 1 torch thread, before any torch op.
            overlapped = k + 1 == rollouts or stepping[k + 1].wait(timeout=5)
            learner_tensors.update(optimizer_tensors(self.policy))
            start = _weights(self.policy)
            observations = self.rollout_buffer.observations.copy()
            super().train()
            threads.append(th.get_num_threads())
            trained.append((observations, start, _weights(self.policy), overlapped))

    played: list[tuple[np.ndarray, np.ndarray]] = []  # acting weights, observations

    class Recorder(BaseCallback):
        def _on_step(self) -> bool:
            stepping[len(played)].set()
            return True

        def _on_rollout_end(self) -> None:
            model_tensors.update(optimizer_tensors(self.model.policy))
            buffer = self.locals["rollout_buffer"]
            played.append((_weights(self.model.policy), buffer.observations.copy()))

    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    model = Probe("MlpPolicy", venv, n_steps=16, batch_size=8, n_epochs=2, seed=0, device="cpu")
    model.learner_overlap = True
    model.rollout_threads = 1
    initial = _weights(model.policy)
    former = th.get_num_threads()
    th.set_num_threads(2)
    try:
        model.learn(16 * rollouts, callback=Recorder())
    finally:
        th.set_num_threads(former)

    assert len(played) == len(trained) == rollouts
    assert threads == [2] * rollouts
    assert model_tensors and learner_tensors and not model_tensors & learner_tensors
    assert all(overlapped for *_, overlapped in trained)
    for k, (observations, start, _, _) in enumerate(trained):
        assert np.array_equal(observations, played[k][1])  # rollout k, as collected
        assert np.array_equal(start, trained[k - 1][2] if k else initial)
    expected_acting = [initial, initial] + [end for _, _, end, _ in trained[:3]]
    for (acting, _), expected in zip(played, expected_acting, strict=True):
        assert np.array_equal(acting, expected)
    assert np.array_equal(_weights(model.policy), trained[-1][2])
    assert model._n_updates == 5 * 2
    steps = [state["step"] for state in model.policy.optimizer.state_dict()["state"].values()]
    assert steps and all(int(step) == 5 * 2 * 2 for step in steps)  # Adam: 2 epochs x 2 batches x 5


def test_an_error_of_the_overlapped_learner_stops_learn() -> None:
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    from cr_bench.agents.levers import LeverPPO

    class Broken(LeverPPO):
        def train(self) -> None:
            raise RuntimeError("learner broke")

    model = Broken("MlpPolicy", DummyVecEnv([lambda: gym.make("CartPole-v1")]), n_steps=16, batch_size=16, device="cpu")
    model.learner_overlap = True
    with pytest.raises(RuntimeError, match="learner broke"):
        model.learn(16 * 4)


def test_channels_last_buffer_serves_sb3s_minibatches_in_channels_last_layout() -> None:
    """The same minibatches, in the same order, as SB3's RolloutBuffer, as ``(batch, C, H, W)``
    tensors whose memory is channels-last (what the network reads without a relayout)."""
    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.buffers import RolloutBuffer

    from cr_bench.agents.algorithms import ChannelsLastRolloutBuffer

    space = gym.spaces.Box(0, 255, (4, 6, 5), np.uint8)
    actions = gym.spaces.Box(-1, 1, (3,), np.float32)
    rng = np.random.default_rng(0)
    buffers = [cls(8, space, actions, n_envs=3) for cls in (RolloutBuffer, ChannelsLastRolloutBuffer)]
    for _ in range(8):
        step = (rng.integers(0, 256, (3, 4, 6, 5), np.uint8), rng.random((3, 3)), rng.random(3), np.zeros(3))
        for buffer in buffers:
            buffer.add(*step, th.zeros(3, 1), th.zeros(3))
    for buffer in buffers:
        buffer.compute_returns_and_advantage(th.zeros(3, 1), np.zeros(3))
    batches = []
    for buffer in buffers:
        np.random.seed(1)
        batches.append([samples for _ in range(2) for samples in buffer.get(5)])  # two epochs
    assert len(batches[0]) == len(batches[1]) == 10
    for sb3, ours in zip(*batches, strict=True):
        assert ours.observations.shape == sb3.observations.shape
        assert ours.observations.is_contiguous(memory_format=th.channels_last)
        assert th.equal(ours.observations, sb3.observations)
        assert th.equal(ours.actions, sb3.actions) and th.equal(ours.advantages, sb3.advantages)


@pytest.mark.parametrize(("channels_last", "buffer"), [(True, "ChannelsLastRolloutBuffer"), (False, "RolloutBuffer")])
def test_ppo_gives_a_channels_last_cnn_the_channels_last_buffer(channels_last: bool, buffer: str) -> None:
    config = resolve_config("ppo", {**SMALL["ppo"], "n_envs": 1, "policy": {"channels_last": channels_last}})
    env = make_vec_env(config.env, config.n_envs, config.seed, training=True)
    model = build_model(config, env)
    assert type(model.rollout_buffer).__name__ == buffer
    env.close()


def test_the_channels_last_buffer_trains_ppo_as_sb3s_buffer_does() -> None:
    """Two seeded trainings of ppo, one with SB3's RolloutBuffer: the same weights."""
    from stable_baselines3.common.buffers import RolloutBuffer

    config = resolve_config("ppo", {**SMALL["ppo"], "n_envs": 1, "env": {"action_repeat": 2}})
    weights = []
    for buffer_class in ("ours", RolloutBuffer):
        env = make_vec_env(config.env, config.n_envs, config.seed, training=True)
        model = build_model(config, env)
        if buffer_class is RolloutBuffer:
            model.rollout_buffer = RolloutBuffer(
                model.n_steps,
                model.observation_space,
                model.action_space,
                device=model.device,
                gamma=model.gamma,
                gae_lambda=model.gae_lambda,
                n_envs=1,
            )
        else:
            assert type(model.rollout_buffer).__name__ == "ChannelsLastRolloutBuffer"
        model.learn(16 * 3)
        weights.append(_weights(model.policy))
        env.close()
    assert np.array_equal(*weights)


def test_the_main_path_is_sb3s_loop_and_levers_are_bench_only() -> None:
    """ppo trains on SB3's own loop (no lever mixin in FramePPO); a config that turns a lever
    on gets the bench's LeverPPO; a lever on an agent without PPO's loop is refused."""
    from stable_baselines3 import PPO

    from cr_bench.agents.algorithms import FramePPO
    from cr_bench.agents.levers import LeverPPO, OverlappedLearner, OverlappedRollouts

    assert FramePPO.collect_rollouts.__qualname__ == "RolloutThreads.collect_rollouts"
    assert FramePPO.learn is PPO.learn and not issubclass(FramePPO, OverlappedRollouts | OverlappedLearner)
    config = resolve_config("ppo", {"n_envs": 1, "env": {"backend": "gymnasium"}, "algo": {"n_steps": 16}})
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    assert type(build_model(config, env)) is FramePPO
    config.learner_overlap = True
    assert type(build_model(config, env)) is LeverPPO
    env.close()
    with pytest.raises(CrBenchError, match="levers of PPO; dqn has no such loop"):
        resolve_config("dqn", {"learner_overlap": True})


def test_recurrent_ppo_runs_each_training_sequence_in_one_lstm_call_as_sb3_contrib_would() -> None:
    """sb3-contrib steps the LSTM one frame at a time through any training batch that holds an
    episode start, though its buffer starts an episode only at a sequence's first step.
    process_sequence resets those sequences' states first and runs each sequence in one call:
    the same outputs, states and gradients (to float rounding), in one LSTM call, not one a step."""
    import torch as th
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

    from custom_policies.recurrent import process_sequence

    th.manual_seed(0)
    lstm = th.nn.LSTM(8, 16)
    calls: list[int] = []
    lstm.register_forward_hook(lambda *_: calls.append(1))
    n_seq, length = 4, 6
    states = (th.randn(1, n_seq, 16), th.randn(1, n_seq, 16))
    starts = th.zeros(n_seq, length)
    starts[1, 0] = starts[3, 0] = 1.0  # episodes 1 and 3 start here; 0 and 2 go on from the states

    def run(process: Any, starts: th.Tensor) -> tuple[list[th.Tensor], int]:
        features = th.randn(n_seq * length, 8, generator=th.Generator().manual_seed(1), requires_grad=True)
        lstm.zero_grad()
        calls.clear()
        out, (hidden, cell) = process(features, states, starts.flatten(), lstm)
        (out.sum() + hidden.sum() + cell.sum()).backward()
        assert features.grad is not None
        return [out, hidden, cell, features.grad, *(p.grad for p in lstm.parameters())], len(calls)

    reference, reference_calls = run(RecurrentActorCriticPolicy._process_sequence, starts)
    ours, our_calls = run(process_sequence, starts)
    for expected, got in zip(reference, ours, strict=True):
        th.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (reference_calls, our_calls) == (length, 1)
    starts[2, 3] = 1.0  # a start inside a sequence (the buffer makes none): sb3-contrib's own path
    reference, _ = run(RecurrentActorCriticPolicy._process_sequence, starts)
    ours, our_calls = run(process_sequence, starts)
    assert our_calls == length and all(th.equal(a, b) for a, b in zip(reference, ours, strict=True))

    config = resolve_config("recurrent-ppo", {"n_envs": 1, "vec_env": "dummy"}, SMALL["recurrent-ppo"])
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    assert build_model(config, env).policy._process_sequence is process_sequence
    env.close()


@pytest.mark.parametrize(("agent", "eps"), [("dqn", 1e-8), ("qrdqn", 0.01 / 32)])
def test_the_dqn_family_steps_a_fused_adam_with_the_librarys_settings(agent: str, eps: float, tmp_path: Path) -> None:
    """DQN's family takes a gradient step every few transitions, and torch's default Adam on a
    CPU loops over a dozen tensor ops per parameter in Python: the fused kernel does the same
    update in one. Its settings stay the library's (QR-DQN's eps 0.01/32), over the online
    network's parameters only, and a saved run resumes with it."""
    config = resolve_config(agent, {"n_envs": 1, "vec_env": "dummy", "frames": 200}, SMALL[agent])
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    model = build_model(config, env)
    (group,) = model.policy.optimizer.param_groups
    assert group["fused"] and not group["foreach"]
    assert group["eps"] == pytest.approx(eps) and group["lr"] == pytest.approx(config.algo["learning_rate"])
    assert model.policy.optimizer.defaults["eps"] == pytest.approx(eps)  # a later param group gets them too
    online = model.policy.q_net if agent == "dqn" else model.policy.quantile_net
    assert {id(p) for p in group["params"]} == {id(p) for p in online.parameters()}
    model.frames_done = 0  # type: ignore[attr-defined]
    model.learn(40)
    model.save(tmp_path / "model.zip")
    loaded = load_model(config, str(tmp_path / "model.zip"))
    assert loaded.policy.optimizer.param_groups[0]["fused"]
    assert loaded.policy.optimizer.state_dict()["state"].keys() == model.policy.optimizer.state_dict()["state"].keys()
    env.close()


def test_an_interrupt_inside_adams_first_step_leaves_no_half_made_state() -> None:
    """Was (tests/test_faults.py, Ctrl-C of compare): the interrupt landed while Adam made a
    parameter's state on its first step (``step`` and ``exp_avg``, no ``exp_avg_sq``); the
    run saved it, and the resumed run's first step raised KeyError: 'exp_avg_sq'."""
    import torch as th

    from cr_bench.agents.training import drop_half_made_adam_states

    layer = th.nn.Linear(3, 2)
    optimizer = th.optim.Adam(layer.parameters(), lr=1e-3)
    layer(th.ones(1, 3)).sum().backward()
    optimizer.step()  # complete states for both parameters
    complete = {name: value.clone() for name, value in optimizer.state[layer.weight].items()}
    optimizer.state[layer.bias] = {"step": th.tensor(0.0), "exp_avg": th.zeros_like(layer.bias)}  # interrupted
    with pytest.raises(KeyError, match="exp_avg_sq"):
        optimizer.step()
    drop_half_made_adam_states(optimizer)
    assert layer.bias not in optimizer.state
    assert all(th.equal(optimizer.state[layer.weight][name], value) for name, value in complete.items())
    optimizer.step()  # Adam makes the dropped state afresh
    assert set(optimizer.state[layer.bias]) == {"step", "exp_avg", "exp_avg_sq"}
