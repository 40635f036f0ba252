"""The run config: what defines one training run and its evaluation, with every check on it.

A run is described by one :class:`RunConfig`. Values come, in increasing priority, from
the agent's defaults (:mod:`cr_bench.agents.registry`), a YAML file (``--config``) and CLI
flags; :func:`cr_bench.agents.registry.resolve_config` layers them and validates the result.
Checks of a single section live here (:func:`check_env_config`, :func:`check_eval_config`);
the track-seed rule every input obeys is :func:`check_held_out`.
"""

from __future__ import annotations

import importlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym

from cr_bench.envs import wrappers
from cr_bench.errors import CrBenchError
from cr_bench.spec.loader import from_dict, read_yaml
from custom_policies.extractors import Precision

Backend = Literal["gymnasium", "envpool"]
"""Simulators: gymnasium's CarRacing-v3 (the reference) and EnvPool's C++ port."""
EnvBackend = Literal["auto", "gymnasium", "envpool"]
"""A training simulator, or ``auto``: envpool when installed and able to run the env, else gymnasium."""
VecEnvKind = Literal["auto", "dummy", "subproc", "pool"]
"""How envs run. Gymnasium: in this process, one process each, or ``auto`` (subproc when
more than one). EnvPool: ``pool`` is one EnvPool stepping every env in lockstep on its own
threads (the layout before shards); anything else a pool per core (``EnvPoolVecEnv``)."""
Device = Literal["auto", "cpu", "cuda"]
"""Torch devices a run or a command may ask for (:func:`cr_bench.agents.models.resolve_device`)."""
ENV_ID = "CarRacing-v3"
"""The simulator cr-bench is for (gymnasium's id; EnvPool's port has the same)."""
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
    lap_bonus: float = 0.0
    """Reward added on the frame that completes a lap (every tile visited); 0 disables."""


@dataclass
class EnvConfig:
    """The CarRacing-v3 observation and action pipeline, shared by training and evaluation."""

    id: str = ENV_ID
    """Gymnasium id of the simulated env (gymnasium backend only): CarRacing-v3, or an env with its
    spaces, ``module:Id`` importing the module that registers it (the tests' ``tests.fake_env:TinyCarRacing-v0``)."""
    backend: EnvBackend = "auto"
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
    precision: Precision = "fp32"
    """Arithmetic of the CNN: ``fp32``, or ``bf16`` autocast (heads and losses stay fp32)."""
    channels_last: bool = True
    """Run the CNN's convolutions in channels-last (NHWC) memory layout, faster on CPUs."""
    pixel_input: bool = True
    """Hand uint8 pixels to the CNN, which scales them in one pass in its own layout and dtype
    (policies with ``custom_policies.PixelInput``: Beta PPO); false: SB3's float conversion first."""


@dataclass
class EvalConfig:
    """How ``cr-bench eval`` runs: fixed track seeds held out from training."""

    episodes: int = 10
    """Number of evaluation episodes, one track each."""
    track_seed_start: int = TEST_TRACK_START
    """Episode i runs on track seed ``track_seed_start + i``; never one of the training seeds."""
    deterministic: bool = True
    """Act with the policy's deterministic action."""
    backend: Backend = "gymnasium"
    """Simulator for evaluation and recording; gymnasium, the reference, by default."""
    n_envs: int = 2
    """Episodes played at once (gymnasium: worker processes; envpool: envs in one pool)."""
    randomized: bool = False
    """Also evaluate with domain_randomize=True, colours changing every episode (``cr-bench
    compare``; gymnasium only)."""

    @property
    def track_seeds(self) -> range:
        """The track seeds played: ``track_seed_start`` and the ``episodes - 1`` after it."""
        return range(self.track_seed_start, self.track_seed_start + self.episodes)


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
    vec_env: VecEnvKind = "auto"
    """Gymnasium: ``dummy`` (one process), ``subproc`` (one process per env) or ``auto``
    (subproc when n_envs > 1). EnvPool: ``pool`` (one pool in lockstep) or anything else (a
    pool per core, the fastest: ``cr-bench bench``)."""
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
    """Torch intra-op threads for the learner (on the CPU)."""
    rollout_threads: int = 0
    """Torch threads while collecting rollouts (the policy on one small batch per step); 0:
    ``torch_threads``. Never more than ``torch_threads``. On-policy agents (the PPOs) only."""
    rollout_overlap: bool = False
    """PPO on EnvPool's pool per core: run the policy for one pool's envs while the other
    pools step (the same rollouts, :class:`cr_bench.agents.levers.OverlappedRollouts`). Off by
    default: ``cr-bench bench`` measures it as a lever, and it does not pay on 2 cores.
    Agents other than PPO, gymnasium and ``vec_env: pool`` always use SB3's loop."""
    learner_overlap: bool = False
    """PPO: learn from one rollout on a thread of its own while the next rollout is collected
    by the policy from before that update (one rollout of lag,
    :class:`cr_bench.agents.levers.OverlappedLearner`). Off by default: ``cr-bench bench``
    measures its speed as a lever, and the lag costs learning per frame (results/overlap
    against results/early). Other agents ignore it."""
    device: Device = "auto"
    """Torch device of the learner, as in SB3: ``auto`` (CUDA when present, else the CPU), ``cpu``
    or ``cuda``. A model saved on one device loads on any other."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment pipeline."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Policy network."""
    algo: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the SB3 algorithm (checked against its signature)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation settings."""

    @property
    def training_seeds(self) -> range:
        """The seeds of the training envs, ``seed .. seed + n_envs - 1``: never evaluation tracks."""
        return range(self.seed, self.seed + self.n_envs)


BACKENDS: tuple[Backend, ...] = typing.get_args(Backend)
"""The simulators' names."""


