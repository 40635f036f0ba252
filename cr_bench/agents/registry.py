"""The agent registry and run-config resolution: each name maps to an SB3 algorithm, a
policy and its default config, and :func:`resolve_config` turns defaults + file + flags
into one validated :class:`~cr_bench.spec.run.RunConfig`.

The defaults are partial RunConfig mappings; a YAML file and CLI flags override them.
Building and loading models from a resolved config is :mod:`cr_bench.agents.models`' job.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from cr_bench.agents.algorithms import FrameDQN, FramePPO, FrameQRDQN, FrameRecurrentPPO, RolloutThreads
from cr_bench.envs import wrappers
from cr_bench.errors import CrBenchError
from cr_bench.spec.loader import from_dict, merge, to_dict
from cr_bench.spec.run import (
    RunConfig,
    check_env_config,
    check_eval_config,
    check_frames,
    check_held_out,
    resolve_backend,
    resolve_env_backend,
)
from custom_policies import BetaCnnPolicy, NatureCNN, SixConvCNN, SmallCNN


@dataclass(frozen=True)
class AgentSpec:
    """One registry entry."""

    name: str
    algorithm: type[BaseAlgorithm]
    policy: type[BasePolicy] | str
    description: str
    defaults: dict[str, Any]
    """Partial RunConfig mapping: what this agent changes from the dataclass defaults."""
    discrete: bool = False
    """Whether the agent acts on a discrete action set."""


# `ppo-v1` (and `ppo-beta`, its former name): seed 000's recipe, ppo's default until
# results/recipe decides. Seed 000: Beta-PPO, action repeat 8, 4 stacked 96x96 grayscale frames, six-conv CNN,
# ~2000-transition rollouts (here 256 x 8 envs), batch 128, clip 0.1, lr 1e-3, green
# penalty, "die" bonus and the 100-frame no-progress stop. Seed 000's 8 epochs are cut to
# 4 so the learner keeps up with EnvPool (`cr-bench bench`: about 1.5x the frames/s); 2
# learn less per frame (results/learner/curve.csv against results/early/curve.csv).
# Seed 000 trains its shared CNN with a Huber value loss, which bounds the critic's pull on
# the features; SB3's squared loss on raw returns (hundreds) swamps the policy gradient, so
# training rewards are normalized instead (a 1M-frame run without it, lr lin_1e-3, averaged a
# training true return of ~30). The policy starts with half gas and little brake: the Box's
# centre presses both by half, which parks the car for ~400k frames (benchmarks/early.yaml).
_PPO_V1 = {
    "n_envs": 8,
    "normalize_reward": True,
    "rollout_threads": 1,  # faster end to end: cr-bench bench measures the former 2 as a lever
    "env": {
        "action_repeat": 8,
        "frame_stack": 4,
        "obs_size": 96,
        "shaping": {"grass_penalty": 0.05, "cancel_off_playfield_penalty": True, "no_progress_window": 100},
    },
    "policy": {
        "features_extractor": "six_conv",
        "features_dim": 256,
        "net_arch": {"pi": [100], "vf": [100]},
        "initial_action_mean": [0.0, 0.5, 0.05],
    },
    "algo": {
        "learning_rate": 1e-3,
        "n_steps": 256,
        "batch_size": 128,
        "n_epochs": 4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.1,
        "ent_coef": 0.0,
        "max_grad_norm": 0.5,
    },
}

# `ppo`: ppo-v1's recipe, every value, chosen by results/recipe (cr-bench compare --suite
# benchmarks/recipe.yaml): against the 50-trial study's best config (results/tune/ppo-old-default/best.yaml:
# action repeat 4, 2 frames, lr 1e-4, clip 0.3, 7 epochs), 3 seeds each to 2M frames, ppo-v1's
# mean on the 20 validation tracks is 847.9 [827.0, 866.2] at 2M against 779.5 [641.8, 857.8]:
# the higher 3-seed mean, though three seeds do not separate them (the CIs overlap, and both
# mean curves first reach 800 at 1.2M, the rule's tie-break; benchmarks/recipe.yaml). The
# study's config leads early (742.8 against 524.2 at 400k) but swings by up to 195 points between
# checkpoints 200k apart and does not hold its peaks (seed 1: 875 at 1.2M, 605 at 1.8M); annealing
# its lr and clip (one seed) did not stop that.
_PPO = _PPO_V1

# rl-zoo3's CarRacing-v3 PPO recipe (hyperparams/ppo.yml): frame skip 2, 64x64 grayscale,
# 2 stacked frames, 8 envs, gSDE, linear lr 1e-4, rewards normalized (VecNormalize).
_PPO_GAUSSIAN = {
    "n_envs": 8,
    "normalize_reward": True,
    "env": {"action_repeat": 2, "frame_stack": 2, "obs_size": 64},
    "policy": {
        "features_extractor": "nature",
        "features_dim": 512,
        "net_arch": {"pi": [256], "vf": [256]},
        "activation_fn": "gelu",
        "ortho_init": False,
        "log_std_init": -2.0,
    },
    "algo": {
        "learning_rate": "lin_1e-4",
        "n_steps": 512,
        "batch_size": 128,
        "n_epochs": 10,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "use_sde": True,
        "sde_sample_freq": 4,
    },
}

# DQN as in the public DQN results above 800 on CarRacing (benchmarks/notes/agent-recipes.md:
# wiitt/DQN-Car-Racing 898 +- 36, AMD-RIPS/RL-2018 855 +- 107, SB3 DQN 848 +- 146): the env's own
# 5 discrete actions, a Nature CNN, 4 stacked 84x84 frames with the indicator bar (it shows the
# speed), lr 1e-4, gamma 0.99, batch 32, a 100k buffer and a 10k-transition target sync (SB3's
# and rl-zoo3's Atari values), epsilon 1 -> 0.05 over 15%, and no shaping (none of them shapes).
# One gradient step per 4 transitions (train_freq 2 x 2 envs), as Atari's. Seed 002's recipe
# (12 actions, repeat 2, 3 frames, lr 1e-3, gamma 0.95, a 50k buffer, one step per 8
# transitions, gas bonus and off-track stop) scored -44.6 after 400k frames (results/models/dqn).
_DQN = {
    "n_envs": 2,
    "env": {"action_repeat": 2, "frame_stack": 4, "obs_size": 84, "discrete_actions": "gymnasium"},
    "policy": {"features_extractor": "nature", "features_dim": 512, "net_arch": []},
    "algo": {
        "learning_rate": 1e-4,
        "batch_size": 32,
        "gamma": 0.99,
        "buffer_size": 100_000,
        "learning_starts": 20_000,
        "target_update_interval": 10_000,
        "train_freq": 2,
        "gradient_steps": 1,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.05,
        "exploration_fraction": 0.15,
    },
}

# rl-zoo3's recurrent PPO for CarRacing (hyperparams/ppo_lstm.yml, its strongest agent, 862 +- 97
# at 4M frames in its benchmark.md): the `ppo-gaussian` recipe with a CNN-LSTM policy (128 units,
# no critic LSTM), 2 stacked frames and no frame skip (its FrameSkip wrapper is commented out).
_RECURRENT_PPO = merge(
    _PPO_GAUSSIAN,
    {
        "env": {"action_repeat": 1, "frame_stack": 2},
        "policy": {"lstm_hidden_size": 128, "enable_critic_lstm": False},
    },
    RunConfig,
)

# QR-DQN on DQN's pipeline with the QR-DQN paper's settings as sb3-contrib keeps them (lr 5e-5,
# Adam eps 0.01/32, no gradient clipping, 200 quantiles) and rl-zoo3's Atari final epsilon 0.01.
_QRDQN = merge(_DQN, {"algo": {"learning_rate": 5e-5, "exploration_final_eps": 0.01}}, RunConfig)

AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in [
        AgentSpec("ppo", FramePPO, BetaCnnPolicy, "PPO with our Beta CNN policy (seed 000), our best defaults", _PPO),
        AgentSpec(
            "ppo-v1",
            FramePPO,
            BetaCnnPolicy,
            "ppo with seed 000's recipe (action repeat 8, lr 1e-3, clip 0.1), kept when ppo's default moves on",
            _PPO_V1,
        ),
        AgentSpec(
            "ppo-gaussian", FramePPO, "CnnPolicy", "PPO with SB3's Gaussian CNN policy (rl-zoo3 recipe)", _PPO_GAUSSIAN
        ),
        AgentSpec(
            "dqn",
            FrameDQN,
            "CnnPolicy",
            "DQN on CarRacing's 5 discrete actions (Nature DQN settings)",
            _DQN,
            discrete=True,
        ),
        AgentSpec(
            "recurrent-ppo",
            FrameRecurrentPPO,
            "CnnLstmPolicy",
            "sb3-contrib RecurrentPPO with a CNN-LSTM policy (rl-zoo3 recipe)",
            _RECURRENT_PPO,
        ),
        AgentSpec(
            "qrdqn", FrameQRDQN, "CnnPolicy", "sb3-contrib QR-DQN on a discrete action set", _QRDQN, discrete=True
        ),
    ]
}

ALIASES = {"ppo-beta": "ppo-v1"}
"""Former agent names, still accepted: commands and suites written before a rename mean what
they meant then (``ppo-beta`` named the Beta PPO when it trained ppo-v1's recipe)."""

FEATURE_EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    "nature": NatureCNN,
    "six_conv": SixConvCNN,
    "small": SmallCNN,
}
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}
SCHEDULES = {"learning_rate", "clip_range", "clip_range_vf"}
"""Algorithm arguments that accept ``lin_<start>``."""
# Arguments cr-bench sets itself; a config may not pass them through ``algo``.
_OWNED_ARGS = {"policy", "env", "policy_kwargs", "seed", "tensorboard_log", "verbose", "device", "_init_setup_model"}


