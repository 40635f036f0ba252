"""Models from a resolved run config: build, load and inspect the SB3 algorithm of an agent.

Which agents exist and what their configs hold is :mod:`cr_bench.agents.registry`.
"""

from __future__ import annotations

import inspect
import json
import re
import zipfile
from pickle import UnpicklingError
from typing import Any

import gymnasium as gym
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import FloatSchedule, LinearSchedule

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


def read_saved_data(path: str) -> dict[str, Any]:
    """The ``data`` JSON of a saved SB3 model, as plain JSON: nothing in it is unpickled.

    SB3 stores some fields as pickles (``":serialized:"``) beside a readable description of
    them; this reads the JSON only.

    :raises CrBenchError: if ``path`` is not a readable SB3 model (empty, truncated, not a zip).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise CrBenchError(f"{path} is not a saved model ({error})".splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("policy_class"), dict):
        raise CrBenchError(f"{path} is not a saved model (no policy class)")
    return data


def saved_policy_name(data: dict[str, Any]) -> str | None:
    """``module.Class`` of the policy class a saved model names, from its readable description
    (the module and the class's own methods, ``<function Class.method at ...>``); None if unreadable."""
    entry = data["policy_class"]
    methods = re.findall(r"<function (\w+)\.", " ".join(str(value) for value in entry.values()))
    module = entry.get("__module__")
    return f"{module}.{methods[0]}" if isinstance(module, str) and methods else None


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def check_saved_agent(data: dict[str, Any], spec: AgentSpec, path: str) -> None:
    """Refuse a model file whose policy class is not ``spec``'s, naming the agent that saved it.

    :raises CrBenchError: in one line.
    """
    saved = saved_policy_name(data)
    if saved == _qualified(policy_class(spec)):
        return
    owners = [other.name for other in AGENTS.values() if _qualified(policy_class(other)) == saved]
    saved_by = f"agent {' or '.join(owners)}" if owners else f"a {saved} policy" if saved else "an unknown policy"
    raise CrBenchError(f"{path} was saved by {saved_by}, not {spec.name}")


_SAFE_CLASSES = {repr(cls): cls for cls in [*FEATURE_EXTRACTORS.values(), *ACTIVATIONS.values(), th.optim.Adam]}
"""The classes a saved ``policy_kwargs`` may name (by their repr), and nothing else."""


def _saved_policy_kwargs(data: dict[str, Any], path: str) -> dict[str, Any]:
    """The saved ``policy_kwargs`` from their readable description: JSON values as they are,
    classes only from :data:`_SAFE_CLASSES` (so a model loads with exactly the kwargs it was
    trained with, and no pickle runs)."""
    entry = data.get("policy_kwargs") or {}
    if not isinstance(entry, dict):
        raise CrBenchError(f"{path}: unreadable policy_kwargs")
    kwargs = {}
    for key, value in entry.items():
        if key.startswith(":"):
            continue  # the pickle and its type: not read
        if isinstance(value, str) and value.startswith("<class "):
            if value not in _SAFE_CLASSES:
                raise CrBenchError(f"{path}: policy_kwargs.{key} names {value}, which cr-bench does not load")
            value = _SAFE_CLASSES[value]
        kwargs[key] = value
    return kwargs


def _spaces(config: RunConfig) -> tuple[gym.Space, gym.Space]:
    """The observation and action spaces of the run's pipeline (built, not read from a file)."""
    from cr_bench.envs.make import make_env  # the env layer, only to read its spaces

    env = make_env(config.env, training=False)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _check_saved_space(data: dict[str, Any], name: str, space: gym.Space, path: str) -> None:
    """Refuse a file whose recorded space (shape, dtype) is not the config's."""
    entry = data.get(name)
    if not isinstance(entry, dict):
        return
    shape, dtype = entry.get("_shape"), entry.get("dtype")
    expected = list(space.shape or ())
    if (shape is not None and list(shape) != expected) or (dtype is not None and dtype != str(space.dtype)):
        raise CrBenchError(
            f"{path} does not fit its run's config: its {name} is {dtype} {shape}, "
            f"the config's {space.dtype} {expected}"
        )


def safe_custom_objects(config: RunConfig, data: dict[str, Any], path: str) -> dict[str, Any]:
    """What replaces every pickled field of a saved model, rebuilt from the run's config (or,
    for ``policy_kwargs``, from their readable description): SB3 then unpickles nothing.

    Buffers, the last observations and episode statistics start empty (a resumed training
    resets its envs); schedules and buffer classes are rebuilt by the algorithm's own setup.
    """
    spec = get_agent(config.agent)
    observation_space, action_space = _spaces(config)
    _check_saved_space(data, "observation_space", observation_space, path)
    _check_saved_space(data, "action_space", action_space, path)
    algo = {key: parse_schedule(value, key) if key in SCHEDULES else value for key, value in config.algo.items()}
    defaults = inspect.signature(spec.algorithm.__init__).parameters
    rebuilt: dict[str, Any] = {
        "policy_class": policy_class(spec),
        "policy_kwargs": _saved_policy_kwargs(data, path),
        "observation_space": observation_space,
        "action_space": action_space,
    }
    for name in ("learning_rate", "clip_range", "clip_range_vf", "train_freq"):
        if name in defaults:
            rebuilt[name] = algo.get(name, defaults[name].default)
    rebuilt["lr_schedule"] = FloatSchedule(rebuilt["learning_rate"])
    pickled = [key for key, value in data.items() if isinstance(value, dict) and ":serialized:" in value]
    return {key: rebuilt.get(key) for key in pickled}  # anything else pickled: None, set up afresh


def load_model(
    config: RunConfig, path: str, env: Any | None = None, device: str = "auto", levers: bool = False
) -> BaseAlgorithm:
    """Load a saved model of the run ``config`` describes (optionally attached to ``env``;
    ``levers``: as the bench's :class:`~cr_bench.agents.levers.LeverPPO`, to resume a run that uses them).

    Nothing in the file is unpickled: its pickled fields are rebuilt from ``config``
    (:func:`safe_custom_objects`) and the weights load with ``torch.load(weights_only=True)``,
    so a crafted file cannot run code. Its policy class is checked first, from the file's
    JSON, so a model of another agent is refused in one line before SB3 builds anything (DQN
    loading a ppo file would allocate a 34 GiB replay buffer). The model loads on ``device``
    (:func:`resolve_device`), whatever device it was saved from.

    :raises CrBenchError: if ``path`` is not a readable model of the config's agent.
    """
    spec = get_agent(config.agent)
    data = read_saved_data(path)
    check_saved_agent(data, spec, path)
    custom_objects = safe_custom_objects(config, data, path)
    try:
        algorithm: type[BaseAlgorithm] = LeverPPO if levers else spec.algorithm
        return algorithm.load(path, env=env, device=resolve_device(device), custom_objects=custom_objects)
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