def envpool_available() -> bool:
    """Whether the optional ``envpool`` package is importable."""
    try:
        import envpool  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> Backend:
    """``auto`` -> envpool when installed, else gymnasium; check that the backend is usable."""
    if backend == "auto":
        return "envpool" if envpool_available() else "gymnasium"
    if backend == "gymnasium":
        return "gymnasium"
    if backend != "envpool":
        raise CrBenchError(f"unknown backend {backend!r}; known: auto, {', '.join(BACKENDS)}")
    if not envpool_available():
        raise CrBenchError("the envpool backend needs EnvPool: pip install 'cr-bench[fast]'")
    return "envpool"


def resolve_env_backend(config: EnvConfig) -> Backend:
    """The simulator that runs ``config``: ``auto`` is envpool when installed and able to run
    ``config.id`` (EnvPool has CarRacing-v3 only), else gymnasium."""
    if config.backend == "auto" and config.id != ENV_ID:
        return "gymnasium"
    return resolve_backend(config.backend)


TrackUse = Literal["test", "choice"]
"""What an evaluation's scores are for: ``test``, a figure people cite; ``choice``, a score
that chooses something (a checkpoint, a hyperparameter). :func:`check_held_out` holds both."""


def check_held_out(training_seeds: range, tracks: range, where: str, use: TrackUse = "test") -> None:
    """The held-out rule: every command that scores a model checks its tracks here, and only here.

    1. **Evaluation tracks never overlap the training seeds.** A run with seed ``s`` and ``n``
       envs seeds its envs ``s .. s + n - 1`` (:attr:`RunConfig.training_seeds`), and an env's
       first track is the track of its seed: an evaluation there would score tracks the model
       trained on. ``cr-bench eval``, ``compare`` (a suite's ``eval`` and ``curve``, and
       RUN_DIRs), ``publish``, ``verify`` and every resolved config check each run's seeds;
       ``tune`` checks the seeds of its trials against its validation tracks.
    2. **A test figure is not on validation tracks.** ``use="test"`` (``cr-bench eval``, a
       suite's ``eval``, ``compare RUN_DIR...``, ``publish``, ``verify``: the tables people cite)
       must play tracks below :data:`VALIDATION_TRACK_START`, by default the test tracks
       1,000,000+: the validation tracks (2,000,000+) are where choices are made, so a figure
       there is the score of its own selection. ``use="choice"`` (a suite's ``curve``, tune's
       trials, ``publish``'s checkpoint curve) may play the validation tracks, as it is meant
       to, or the test tracks.

    :param training_seeds: the env seeds of one run (or of every trial of a study).
    :param tracks: the track seeds the evaluation plays.
    :param where: what is evaluated, to begin the error with.
    :raises CrBenchError: one line naming the tracks and the range to use instead.

    >>> check_held_out(range(0, 4), range(1_000_000, 1_000_020), "eval")
    >>> check_held_out(range(0, 4), range(2_000_000, 2_000_010), "curve", use="choice")
    >>> check_held_out(range(0, 4), range(3, 13), "eval")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cr_bench.errors.CrBenchError: eval: track seeds 3..12 overlap the training seeds 0..3; evaluate on other tracks...
    >>> check_held_out(range(0, 4), range(1_999_990, 2_000_010), "eval")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cr_bench.errors.CrBenchError: eval: track seeds 1,999,990..2,000,009 reach the validation tracks (2,000,000+)...
    """
    if not tracks:
        return
    test_tracks = f"{TEST_TRACK_START:,} to {VALIDATION_TRACK_START - 1:,}"
    one = len(tracks) == 1
    shown = f"track seed {tracks[0]:,}" if one else f"track seeds {tracks[0]:,}..{tracks[-1]:,}"
    if training_seeds and tracks[0] <= training_seeds[-1] and training_seeds[0] <= tracks[-1]:
        raise CrBenchError(
            f"{where}: {shown} {'overlaps' if one else 'overlap'} the training seeds "
            f"{training_seeds[0]:,}..{training_seeds[-1]:,}; evaluate on other tracks (the test tracks are "
            f"{test_tracks}) or train on other seeds"
        )
    if use == "test" and tracks[-1] >= VALIDATION_TRACK_START:
        raise CrBenchError(
            f"{where}: {shown} {'reaches' if one else 'reach'} the validation tracks ({VALIDATION_TRACK_START:,}+), "
            f"kept for choices (tune, a suite's curve); a test figure plays the test tracks, {test_tracks}"
        )