def saved_run_config(data: dict[str, Any]) -> dict[str, Any]:
    """A run's saved config.yaml as today's names read it.

    Before the rename, ``ppo`` was rl-zoo3's Gaussian recipe (now ``ppo-gaussian``). Every
    config written since holds ``policy.initial_action_mean``, so a ``ppo`` config without
    that key is a Gaussian run of that time.
    """
    if data.get("agent") == "ppo" and "initial_action_mean" not in (data.get("policy") or {}):
        return {**data, "agent": "ppo-gaussian"}
    return data


def get_agent(name: str) -> AgentSpec:
    """The registry entry for ``name`` (or a former name), or a one-line error listing the known agents."""
    spec = AGENTS.get(ALIASES.get(name, name))
    if spec is None:
        raise CrBenchError(f"unknown agent {name!r}; known agents: {', '.join(AGENTS)}")
    return spec


def same_model(agent: str, other: str) -> bool:
    """Whether two agents (or former names) build the same algorithm and policy classes, so
    one's saved model is the other's (``ppo`` and ``ppo-v1`` differ only in defaults)."""
    spec, other_spec = get_agent(agent), get_agent(other)
    return spec.algorithm is other_spec.algorithm and spec.policy is other_spec.policy


def resolve_config(agent: str, *overrides: dict[str, Any]) -> RunConfig:
    """Agent defaults, then each override mapping in turn, as a validated RunConfig."""
    spec = get_agent(agent)
    data = merge(to_dict(RunConfig(agent=spec.name)), spec.defaults, RunConfig)
    for override in overrides:
        data = merge(data, override, RunConfig)
    config = from_dict(RunConfig, data)
    if get_agent(config.agent) is not spec:
        raise CrBenchError(f"config names agent {config.agent!r} but {agent!r} was asked for")
    config.agent = spec.name
    config.env.backend = resolve_env_backend(config.env)  # before the checks: they see the simulator
    validate_run_config(config)
    resolve_backend(config.eval.backend)  # installed
    return config


