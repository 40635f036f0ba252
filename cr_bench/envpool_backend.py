"""EnvPool backend: an SB3 ``VecEnv`` running CarRacing-v3 in C++ with the whole cr-bench
pipeline applied to the batch at once.

EnvPool steps the same physics and reward as gymnasium's CarRacing-v3, several times
faster; see the README for the known differences (track generation, anti-aliasing,
colours). The pipeline mirrors :func:`cr_bench.envs.make_env` with the same state
classes and functions (:mod:`cr_bench.wrappers`) over the whole batch: the score
(``ScoreCounters``), the training rules in ``training_wrappers``' order, preprocessing
and the frame stack (``FrameStacker``) are numpy or OpenCV calls over the batch, never a
per-env loop over pixels. Episode statistics (``info["episode"]``) come from SB3's
``VecMonitor``, which :func:`cr_bench.envs.make_vec_env` puts on top.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from cr_bench import wrappers
from cr_bench.errors import CrBenchError
from cr_bench.spec.run import ENV_ID, EnvConfig

_ACTION_LOW, _ACTION_HIGH = wrappers.CAR_RACING_ACTIONS.low, wrappers.CAR_RACING_ACTIONS.high


class EnvPoolVecEnv(VecEnv):
    """SB3 VecEnv over EnvPool's CarRacing-v3, with cr-bench's pipeline on the batch.

    Semantics follow SB3's VecEnv over gymnasium envs (DummyVecEnv): an env that ends is
    reset at once, its last observation is in ``info["terminal_observation"]``, and every
    info has ``TimeLimit.truncated`` (the 1000-frame limit ended the episode), and
    ``true_return`` and ``episode_frames``, counted on raw frames below shaping, as the
    gymnasium path does. An episode the env itself terminated has ``lap_finished``, as
    gymnasium's CarRacing reports it. ``info["episode"]`` is left to SB3's ``VecMonitor``.

    :param config: the pipeline (``domain_randomize`` is not supported by EnvPool).
    :param seeds: one seed per env; env ``i``'s first track is EnvPool's track for ``seeds[i]``.
    :param training: apply the training-only shaping and early termination.
    :param num_threads: threads stepping the envs. ``k >= 1``: the envs are split into
        ``k`` pools of one thread each (:class:`_Shard`), stepped in turn, so this thread
        handles one pool's frames while the others step, and a slow frame holds up only its
        own pool during the action repeat (ended envs are reset after it, pool by pool);
        0: one pool with EnvPool's own threads (one per env, capped).
    """

    def __init__(self, config: EnvConfig, seeds: Sequence[int], training: bool, num_threads: int = 0) -> None:
        if config.domain_randomize:
            raise CrBenchError("the envpool backend has no domain_randomize; use --backend gymnasium")
        self.config, self.training, self.num_threads = config, training, num_threads
        self.seeds = [int(seed) for seed in seeds]
        n_envs = len(self.seeds)
        channels = 1 if config.grayscale else 3
        self._stacker = wrappers.FrameStacker(n_envs, config.frame_stack, (channels, config.obs_size, config.obs_size))
        observation_space = gym.spaces.Box(0, 255, self._stacker.stack.shape[1:], np.uint8)
        self.action_table: np.ndarray | None = None
        action_space: gym.spaces.Space
        if config.discrete_actions is not None:
            self.action_table = wrappers.DISCRETE_ACTION_SETS[config.discrete_actions]
            action_space = gym.spaces.Discrete(len(self.action_table))
        elif config.throttle_axis:
            action_space = wrappers.THROTTLE_SPACE
        else:
            action_space = gym.spaces.Box(_ACTION_LOW, _ACTION_HIGH, dtype=np.float32)
        super().__init__(n_envs, observation_space, action_space)
        self._shards: list[_Shard] = []
        self._action_dtype = np.dtype(np.float32)
        self.frame_hook: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None
        """Called with (env ids, raw frames, raw rewards) after every raw frame (recording uses it)."""
        # float64 like the gymnasium path's actions; cast to the pool's dtype once per step.
        self._actions = np.zeros((n_envs, 3), dtype=np.float64)
        self._score = wrappers.ScoreCounters(n_envs)
        self._rules: list[wrappers.FrameRule] = []
        if training:
            self._rules = [
                wrapper.rule_class(n_envs, **arguments)
                for wrapper, arguments in wrappers.training_wrappers(config.shaping)
            ]

    # -- EnvPool -------------------------------------------------------------------------
    def _make_pool(self, seeds: list[int], threads: int) -> Any:
        """One EnvPool of ``len(seeds)`` envs; env ``i`` plays ``seeds[i]``'s tracks whatever its pool."""
        import envpool

        return envpool.make(
            ENV_ID,
            env_type="gymnasium",
            num_envs=len(seeds),
            batch_size=len(seeds),
            num_threads=threads,
            seed=seeds[0],
            env_seed=seeds,
            max_episode_steps=wrappers.MAX_EPISODE_FRAMES,
        )

    def _open(self) -> None:
        parts = [np.arange(self.num_envs)]
        if self.num_threads > 0:
            parts = np.array_split(parts[0], min(self.num_threads, self.num_envs))
        threads = 1 if self.num_threads > 0 else 0
        self._shards = [_Shard(self._make_pool([self.seeds[i] for i in ids], threads), ids) for ids in parts]
        # From the spec, not the pool's gymnasium action_space: EnvPool builds that Box from
        # float64 bounds, and gymnasium warns twice about casting them to float32.
        self._action_dtype = np.dtype(self._shards[0].pool.spec.action_array_spec["action"].dtype)

    def _receive(self, shard: _Shard) -> tuple[np.ndarray, ...]:
        """The shard's frame in flight: (env ids, frames, rewards, terminated, truncated), in result order."""
        order, frames, rewards, terminated, truncated = shard.recv()
        rewards = np.asarray(rewards, dtype=np.float64)
        self._score.add(order, rewards)
        if self.frame_hook is not None:
            self.frame_hook(order, frames, rewards)
        return order, frames, rewards, np.asarray(terminated, bool), np.asarray(truncated, bool)

    # -- VecEnv API ----------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        if not self._shards:
            self._open()
        self._reset_envs(np.arange(self.num_envs))
        return self._stacker.stack.copy()

    def _reset_envs(self, ids: np.ndarray) -> None:
        """Reset envs ``ids``, take the zoom-skipping no-ops, and refill their frame stacks."""
        for shard in self._shards:
            mine = ids[np.isin(ids, shard.ids)]
            if mine.size == 0:
                continue
            order, frames = shard.reset(mine)
            if self.frame_hook is not None:
                self.frame_hook(order, frames, np.zeros(len(order)))
            self._score.reset(order)
            for rule in self._rules:
                rule.reset(order)
            for _ in range(self.config.skip_zoom_frames):
                shard.send(np.zeros((self.num_envs, 3), self._action_dtype), order)
                order, frames, *_ = self._receive(shard)
            self._stacker.reset(order, self._preprocess(frames))

    def _preprocess(self, frames: np.ndarray) -> np.ndarray:
        return wrappers.preprocess_frames(
            frames, self.config.grayscale, self.config.crop_bottom_bar, self.config.obs_size
        )

    def step_async(self, actions: np.ndarray) -> None:
        if self.action_table is not None:
            self._actions = self.action_table[np.asarray(actions, dtype=np.int64).reshape(-1)]
        elif self.config.throttle_axis:
            throttle = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.num_envs, 2), -1.0, 1.0)
            self._actions = wrappers.throttle_to_pedals(throttle)
        else:
            self._actions = np.clip(
                np.asarray(actions, dtype=np.float64).reshape(self.num_envs, 3), _ACTION_LOW, _ACTION_HIGH
            )

    def step_wait(self) -> VecEnvStepReturn:
        if not self._shards:
            raise CrBenchError("EnvPoolVecEnv.step before reset (or after close or seed): call reset() first")
        try:
            return self._step_all()
        except BaseException:
            # Frames may still be in flight in other pools: they would come back as the next
            # step's. Close the pools; the caller must reset (a VecEnv after an error is done).
            self.close()
            raise

    def _step_all(self) -> VecEnvStepReturn:
        n = self.num_envs
        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        early = np.full(n, "", dtype=object)
        lap_finished = np.zeros(n, dtype=bool)
        last_frames = np.zeros((n, 96, 96, 3), dtype=np.uint8)
        actions = self._actions.astype(self._action_dtype)  # once per agent step, not per frame
        # Every shard takes its first frame; then, in turn, one shard's frame is handled here
        # while the others step, and its envs still playing take their next frame.
        turns: collections.deque[tuple[_Shard, int]] = collections.deque()
        for shard in self._shards:
            shard.send(actions, shard.ids)
            turns.append((shard, 1))
        while turns:
            shard, repeat = turns.popleft()
            order, frames, frame_rewards, term, trunc = self._receive(shard)
            # gymnasium's CarRacing ends an episode for two reasons only: a lap or the playfield.
            lap_finished[order] = term & ~wrappers.left_playfield(frame_rewards, term)
            batch = wrappers.FrameBatch(
                order, frames, self._actions[order], frame_rewards, term, trunc, np.full(len(order), "", dtype=object)
            )
            for rule in self._rules:
                rule.apply(batch)
            last_frames[order] = frames
            rewards[order] += batch.rewards
            terminated[order] |= batch.terminated
            truncated[order] |= trunc & ~batch.terminated
            early[order] = batch.early_termination
            active = order[~(batch.terminated | trunc)]
            if active.size and repeat < self.config.action_repeat:
                shard.send(actions, active)
                turns.append((shard, repeat + 1))
        self._stacker.push(self._preprocess(last_frames))
        done = terminated | truncated
        infos: list[dict[str, Any]] = [
            {**self._score.info(i), "TimeLimit.truncated": bool(truncated[i])} for i in range(n)
        ]
        done_ids = np.flatnonzero(done)
        for i in done_ids:
            infos[i]["terminal_observation"] = self._stacker.stack[i].copy()
            if early[i]:
                infos[i]["early_termination"] = early[i]
            elif terminated[i]:
                infos[i]["lap_finished"] = bool(lap_finished[i])
        if done_ids.size:
            self._reset_envs(done_ids)
        return self._stacker.stack.copy(), rewards.astype(np.float32), done, infos

    # -- The rest of the VecEnv interface --------------------------------------------------
    def close(self) -> None:
        for shard in self._shards:
            shard.pool.close()
        self._shards = []

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Re-seed: env ``i`` gets ``seed + i`` from the next reset (EnvPool fixes seeds at creation)."""
        if seed is not None:
            self.seeds = [seed + i for i in range(self.num_envs)]
            self.close()
        return [None] * self.num_envs

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None] * len(list(self._get_indices(indices)))
        raise AttributeError(f"EnvPoolVecEnv has no per-env attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(f"EnvPoolVecEnv cannot set per-env attribute {attr_name!r}")

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        raise AttributeError(f"EnvPoolVecEnv has no per-env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))


class _Shard:
    """One EnvPool holding envs ``ids`` of the VecEnv (global ids in, global ids out).

    A frame is sent (:meth:`send`) and received later (:meth:`recv`), so the VecEnv's thread
    can work on another shard's frame meanwhile. Naming the envs costs EnvPool about a fifth
    of its speed, so a frame for all of the shard's envs names none.
    """

    def __init__(self, pool: Any, ids: np.ndarray) -> None:
        self.pool, self.ids = pool, np.asarray(ids, dtype=np.int64)
        self._local = np.full(int(self.ids.max()) + 1, -1, dtype=np.int32)
        self._local[self.ids] = np.arange(len(self.ids), dtype=np.int32)

    def _locals(self, ids: np.ndarray) -> np.ndarray:
        """The pool's own ids of global envs ``ids``."""
        return self._local[ids]

    def send(self, actions: np.ndarray, ids: np.ndarray) -> None:
        """Step envs ``ids`` one raw frame with their rows of ``actions`` (all envs' actions)."""
        if len(ids) == len(self.ids):
            self.pool.send(actions[self.ids])
        else:
            self.pool.send(actions[ids], self._locals(ids))

    def recv(self) -> tuple[np.ndarray, Any, Any, Any, Any]:
        frames, rewards, terminated, truncated, info = self.pool.recv()
        return self.ids[np.asarray(info["env_id"], dtype=np.int64)], frames, rewards, terminated, truncated

    def reset(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reset envs ``ids``; their global ids in result order, and their first frames."""
        frames, info = self.pool.reset(self._locals(ids))
        return self.ids[np.asarray(info["env_id"], dtype=np.int64)], frames
