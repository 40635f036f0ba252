"""Environment factory: one place composes the wrappers from an :class:`EnvConfig`."""

from __future__ import annotations

import os
import signal
import typing
from collections.abc import Callable

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from cr_bench.envs import wrappers
from cr_bench.envs.envpool_backend import EnvPoolVecEnv
from cr_bench.errors import CrBenchError
from cr_bench.spec.run import EnvConfig, VecEnvKind, check_env_config, resolve_env_backend


def make_env(
    config: EnvConfig,
    training: bool,
    render_mode: str | None = None,
    raw_wrapper: Callable[[gym.Env], gym.Env] | None = None,
) -> gym.Env:
    """Build one gymnasium CarRacing-v3 env with the cr-bench pipeline (``config.backend`` is
    not consulted: :func:`make_vec_env` picks the backend).

    :param config: the pipeline.
    :param training: add the training-only shaping and early-termination wrappers.
        Evaluation passes False: its reward is the raw return.
    :param render_mode: passed to ``gym.make`` (``"rgb_array"`` for recording).
    :param raw_wrapper: applied to the raw env before anything else (recording uses it
        to render every frame); it must not read or change observations, which are not drawn
        on frames the agent does not see.
    :return: an env whose ``info`` carries ``true_return`` and ``episode_frames``.
    """
    check_env_config(config)
    env: gym.Env = gym.make(config.id, domain_randomize=config.domain_randomize, render_mode=render_mode)
    if raw_wrapper is not None:
        env = raw_wrapper(env)
    env = wrappers.EpisodeScore(env)
    if config.skip_zoom_frames:
        env = wrappers.SkipZoom(env, config.skip_zoom_frames)
    inner_frames_read = False
    if training:
        for wrapper, arguments in wrappers.training_wrappers(config.shaping):
            env = wrapper(env, **arguments)
            inner_frames_read |= wrapper.rule_class.reads_frames
    if config.action_repeat > 1:
        env = wrappers.ActionRepeat(env, config.action_repeat, draw_every_frame=inner_frames_read)
    env = wrappers.PreprocessFrame(env, config.grayscale, config.crop_bottom_bar, config.obs_size)
    env = wrappers.FrameStack(env, config.frame_stack)
    if config.discrete_actions is not None:
        env = wrappers.DiscreteActions(env, config.discrete_actions)
    if config.throttle_axis:
        env = wrappers.ThrottleAxis(env)
    return env


def _env_fn(config: EnvConfig, training: bool, worker: bool) -> Callable[[], gym.Env]:
    def build() -> gym.Env:
        if worker:
            # Only the main process handles Ctrl-C, so it can save before workers stop.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Monitor on top records the shaped return the agent sees (SB3's ep_rew_mean).
        return Monitor(make_env(config, training))

    return build


def make_vec_env(config: EnvConfig, n_envs: int, seed: int, training: bool = True, vec_env: str = "auto") -> VecEnv:
    """Build ``n_envs`` pipelines in a VecEnv seeded with ``seed, seed + 1, ...``.

    On the envpool backend the whole batch runs in one :class:`EnvPoolVecEnv` under SB3's
    ``VecMonitor``; on gymnasium, ``vec_env`` picks ``dummy``, ``subproc`` or ``auto``
    (subproc when ``n_envs > 1``) over envs under SB3's ``Monitor``. Either way
    ``info["episode"]`` is SB3's: shaped return, agent steps, seconds since the monitor started.
    """
    if n_envs < 1:
        raise CrBenchError(f"n_envs must be >= 1, got {n_envs}")
    if vec_env not in typing.get_args(VecEnvKind):
        raise CrBenchError(f"vec_env must be one of {', '.join(typing.get_args(VecEnvKind))}, got {vec_env!r}")
    check_env_config(config)
    if resolve_env_backend(config) == "envpool":
        # A pool per core, each on its own thread (0: one pool in lockstep on EnvPool's threads).
        threads = 0 if vec_env == "pool" else min(n_envs, os.cpu_count() or 1)
        return VecMonitor(EnvPoolVecEnv(config, [seed + i for i in range(n_envs)], training, num_threads=threads))
    if vec_env == "pool":
        raise CrBenchError("vec_env pool is EnvPool's layout; with the gymnasium backend use auto, dummy or subproc")
    subproc = vec_env == "subproc" or (vec_env == "auto" and n_envs > 1)
    fns = [_env_fn(config, training, worker=subproc) for _ in range(n_envs)]
    venv = SubprocVecEnv(fns, start_method="forkserver") if subproc else DummyVecEnv(fns)
    venv.seed(seed)
    return venv