def check_env_config(config: EnvConfig) -> None:
    """Raise CrBenchError naming the first invalid value of ``config``."""
    if config.backend not in ("auto", *BACKENDS):
        raise CrBenchError(f"env.backend: unknown {config.backend!r}; known: auto, {', '.join(BACKENDS)}")
    if config.backend == "envpool" and config.id != ENV_ID:
        raise CrBenchError(f"env.id: the envpool backend runs {ENV_ID} only, not {config.id!r}")
    module, _, name = config.id.rpartition(":")  # "module:Name-v0": gym.make imports the module first
    try:
        if module:
            importlib.import_module(module)
        gym.spec(name)
    except (gym.error.Error, ImportError):
        raise CrBenchError(
            f"env.id: no gymnasium environment {config.id!r} is registered (cr-bench runs {ENV_ID})"
        ) from None
    if config.backend == "envpool" and config.domain_randomize:
        raise CrBenchError("env.domain_randomize is not available on the envpool backend")
    for name in ("action_repeat", "frame_stack", "obs_size"):
        if getattr(config, name) < 1:
            raise CrBenchError(f"env.{name} must be >= 1, got {getattr(config, name)}")
    if config.obs_size < wrappers.MIN_OBS_SIZE:
        raise CrBenchError(f"env.obs_size must be >= {wrappers.MIN_OBS_SIZE}, got {config.obs_size}")
    if not 0 <= config.skip_zoom_frames < wrappers.MAX_EPISODE_FRAMES:
        raise CrBenchError(
            f"env.skip_zoom_frames must be in [0, {wrappers.MAX_EPISODE_FRAMES}), got {config.skip_zoom_frames}"
        )
    if config.discrete_actions is not None and config.discrete_actions not in wrappers.DISCRETE_ACTION_SETS:
        known = ", ".join(wrappers.DISCRETE_ACTION_SETS)
        raise CrBenchError(f"env.discrete_actions: unknown set {config.discrete_actions!r}; known: {known}")
    if config.throttle_axis and config.discrete_actions is not None:
        raise CrBenchError("env.throttle_axis applies to continuous actions; remove env.discrete_actions")
    shaping = config.shaping
    if shaping.grass_penalty < 0 or shaping.gas_reward_scale <= 0 or shaping.lap_bonus < 0:
        raise CrBenchError("env.shaping: grass_penalty and lap_bonus must be >= 0 and gas_reward_scale > 0")
    if shaping.no_progress_window < 0 or shaping.max_off_track_frames < 0:
        raise CrBenchError("env.shaping: no_progress_window and max_off_track_frames must be >= 0")


def check_eval_config(config: EvalConfig, where: str = "eval") -> None:
    """Raise CrBenchError naming the first invalid evaluation setting."""
    for name, low in (("episodes", 1), ("n_envs", 1), ("track_seed_start", 0)):
        if getattr(config, name) < low:
            raise CrBenchError(f"{where}.{name} must be >= {low}, got {getattr(config, name)}")
    if config.backend not in BACKENDS:
        raise CrBenchError(
            f"{where}.backend must be gymnasium or envpool: evaluation tracks must not depend on what is installed"
        )
    if config.randomized and config.backend != "gymnasium":
        raise CrBenchError(f"{where}.randomized needs backend gymnasium (EnvPool has no domain_randomize)")


def read_config_file(path: str | Path | None, agent: str, keep_frames: bool = False) -> dict[str, Any]:
    """A ``--config`` file (a run's config.yaml or a tuned best.yaml) as overrides for runs of
    ``agent``: ``agent`` defaults to the one asked for, and its ``frames`` is dropped unless
    ``keep_frames`` (tune and compare set the budget themselves; ``train`` takes the file's).
    No file: no overrides.

    The file is checked on its own (keys, types, its frame budget), before flags override any
    of its values: a bad value is an error even where a flag replaces it.

    :raises CrBenchError: naming the file and the bad key.
    """
    if path is None:
        return {"agent": agent}
    data = read_yaml(path)
    frames = from_dict(RunConfig, data, str(path)).frames  # partial: the defaults fill the rest
    if "frames" in data:
        check_frames(frames, f"{path}: frames")
    if not keep_frames:
        data.pop("frames", None)
    data.setdefault("agent", agent)
    return data
