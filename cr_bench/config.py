"""Typed configuration: dataclasses with defaults, loaded from YAML with unknown keys rejected.

A run is described by one :class:`RunConfig`. Values come, in increasing priority, from
the agent's defaults (:mod:`cr_bench.agents`), a YAML file (``--config``) and CLI flags.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_write_text

T = TypeVar("T")

TEST_TRACK_START = 1_000_000
"""Held-out test tracks: ``cr-bench eval`` and every published table play seeds 1,000,000+."""
VALIDATION_TRACK_START = 2_000_000
"""Validation tracks, for choices (tuning, checkpoints, early curves): seeds 2,000,000+,
held out from training and from the test tracks."""


@dataclass
class ShapingConfig:
    """Training-only reward shaping and early termination. Evaluation never applies these."""

    grass_penalty: float = 0.0
    """Reward subtracted per frame when the frame is mostly grass (seed 000: 0.05); 0 disables."""
    grass_green_threshold: float = 185.0
    """Mean green channel above which a frame counts as grass (seed 000: 185)."""
    cancel_off_playfield_penalty: bool = False
    """Add back the -100 given for leaving the playfield (seed 000's "die" bonus)."""
    gas_reward_scale: float = 1.0
    """Multiply a frame's reward by this when gas is pressed (seed 002: 1.5); 1 disables."""
    no_progress_window: int = 0
    """End the episode when the mean reward of the last N frames <= threshold (seed 000: 100); 0 disables."""
    no_progress_threshold: float = -0.1
    """Threshold for ``no_progress_window`` (seed 000: -0.1)."""
    max_off_track_frames: int = 0
    """End the episode after this many consecutive frames with the car on grass (seed 002's idea); 0 disables."""


@dataclass
class EnvConfig:
    """The CarRacing-v3 observation and action pipeline, shared by training and evaluation."""

    backend: str = "auto"
    """Simulator for training: ``gymnasium`` (the reference), ``envpool`` (C++, several times
    faster; ``pip install 'cr-bench[fast]'``) or ``auto`` (envpool when installed)."""
    action_repeat: int = 8
    """Raw frames per agent step, rewards summed (seed 000: 8, seed 002: 2)."""
    frame_stack: int = 4
    """Processed frames stacked along the channel axis (seed 000: 4, seed 002: 3)."""
    grayscale: bool = True
    """Convert RGB frames to one luminance channel."""
    crop_bottom_bar: bool = False
    """Remove the 12-pixel indicator bar at the bottom of the 96x96 frame."""
    obs_size: int = 96
    """Side of the square observation after resizing, in pixels."""
    skip_zoom_frames: int = 0
    """No-op frames after reset, skipping the zoom-in animation (seed 004: 50)."""
    discrete_actions: str | None = None
    """Named discrete action set: ``seed002`` (12 actions) or ``gymnasium`` (5); None is continuous."""
    throttle_axis: bool = False
    """Continuous actions ``[steer, throttle]``: throttle > 0 presses gas, < 0 brakes, never both."""
    domain_randomize: bool = False
    """Randomise background and track colours on every reset."""
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    """Training-only wrappers."""


@dataclass
class PolicyConfig:
    """Typed policy keyword arguments (no ``eval`` of strings, unlike rl-zoo3)."""

    features_extractor: str = "nature"
    """CNN: ``nature`` (SB3's NatureCNN), ``six_conv`` (seed 000) or ``small`` (seed 002)."""
    features_dim: int = 512
    """Output size of the feature extractor."""
    net_arch: dict[str, list[int]] | list[int] | None = None
    """Hidden layers after the extractor: ``{pi: [...], vf: [...]}`` for actor-critic, a list for DQN."""
    activation_fn: str = "relu"
    """Activation of the hidden layers: relu, tanh, gelu, elu or leaky_relu."""
    ortho_init: bool | None = None
    """Orthogonal initialisation (actor-critic policies only); None keeps SB3's default."""
    log_std_init: float | None = None
    """Initial log standard deviation (Gaussian PPO only); None keeps SB3's default."""
    initial_action_mean: list[float] | None = None
    """Mean ``[steer, gas, brake]`` of the untrained Beta policy (Beta PPO only); None is the
    Box's centre, which brakes as hard as it accelerates."""
    lstm_hidden_size: int | None = None
    """LSTM size (recurrent policies only); None keeps the default."""
    enable_critic_lstm: bool | None = None
    """Give the critic its own LSTM (recurrent policies only); None keeps the default."""


@dataclass
class EvalConfig:
    """How ``cr-bench eval`` runs: fixed track seeds held out from training."""

    episodes: int = 10
    """Number of evaluation episodes, one track each."""
    track_seed_start: int = TEST_TRACK_START
    """Episode i runs on track seed ``track_seed_start + i``; training seeds stay below it."""
    deterministic: bool = True
    """Act with the policy's deterministic action."""
    backend: str = "gymnasium"
    """Simulator for evaluation and recording; gymnasium, the reference, by default."""
    n_envs: int = 2
    """Episodes played at once (gymnasium: worker processes; envpool: envs in one pool)."""


MAX_FRAMES = 10**10
"""Largest frame budget cr-bench accepts: thousands of times what CarRacing agents train with
(10^6 to 10^7 frames) and over a month of EnvPool on one machine, so a larger one is a typo (``1e99``)."""


def check_frames(frames: int, where: str = "frames") -> int:
    """``frames`` if it is a budget between 1 and :data:`MAX_FRAMES`, else a one-line error naming ``where``."""
    if not 1 <= frames <= MAX_FRAMES:
        digits = len(str(abs(frames)))
        shown = f"{frames:,}" if digits <= 16 else f"a {digits}-digit number"
        raise CrBenchError(f"{where} must be between 1 and {MAX_FRAMES:,} env frames, got {shown}")
    return frames


@dataclass
class RunConfig:
    """Everything that defines one training run."""

    agent: str = "ppo"
    """Name in the agent registry (``cr-bench train --help`` lists them)."""
    frames: int = 1_000_000
    """Training budget in environment frames (raw CarRacing steps), at most :data:`MAX_FRAMES`."""
    seed: int = 0
    """Training seed: networks, exploration and training tracks."""
    n_envs: int = 4
    """Parallel environments."""
    vec_env: str = "auto"
    """``dummy`` (one process), ``subproc`` (one process per env) or ``auto`` (subproc when n_envs > 1)."""
    checkpoint_every_frames: int = 200_000
    """Save model.zip every N frames (a scheduled checkpoint, kept when ``keep_checkpoints`` is set)."""
    checkpoint_every_seconds: float = 300.0
    """Also save model.zip (not kept) once this much wall time has passed since the last save,
    so a hard kill (kill -9, power loss) loses at most about 5 minutes of training."""
    normalize_reward: bool = False
    """Scale training rewards by a running std of the discounted return (SB3 VecNormalize,
    rewards only, as rl-zoo3 does for CarRacing); its statistics are saved with model.zip
    and restored by --resume. Evaluation never sees it."""
    keep_checkpoints: bool = True
    """Also keep each scheduled checkpoint as checkpoints/frames-<N>.zip (score vs frames)."""
    torch_threads: int = 2
    """Torch intra-op threads for the learner."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment pipeline."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Policy network."""
    algo: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the SB3 algorithm (checked against its signature)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation settings."""


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` converted to ``annotation``, or raise CrBenchError naming ``where``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _check_type(value, option, where)
            except CrBenchError:
                continue
        raise CrBenchError(f"{where}: {value!r} is not a valid {_type_name(annotation)}")
    if annotation is type(None):
        if value is None:
            return None
    elif dataclasses.is_dataclass(annotation):
        if isinstance(value, dict):
            return from_dict(annotation, value, where)  # type: ignore[arg-type]
    elif origin is list:
        if isinstance(value, list | tuple):
            (item,) = typing.get_args(annotation)
            return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            _, item = typing.get_args(annotation)
            return {str(k): _check_type(v, item, f"{where}.{k}") for k, v in value.items()}
    elif annotation is Any:
        return value
    elif annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # YAML reads 1e6 as a float
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is str and isinstance(value, str):
        return value
    raise CrBenchError(f"{where}: {value!r} is not a valid {_type_name(annotation)}")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise CrBenchError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise CrBenchError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(names))}")
    return cls(**{k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()})


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain nested dicts, ready for YAML."""
    return dataclasses.asdict(config)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, other values replace)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "net_arch":
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e6`` and ``3e-4`` as floats (YAML 1.2; PyYAML needs a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely, with YAML 1.2 floats."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning missing files and syntax errors into one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise CrBenchError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CrBenchError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); expected YAML") from None
    except OSError as error:
        raise CrBenchError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise CrBenchError(f"malformed YAML in {path}{line}: {getattr(error, 'problem', error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CrBenchError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def write_yaml(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as YAML atomically (a crash never leaves a half-written file)."""
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