def validate_run_config(config: RunConfig) -> None:
    """Cross-field checks that the dataclass types cannot express."""
    spec = get_agent(config.agent)
    check_env_config(config.env)
    if spec.discrete and config.env.discrete_actions is None:
        raise CrBenchError(f"agent {spec.name} needs env.discrete_actions (seed002 or gymnasium)")
    if not spec.discrete and config.env.discrete_actions is not None:
        raise CrBenchError(f"agent {spec.name} acts continuously; remove env.discrete_actions")
    check_frames(config.frames)
    for name in ("n_envs", "checkpoint_every_frames", "torch_threads"):
        if getattr(config, name) < 1:
            raise CrBenchError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.rollout_threads < 0:
        raise CrBenchError(f"rollout_threads must be >= 0 (0: torch_threads), got {config.rollout_threads}")
    if (config.rollout_overlap or config.learner_overlap) and spec.algorithm is not FramePPO:
        raise CrBenchError(f"rollout_overlap and learner_overlap are levers of PPO; {spec.name} has no such loop")
    if config.rollout_threads and not issubclass(spec.algorithm, RolloutThreads):
        raise CrBenchError(f"rollout_threads applies to on-policy agents; {spec.name} collects between gradient steps")
    if not config.checkpoint_every_seconds > 0:  # NaN too
        raise CrBenchError(f"checkpoint_every_seconds must be > 0, got {config.checkpoint_every_seconds}")
    if config.seed < 0:
        raise CrBenchError(f"seed must be >= 0, got {config.seed}")
    check_eval_config(config.eval)
    check_held_out(config.training_seeds, config.eval.track_seeds, "eval.track_seed_start")
    if config.policy.features_extractor not in FEATURE_EXTRACTORS:
        raise CrBenchError(
            f"policy.features_extractor: unknown {config.policy.features_extractor!r}; "
            f"known: {', '.join(FEATURE_EXTRACTORS)}"
        )
    if config.policy.activation_fn not in ACTIVATIONS:
        raise CrBenchError(
            f"policy.activation_fn: unknown {config.policy.activation_fn!r}; known: {', '.join(ACTIVATIONS)}"
        )
    if config.policy.initial_action_mean is not None:
        check_initial_action_mean(config)
    accepted = set(inspect.signature(spec.algorithm.__init__).parameters) - _OWNED_ARGS - {"self"}
    unknown = sorted(set(config.algo) - accepted)
    if unknown:
        raise CrBenchError(
            f"algo: unknown key(s) for {spec.algorithm.__name__.removeprefix('Frame')}: {', '.join(unknown)}"
        )


def check_initial_action_mean(config: RunConfig) -> None:
    """``policy.initial_action_mean`` needs the Beta policy and one value strictly inside each action bound."""
    mean = config.policy.initial_action_mean
    if get_agent(config.agent).policy is not BetaCnnPolicy:
        raise CrBenchError("policy.initial_action_mean applies to the Beta policy (agent ppo) only")
    space = wrappers.THROTTLE_SPACE if config.env.throttle_axis else wrappers.CAR_RACING_ACTIONS
    inside = mean is not None and len(mean) == space.shape[0]
    inside = inside and bool(np.all(np.asarray(mean) > space.low) and np.all(np.asarray(mean) < space.high))
    if not inside:
        raise CrBenchError(
            f"policy.initial_action_mean must have {space.shape[0]} values strictly inside "
            f"[{space.low.tolist()}, {space.high.tolist()}], got {mean}"
        )
