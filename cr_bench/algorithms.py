"""SB3 and sb3-contrib algorithms whose schedules follow environment frames, whose rollouts
may use fewer torch threads than their learner, and whose PPO runs the policy for one EnvPool
group while the others step."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import QRDQN, RecurrentPPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecMonitor, VecNormalize

from cr_bench.envpool_backend import EnvPoolVecEnv


class FrameProgress:
    """Mixin for SB3 algorithms: schedules follow environment frames, not agent steps.

    SB3 computes ``progress_remaining`` from agent steps; cr-bench budgets are frames,
    which differ with action repeat and reset no-ops. The training callback keeps
    ``frames_done`` up to date; both attributes are saved with the model, so a resumed
    run continues its schedules where they were.
    """

    frame_budget: int | None = None
    frames_done: int = 0

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        if self.frame_budget:
            self._current_progress_remaining = max(0.0, 1.0 - self.frames_done / self.frame_budget)
        else:
            super()._update_current_progress_remaining(num_timesteps, total_timesteps)  # type: ignore[misc]


class RolloutThreads:
    """Mixin for on-policy SB3 algorithms: collect rollouts on ``rollout_threads`` torch threads.

    Collecting runs the policy on one small batch per step, where a second thread mostly
    waits for the first; the learner's large batches use them all. 0 keeps the learner's
    threads, and the rollout never uses more than the learner. Not on DQN's family: it
    collects a few steps between gradient steps, and each switch of threads has a cost.
    """

    rollout_threads: int = 0

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> Any:
        learner = th.get_num_threads()
        threads = min(self.rollout_threads or learner, learner)
        if threads == learner:
            return super().collect_rollouts(*args, **kwargs)  # type: ignore[misc]
        th.set_num_threads(threads)
        try:
            return super().collect_rollouts(*args, **kwargs)  # type: ignore[misc]
        finally:
            th.set_num_threads(learner)


class OverlappedRollouts:
    """Mixin for SB3's PPO: on an EnvPool VecEnv of several pools, run the policy for one
    pool's envs (a group) while the other pools step.

    SB3 runs the policy on every env's observation, then steps every env: the pools wait
    for the policy and for the slowest pool, the policy for every pool. Here a group's next
    action is computed as soon as its own step ends (:meth:`EnvPoolVecEnv.wait_group`), and
    its pool steps again (:meth:`EnvPoolVecEnv.send_group`) while the other groups finish
    theirs. Every env still acts on its newest observation with the rollout's policy, and
    the buffer, the callbacks and the wrappers above the pools see whole steps as in SB3's
    loop: only the order of the random draws changes. The last step of a rollout waits for
    every group, so the learner never runs with a step in flight.

    ``rollout_overlap = False``, or a VecEnv this cannot split (one pool, gymnasium, a
    wrapper that changes observations), or gSDE: SB3's loop.
    """

    rollout_overlap: bool = False

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        pools = _group_stepped(env) if self.rollout_overlap and not self.use_sde else None  # type: ignore[attr-defined]
        if pools is None:
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)  # type: ignore[misc]
        model: PPO = self  # type: ignore[assignment]
        assert model._last_obs is not None, "No previous observation was provided"
        model.policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        current = _StepParts(env.num_envs, model.device)
        for group, rows in enumerate(pools.groups):
            self._act(pools, group, model._last_obs[rows], current)  # type: ignore[index]
        n_steps = 0
        while n_steps < n_rollout_steps:
            following = _StepParts(env.num_envs, model.device) if n_steps + 1 < n_rollout_steps else None
            for group in range(len(pools.groups)):
                observations = pools.wait_group(group)
                if following is not None:
                    self._act(pools, group, observations, following)
            new_obs, rewards, dones, infos = env.step_wait()  # the whole step, through the wrappers
            model.num_timesteps += env.num_envs
            actions, values, log_probs = current.actions, current.values, current.log_probs
            callback.update_locals(locals())
            if not callback.on_step():
                model._last_obs = None  # type: ignore[assignment]  # steps in flight: learn resets the env
                return False
            model._update_info_buffer(infos, dones)
            n_steps += 1
            if isinstance(model.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            self._bootstrap_time_limits(rewards, dones, infos)
            rollout_buffer.add(model._last_obs, actions, rewards, model._last_episode_starts, values, log_probs)  # type: ignore[arg-type]
            model._last_obs, model._last_episode_starts = new_obs, dones  # type: ignore[assignment]
            if following is not None:
                current = following
        with th.no_grad():
            values = model.policy.predict_values(obs_as_tensor(new_obs, model.device))  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _act(self, pools: EnvPoolVecEnv, group: int, observations: np.ndarray, into: _StepParts) -> None:
        """Run the policy on ``group``'s observations, keep its outputs, and start the group's step."""
        model: PPO = self  # type: ignore[assignment]
        with th.no_grad():
            actions, values, log_probs = model.policy(obs_as_tensor(observations, model.device))
        actions = actions.cpu().numpy()
        into.put(pools.groups[group], actions, values, log_probs)
        if isinstance(model.action_space, spaces.Box):  # as SB3's loop: unsquash or clip
            if model.policy.squash_output:
                actions = model.policy.unscale_action(actions)
            else:
                actions = np.clip(actions, model.action_space.low, model.action_space.high)
        pools.send_group(group, actions)

    def _bootstrap_time_limits(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """SB3's loop: an episode the time limit cut gets ``gamma`` x its last observation's value."""
        model: PPO = self  # type: ignore[assignment]
        for idx, done in enumerate(dones):
            info = infos[idx]
            if done and info.get("terminal_observation") is not None and info.get("TimeLimit.truncated", False):
                terminal_obs = model.policy.obs_to_tensor(info["terminal_observation"])[0]
                with th.no_grad():
                    terminal_value = model.policy.predict_values(terminal_obs)[0]  # type: ignore[arg-type]
                rewards[idx] += model.gamma * terminal_value


class _StepParts:
    """One rollout step's actions, values and log-probs, filled group by group."""

    def __init__(self, n_envs: int, device: th.device) -> None:
        self.n_envs = n_envs
        self.actions: np.ndarray = np.empty(0)
        self.values = th.zeros((n_envs, 1), device=device)
        self.log_probs = th.zeros(n_envs, device=device)

    def put(self, rows: slice, actions: np.ndarray, values: th.Tensor, log_probs: th.Tensor) -> None:
        if len(self.actions) != self.n_envs:
            self.actions = np.empty((self.n_envs, *actions.shape[1:]), actions.dtype)
        self.actions[rows], self.values[rows], self.log_probs[rows] = actions, values, log_probs


def _group_stepped(env: VecEnv) -> EnvPoolVecEnv | None:
    """The EnvPool VecEnv under ``env`` if its groups can step apart: several pools, and only
    wrappers that leave observations as they are (VecMonitor, VecNormalize on rewards)."""
    while isinstance(env, VecEnvWrapper):
        if not (isinstance(env, VecMonitor) or (isinstance(env, VecNormalize) and not env.norm_obs)):
            return None
        env = env.venv
    return env if isinstance(env, EnvPoolVecEnv) and len(env.groups) > 1 else None


class FramePPO(FrameProgress, RolloutThreads, OverlappedRollouts, PPO):
    """PPO with frame-based schedules; its rollouts may overlap the pools' stepping."""


class FrameDQN(FrameProgress, DQN):
    """DQN with frame-based schedules."""


class FrameRecurrentPPO(FrameProgress, RolloutThreads, RecurrentPPO):
    """sb3-contrib RecurrentPPO with frame-based schedules."""


class FrameQRDQN(FrameProgress, QRDQN):
    """sb3-contrib QR-DQN with frame-based schedules."""
