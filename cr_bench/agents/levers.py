"""Levers of ``cr-bench bench`` that change SB3's PPO loop, off by default: each lost learning
or did not pay on 2 cores when measured, so no run takes them unless its config asks
(``rollout_overlap``, ``learner_overlap``), and the main path (:class:`FramePPO`) stays
SB3's own loop.

- ``rollout_overlap`` (:class:`OverlappedRollouts`): 0.98x the frames/s of ppo in
  results/throughput.md, same learning;
- ``learner_overlap`` (:class:`OverlappedLearner`): 1.02x the frames/s, and one rollout of
  lag costs about 50 points at 1M frames (results/overlap).
"""

from __future__ import annotations

import copy
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecMonitor, VecNormalize

from cr_bench.agents.algorithms import FramePPO
from cr_bench.envs.envpool_backend import EnvPoolVecEnv

if TYPE_CHECKING:
    from cr_bench.spec.run import RunConfig


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
        with self.rollout_torch_threads():  # type: ignore[attr-defined]
            return self._collect_overlapped(pools, env, callback, rollout_buffer, n_rollout_steps)

    def _collect_overlapped(
        self,
        pools: EnvPoolVecEnv,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """SB3's ``collect_rollouts``, with each group's policy run as soon as its step ends."""
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


class OverlappedLearner:
    """Mixin for SB3's PPO: learn from one rollout on a thread of its own while the next
    rollout is collected.

    SB3 alternates: collect a rollout, train on it, collect the next. Here the learner trains
    a copy of the policy on rollout k while the envs play rollout k+1 with the policy it
    had before, and the copy's weights (and optimizer state) return to ``self.policy`` once
    both are done. So rollout k+1 is played by the policy trained on rollouts 1..k-1: one
    rollout of lag, which PPO's ratio to the recorded log-probs (the acting policy's) takes
    into account as for any sampled data. The rollouts learned from are SB3's: a rollout cut
    by the frame budget is not learned from, and the last full one is.

    ``self.policy`` (weights and optimizer state) only changes between rollouts, so
    callbacks (checkpoints, evaluations) see a consistent policy: one taken during rollout
    k+1 holds the policy trained on rollouts 1..k-1, and a run resumed from it does not
    learn from rollout k. The learner records its ``train/`` values in the shared logger
    while the rollout runs, and the logs are written between rollouts: a callback that
    writes the logs during a rollout (SB3's ``EvalCallback``) may write part of them.
    ``learner_overlap = False``: SB3's loop.
    """

    learner_overlap: bool = False

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1,
        tb_log_name: str = "PPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Any:
        if not self.learner_overlap:
            return super().learn(  # type: ignore[misc]
                total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar
            )
        model: PPO = self  # type: ignore[assignment]
        # SB3's OnPolicyAlgorithm.learn, with train() replaced by _Learner.start/finish.
        iteration = 0
        learner = _Learner(model)
        total_timesteps, callback = model._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        assert model.env is not None
        try:
            while model.num_timesteps < total_timesteps:
                continue_training = model.collect_rollouts(
                    model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps
                )
                learner.finish()
                if not continue_training:
                    break
                iteration += 1
                model._update_current_progress_remaining(model.num_timesteps, total_timesteps)
                if log_interval is not None and iteration % log_interval == 0:
                    model.dump_logs(iteration)
                learner.start()
        except BaseException:
            # Ctrl-C or an error here: the update under way still reaches the model (the
            # checkpoint of an interrupted run holds it), and this error is the one raised.
            learner.close(quiet=True)
            raise
        learner.close()
        callback.on_training_end()
        return self


class _Learner:
    """The learner of :class:`OverlappedLearner`: a copy of the model's policy, trained by
    SB3's ``train`` on a worker thread, and the spare rollout buffer the next rollout fills."""

    def __init__(self, model: PPO) -> None:
        self.model = model
        self.policy = copy.deepcopy(model.policy)
        vars(self.policy).pop("forward", None)  # a callback's timing wrapper bound to the original
        self.spare = copy.deepcopy(model.rollout_buffer)
        self.threads = th.get_num_threads()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cr-bench-learner")
        self.running: Future[int] | None = None

    def start(self) -> None:
        """Train the copy on the rollout just collected; the model collects into the spare buffer."""
        shadow = copy.copy(self.model)  # SB3's train() reads the model's attributes as they are now
        shadow.policy = self.policy
        self.model.rollout_buffer, self.spare = self.spare, self.model.rollout_buffer
        self.running = self.executor.submit(self._train, shadow)

    def _train(self, shadow: PPO) -> int:
        # Torch sets a thread's count up at its first use, from the count set last by any
        # thread (the rollout's may be smaller): set up first, then set this thread's own.
        th.get_num_threads()
        th.set_num_threads(self.threads)
        type(shadow).train(shadow)  # not an instance attribute: one bound to the model
        return shadow._n_updates

    def finish(self) -> None:
        """Wait for the training under way (re-raising its error) and give its weights and
        optimizer state to the model (copies: the learner's go on changing)."""
        if self.running is None:
            return
        try:
            n_updates = self.running.result()  # a Ctrl-C here leaves it to close()
        except Exception:
            self.running = None
            raise
        self.running = None
        self.model._n_updates = n_updates
        self.model.policy.load_state_dict(self.policy.state_dict())
        # load_state_dict keeps the given state's tensors: the learner's next steps would
        # change the model's optimizer state in place.
        self.model.policy.optimizer.load_state_dict(copy.deepcopy(self.policy.optimizer.state_dict()))

    def close(self, quiet: bool = False) -> None:
        """Finish the training under way and stop the thread; ``quiet``: without raising its error."""
        try:
            self.finish()
        except Exception:
            if not quiet:
                raise
        finally:
            self.executor.shutdown()


class LeverPPO(OverlappedRollouts, OverlappedLearner, FramePPO):
    """:class:`FramePPO` with the levers its run config turns on."""

    def configure(self, config: RunConfig) -> None:
        super().configure(config)
        self.rollout_overlap = config.rollout_overlap
        self.learner_overlap = config.learner_overlap


def uses_levers(config: RunConfig) -> bool:
    """Whether ``config`` turns on a lever of this module (its run is a :class:`LeverPPO`)."""
    return config.rollout_overlap or config.learner_overlap
