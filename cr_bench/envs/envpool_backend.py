"""EnvPool backend: an SB3 ``VecEnv`` running CarRacing-v3 in C++ with the whole cr-bench
pipeline applied to the batch at once.

EnvPool steps the same physics and reward as gymnasium's CarRacing-v3, several times
faster; see the README for the known differences (track generation, anti-aliasing,
colours). The pipeline mirrors :func:`cr_bench.envs.make.make_env` with the same state
classes and functions (:mod:`cr_bench.envs.wrappers`) over the whole batch: the score
(``ScoreCounters``), the training rules in ``training_wrappers``' order, preprocessing
and the frame stack (``FrameStacker``) are numpy or OpenCV calls over the batch, never a
per-env loop over pixels. Episode statistics (``info["episode"]``) come from SB3's
``VecMonitor``, which :func:`cr_bench.envs.make.make_vec_env` puts on top.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from cr_bench.envs import wrappers
from cr_bench.errors import CrBenchError
from cr_bench.spec.run import ENV_ID, EnvConfig

_ACTION_LOW, _ACTION_HIGH = wrappers.CAR_RACING_ACTIONS.low, wrappers.CAR_RACING_ACTIONS.high
_GroupStep = tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]
"""One group's rows of a step's return: observations, rewards, dones, infos."""


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
        ``k`` pools of one thread each (:class:`_Shard`), and each pool's agent step (its
        frames of the action repeat, the training rules, preprocessing and resets) runs on
        a Python thread of its own, so no pool waits for another's frame (EnvPool releases
        the GIL while it steps); 0: one pool with EnvPool's own threads (one per env, capped).

    Each pool's envs are a *group* (``groups``) that can also take its agent steps apart
    from the others: :meth:`send_group` starts one and :meth:`wait_group` ends it, so a
    caller can run the policy for one group while the other pools step
    (:class:`cr_bench.agents.levers.OverlappedRollouts`). ``step_async`` sends every group
    and ``step_wait`` waits for those not yet waited for; it returns the step of all envs.
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
        parts = [np.arange(n_envs)]
        if num_threads > 0:
            parts = np.array_split(parts[0], min(num_threads, n_envs))
        self.groups = [slice(int(ids[0]), int(ids[-1]) + 1) for ids in parts]
        """The envs (rows) of each pool: a group steps apart from the others (:meth:`send_group`)."""
        self._shards: list[_Shard] = []
        self._threads: ThreadPoolExecutor | None = None
        """A thread per pool when there are several (:meth:`_play_step`)."""
        self.frame_hook: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None
        """Called with (env ids, raw frames, raw rewards) after every raw frame (recording uses it)."""
        # float64 like the gymnasium path's actions; cast to the pool's dtype once per step.
        self._actions = np.zeros((n_envs, 3), dtype=np.float64)
        self._pool_actions = np.zeros((n_envs, 3), dtype=np.float32)
        # Each group's agent step in flight, accumulated frame by frame.
        self._rewards = np.zeros(n_envs)
        self._terminated = np.zeros(n_envs, dtype=bool)
        self._truncated = np.zeros(n_envs, dtype=bool)
        self._early = np.full(n_envs, "", dtype=object)
        self._lap_finished = np.zeros(n_envs, dtype=bool)
        self._last_frames = np.zeros((n_envs, 96, 96, 3), dtype=np.uint8)
        # The step that step_wait returns: each group's part, written when it is waited for.
        self._row_obs = self._stacker.stack.copy()
        self._row_rewards = np.zeros(n_envs, dtype=np.float32)
        self._row_dones = np.zeros(n_envs, dtype=bool)
        self._row_infos: list[dict[str, Any]] = [{} for _ in range(n_envs)]
        self._row_groups: set[int] = set()
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
        threads = 1 if self.num_threads > 0 else 0
        self._shards = [
            _Shard(self._make_pool(self.seeds[rows], threads), np.arange(rows.start, rows.stop)) for rows in self.groups
        ]
        # From the spec, not the pool's gymnasium action_space: EnvPool builds that Box from
        # float64 bounds, and gymnasium warns twice about casting them to float32.
        dtype = self._shards[0].pool.spec.action_array_spec["action"].dtype
        self._pool_actions = self._pool_actions.astype(dtype)
        if len(self._shards) > 1:
            self._threads = ThreadPoolExecutor(len(self._shards), thread_name_prefix="envpool-group")

    def _receive(self, shard: _Shard) -> tuple[np.ndarray, ...]:
        """The shard's frame in flight: (env ids, frames, rewards, terminated, truncated), in result order."""
        order, frames, rewards, terminated, truncated = shard.recv()
        rewards, terminated = np.asarray(rewards, dtype=np.float64), np.asarray(terminated, bool)
        self._score.add(order, rewards, terminated)
        if self.frame_hook is not None:
            self.frame_hook(order, frames, rewards)
        return order, frames, rewards, terminated, np.asarray(truncated, bool)

    # -- VecEnv API ----------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        if not self._shards:
            self._open()
        self._finish_steps()  # steps under way (a rollout stopped by a callback): every env restarts
        self._reset_envs(np.arange(self.num_envs))
        return self._stacker.stack.copy()

    def _reset_envs(self, ids: np.ndarray) -> None:
        """Reset envs ``ids``, take the zoom-skipping no-ops, and refill their frame stacks
        (pool by pool: no step may be under way in their pools)."""
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
                shard.send(np.zeros((self.num_envs, 3), self._pool_actions.dtype), order)
                order, frames, *_ = self._receive(shard)
            self._stacker.reset(order, self._preprocess(frames))

    def _preprocess(self, frames: np.ndarray) -> np.ndarray:
        return wrappers.preprocess_frames(
            frames, self.config.grayscale, self.config.crop_bottom_bar, self.config.obs_size
        )

    def step_async(self, actions: np.ndarray) -> None:
        for group, rows in enumerate(self.groups):
            self.send_group(group, actions[rows])

    def step_wait(self) -> VecEnvStepReturn:
        """The step of every group: those not yet waited for (:meth:`wait_group`) are now."""
        if not self._shards:
            raise CrBenchError("EnvPoolVecEnv.step before reset (or after close or seed): call reset() first")
        for group in range(len(self.groups)):
            if group not in self._row_groups:
                self._wait_group(group)
        self._row_groups.clear()
        return self._row_obs.copy(), self._row_rewards.copy(), self._row_dones.copy(), list(self._row_infos)

    # -- Groups: a pool steps while this thread runs the policy for another's envs ----------
    def send_group(self, group: int, actions: np.ndarray) -> None:
        """Start an agent step of the envs in ``groups[group]`` with their ``actions`` (the
        group's rows of what :meth:`step_async` takes) and return at once: the group's pool
        steps while this thread handles other groups' frames or runs the policy.

        The step's observations come from :meth:`wait_group`; its rewards, dones and infos
        with every other group's from the next :meth:`step_wait`.
        """
        if not self._shards:
            raise CrBenchError("EnvPoolVecEnv.step before reset (or after close or seed): call reset() first")
        shard = self._shards[group]
        if shard.stepping:
            raise CrBenchError(f"EnvPoolVecEnv: group {group} is still stepping; wait_group({group}) first")
        rows = self.groups[group]
        self._actions[rows] = self._env_actions(actions, rows.stop - rows.start)
        self._pool_actions[rows] = self._actions[rows]  # once per agent step, not per frame
        shard.stepping = True
        if self._threads is not None:
            shard.step = self._threads.submit(self._play_step, group)

    def wait_group(self, group: int) -> np.ndarray:
        """Wait for ``group``'s agent step to end (on its pool's thread; here, with one pool),
        then the group's new observations (an ended env's is its reset's)."""
        self._wait_group(group)
        return self._row_obs[self.groups[group]].copy()

    def _wait_group(self, group: int) -> None:
        shard = self._shards[group] if self._shards else None
        if shard is None or not shard.stepping:
            raise CrBenchError(f"EnvPoolVecEnv: group {group} is not stepping; send_group or step_async first")
        if group in self._row_groups:
            raise CrBenchError(f"EnvPoolVecEnv: group {group}'s previous step is not returned yet; call step_wait")
        try:
            step = self._play_step(group) if shard.step is None else shard.step.result()
        except BaseException:
            # Frames may still be in flight in other pools: they would come back as the next
            # step's. Close the pools; the caller must reset (a VecEnv after an error is done).
            self.close()
            raise
        shard.stepping, shard.step = False, None
        rows = self.groups[group]
        self._row_obs[rows], self._row_rewards[rows], self._row_dones[rows], self._row_infos[rows] = step
        self._row_groups.add(group)

    def _finish_steps(self) -> None:
        """Let every group's step under way end (on its thread), dropping its results, errors
        and the parts of a step not yet returned."""
        for shard in self._shards:
            if shard.step is not None:
                with contextlib.suppress(BaseException):
                    shard.step.result()
            shard.stepping, shard.step = False, None
        self._row_groups.clear()

    def _env_actions(self, actions: np.ndarray, n: int) -> np.ndarray:
        """The agent's actions for ``n`` envs as CarRacing's ``(n, 3)`` float64 actions."""
        if self.action_table is not None:
            return self.action_table[np.asarray(actions, dtype=np.int64).reshape(-1)]
        if self.config.throttle_axis:
            return wrappers.throttle_to_pedals(np.clip(np.asarray(actions, dtype=np.float64).reshape(n, 2), -1, 1))
        return np.clip(np.asarray(actions, dtype=np.float64).reshape(n, 3), _ACTION_LOW, _ACTION_HIGH)

    def _play_step(self, group: int) -> _GroupStep:
        """``group``'s agent step: its frames of the action repeat (rules applied to each),
        then its frames stacked and its ended envs reset; its rows of the step's return.
        Runs on the group's thread when there are several; it touches only the group's rows."""
        shard, rows = self._shards[group], self.groups[group]
        self._rewards[rows] = 0.0
        self._terminated[rows] = self._truncated[rows] = self._lap_finished[rows] = False
        self._early[rows] = ""
        shard.send(self._pool_actions, shard.ids)
        for repeat in range(1, self.config.action_repeat + 1):
            order, frames, frame_rewards, term, trunc = self._receive(shard)
            # gymnasium's CarRacing ends an episode for two reasons only: a lap or the playfield.
            self._lap_finished[order] = term & ~wrappers.left_playfield(frame_rewards, term)
            batch = wrappers.FrameBatch(
                order, frames, self._actions[order], frame_rewards, term, trunc, np.full(len(order), "", dtype=object)
            )
            for rule in self._rules:
                rule.apply(batch)
            self._last_frames[order] = frames
            self._rewards[order] += batch.rewards
            self._terminated[order] |= batch.terminated
            self._truncated[order] |= trunc & ~batch.terminated
            self._early[order] = batch.early_termination
            active = order[~(batch.terminated | trunc)]
            if not active.size or repeat == self.config.action_repeat:
                break
            shard.send(self._pool_actions, active)
        self._stacker.push(self._preprocess(self._last_frames[rows]), rows)
        dones = self._terminated[rows] | self._truncated[rows]
        infos: list[dict[str, Any]] = []
        for i in range(rows.start, rows.stop):
            infos.append({**self._score.info(i), "TimeLimit.truncated": bool(self._truncated[i])})
            if dones[i - rows.start]:
                infos[-1]["terminal_observation"] = self._stacker.stack[i].copy()
                if self._early[i]:
                    infos[-1]["early_termination"] = self._early[i]
                elif self._terminated[i]:
                    infos[-1]["lap_finished"] = bool(self._lap_finished[i])
        done_ids = np.flatnonzero(dones) + rows.start
        if done_ids.size:
            self._reset_envs(done_ids)
        return self._stacker.stack[rows].copy(), self._rewards[rows].astype(np.float32), dones, infos

    # -- The rest of the VecEnv interface --------------------------------------------------
    def close(self) -> None:
        self._finish_steps()
        for shard in self._shards:
            shard.pool.close()
        self._shards = []
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None

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

    A frame is sent (:meth:`send`) and received (:meth:`recv`) by one thread at a time: the
    VecEnv's, or the pool's own (``EnvPoolVecEnv._play_step``). Naming the envs costs EnvPool
    about a fifth of its speed, so a frame for all of the shard's envs names none.
    """

    def __init__(self, pool: Any, ids: np.ndarray) -> None:
        self.pool, self.ids = pool, np.asarray(ids, dtype=np.int64)
        self.stepping = False
        """An agent step is under way: sent, and not yet ended by ``EnvPoolVecEnv.wait_group``."""
        self.step: Future[_GroupStep] | None = None
        """The agent step under way on the pool's thread (None: none, or no threads)."""
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
