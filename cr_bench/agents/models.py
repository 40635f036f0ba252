"""Models from a resolved run config: build, load and inspect the SB3 algorithm of an agent.

Which agents exist and what their configs hold is :mod:`cr_bench.agents.registry`.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pickle import UnpicklingError
from typing import Any

import gymnasium as gym
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import json_to_data
from stable_baselines3.common.utils import LinearSchedule

from cr_bench.agents.algorithms import FrameProgress
from cr_bench.agents.levers import LeverPPO, uses_levers
from cr_bench.agents.registry import ACTIVATIONS, AGENTS, FEATURE_EXTRACTORS, SCHEDULES, AgentSpec, get_agent
from cr_bench.errors import CrBenchError, raised_by_library
from cr_bench.spec.run import PolicyConfig, RunConfig


def parse_schedule(value: Any, name: str) -> Any:
    """``"lin_1e-4"`` -> a linear schedule from 1e-4 to 0 over the frame budget; numbers pass through."""
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise CrBenchError(f"algo.{name}: expected a number or 'lin_<start>', got {value!r}")
        try:
            start = float(value.removeprefix("lin_"))
        except ValueError:
            raise CrBenchError(f"algo.{name}: expected a number or 'lin_<start>', got {value!r}") from None
        return LinearSchedule(start, 0.0, 1.0)
    return value


def policy_kwargs(config: PolicyConfig) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` from the typed policy config."""
    kwargs: dict[str, Any] = {
        "features_extractor_class": FEATURE_EXTRACTORS[config.features_extractor],
        "features_extractor_kwargs": {
            "features_dim": config.features_dim,
            "precision": config.precision,
            "channels_last": config.channels_last,
            "pixel_input": config.pixel_input,
        },
        "activation_fn": ACTIVATIONS[config.activation_fn],
    }
    if config.net_arch is not None:
        kwargs["net_arch"] = config.net_arch
    for name in ("ortho_init", "log_std_init", "initial_action_mean", "lstm_hidden_size", "enable_critic_lstm"):
        if getattr(config, name) is not None:
            kwargs[name] = getattr(config, name)
    return kwargs


def build_model(config: RunConfig, env: gym.Env | Any, tensorboard_log: str | None = None) -> BaseAlgorithm:
    """Instantiate the configured SB3 algorithm on ``env`` (a VecEnv)."""
    spec = get_agent(config.agent)
    algo = {key: parse_schedule(value, key) if key in SCHEDULES else value for key, value in config.algo.items()}
    algorithm: type[BaseAlgorithm] = spec.algorithm
    if uses_levers(config):  # a bench lever: off the main path
        algorithm = LeverPPO
    try:
        model = algorithm(
            spec.policy,
            env,
            policy_kwargs=policy_kwargs(config.policy),
            seed=config.seed,
            tensorboard_log=tensorboard_log,
            verbose=0,
            device=resolve_device(config.device),
            **algo,
        )
    except (ValueError, TypeError, AssertionError) as error:
        if not raised_by_library(error):
            raise  # a bug of ours, not a bad config
        raise CrBenchError(f"cannot build {spec.name}: {error}".splitlines()[0]) from None
    assert isinstance(model, FrameProgress)
    model.configure(config)
    return model


def policy_class(spec: AgentSpec) -> type[BasePolicy]:
    """The policy class ``spec`` trains (an SB3 name such as ``CnnPolicy`` resolved by its algorithm)."""
    if isinstance(spec.policy, str):
        return spec.algorithm.policy_aliases[spec.policy]
    return spec.policy


def saved_policy_class(path: str) -> type:
    """The policy class recorded in a saved SB3 model, read from the zip's ``data`` JSON alone.

    No parameters, buffers or algorithm are built, so this is cheap whatever the file holds.

    :raises CrBenchError: if ``path`` is not a readable SB3 model (empty, truncated, not a zip).
    """
    unreadable = (OSError, EOFError, KeyError, TypeError, ValueError, ImportError, zipfile.BadZipFile, UnpicklingError)
    try:
        with zipfile.ZipFile(path) as archive:
            entry = json.loads(archive.read("data"))["policy_class"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SB3 warns and drops a class it cannot rebuild: refused below
            saved = json_to_data(json.dumps({"policy_class": entry})).get("policy_class")
    except unreadable as error:
        raise CrBenchError(f"{path} is not a saved model ({error})".splitlines()[0]) from None
    if not isinstance(saved, type):
        raise CrBenchError(f"{path} is not a saved model (its policy class cannot be read)")
    return saved


def load_model(
    agent: str, path: str, env: Any | None = None, device: str = "auto", levers: bool = False
) -> BaseAlgorithm:
    """Load a saved model of ``agent`` (optionally attached to ``env``; ``levers``: as the
    bench's :class:`~cr_bench.agents.levers.LeverPPO`, to resume a run that uses them).

    The file's policy class is checked first, so a model of another agent is refused in one
    line before SB3 builds anything (DQN loading a ppo file would allocate a 34 GiB replay
    buffer for its observations). The model loads on ``device`` (:func:`resolve_device`),
    whatever device it was saved from.

    :raises CrBenchError: if ``path`` is not a readable model of ``agent``.
    """
    spec = get_agent(agent)
    saved = saved_policy_class(path)
    if saved is not policy_class(spec):
        owners = [other.name for other in AGENTS.values() if policy_class(other) is saved]
        saved_by = f"agent {owners[0]}" if owners else f"a {saved.__module__}.{saved.__qualname__} policy"
        raise CrBenchError(f"{path} was saved by {saved_by}, not {spec.name}")
    try:
        algorithm: type[BaseAlgorithm] = LeverPPO if levers else spec.algorithm
        return algorithm.load(path, env=env, device=resolve_device(device))
    except (OSError, EOFError, KeyError, ValueError, RuntimeError, zipfile.BadZipFile, UnpicklingError) as error:
        raise CrBenchError(f"cannot load {path}: {error}".splitlines()[0]) from None


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is present, else ``cpu`` (SB3's rule).

    :raises CrBenchError: for ``cuda`` on a machine without one.
    """
    if device == "auto":
        return "cuda" if th.cuda.is_available() else "cpu"
    if device == "cuda" and not th.cuda.is_available():
        raise CrBenchError("device cuda: this machine has no CUDA device (torch sees none); use --device auto or cpu")
    return device


def threads_per_job(cpus: int, jobs: int) -> int:
    """Torch threads for each of ``jobs`` parallel jobs sharing ``cpus`` cores (at least one):
    oversubscribed torch threads spin against each other and slow every job.

    >>> threads_per_job(2, 1), threads_per_job(2, 2), threads_per_job(8, 3), threads_per_job(2, 4)
    (2, 1, 2, 1)
    """
    return max(1, cpus // max(1, jobs))


def set_torch_threads(threads: int) -> None:
    """Torch intra-op threads for the learner (2 on the 2-core machines we target)."""
    th.set_num_threads(max(1, threads))
