"""The options of each ``cr-bench`` command, as dataclasses the CLI is generated from.

Each field is one option: its type gives the parser (``Annotated`` markers below name the
checked kinds: a frame budget, a positive count...), its default is the option's default
and its docstring is the ``--help`` text (as tyro reads CleanRL's ``Args``). Field metadata
adjusts the rest: ``positional``, ``flag`` (another flag name), ``metavar``, and
``cli: False`` for a field the command line does not set. Options several commands share
are declared once, in the mixins.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from cr_bench.errors import CrBenchError
from cr_bench.spec.run import TEST_TRACK_START, Backend, Device, EnvBackend, check_frames


def non_negative(value: int) -> int:
    """An integer >= 0 (a seed, a track seed, a count that may be zero)."""
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


def positive(value: int) -> int:
    """An integer >= 1 (a count)."""
    if value < 1:
        raise ValueError(f"must be >= 1, got {value}")
    return value


def frame_budget(value: int) -> int:
    """A budget in env frames, 1 to :data:`cr_bench.spec.run.MAX_FRAMES`."""
    try:
        return check_frames(value, "the budget")
    except CrBenchError as error:
        raise ValueError(str(error)) from None


def folder_name(value: str) -> str:
    """A plain folder name, made inside the folder an output belongs in: one path component,
    not hidden, so neither ``..`` nor ``a/b`` can lead elsewhere.

    >>> folder_name("ppo-vs-dqn")
    'ppo-vs-dqn'
    >>> folder_name("../x")
    Traceback (most recent call last):
    ...
    ValueError: must be a plain folder name (one path component, not starting with a dot), got '../x'
    """
    if not value or value.startswith(".") or any(separator in value for separator in ("/", "\\", "\0")):
        raise ValueError(f"must be a plain folder name (one path component, not starting with a dot), got {value!r}")
    return value


def checkpoint_count(value: int | str) -> int | str:
    """A number of checkpoints >= 0, or ``all`` (every one there is).

    >>> checkpoint_count(8), checkpoint_count("all")
    (8, 'all')
    """
    if value == ALL:
        return value
    if isinstance(value, str) or value < 0:
        raise ValueError(f"must be a count >= 0 or {ALL}, got {value}")
    return value


def return_points(value: float) -> float:
    """A finite number of return points >= 0."""
    if not 0 <= value < math.inf:
        raise ValueError(f"must be a finite number >= 0, got {value}")
    return value


ALL = "all"
"""A count that means every item there is (``--curve-points all``)."""
Frames = Annotated[int, frame_budget]
Count = Annotated[int, positive]
Index = Annotated[int, non_negative]
Points = Annotated[float, return_points]
CheckpointCount = Annotated[int | typing.Literal["all"], checkpoint_count]
FolderName = Annotated[str, folder_name]
Override = Annotated[dict[str, Any], "override"]
"""``--set KEY=VALUE``: a dotted key and a YAML value, read as ``{"a": {"b": value}}``."""


def optional_of(annotation: Any) -> Any:
    """``X`` for ``X | None``; any other annotation unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def checker(annotation: Any) -> Callable[[Any], Any] | None:
    """The check an ``Annotated`` field type carries (``Count``, ``Frames``...), if any."""
    annotation = optional_of(annotation)
    if typing.get_origin(annotation) is Annotated:
        check = annotation.__metadata__[0]
        return check if callable(check) else None
    return None


def check_fields(settings: Any) -> None:
    """Apply each field's check (its ``Annotated`` type) to a settings dataclass.

    :raises CrBenchError: naming the first field whose value fails.
    """
    hints = typing.get_type_hints(type(settings), include_extras=True)
    for item in dataclasses.fields(settings):
        check, value = checker(hints[item.name]), getattr(settings, item.name)
        if check is not None and value is not None:
            try:
                check(value)
            except ValueError as error:
                raise CrBenchError(f"{item.name} {error}") from None


@dataclass(kw_only=True)
class Checked:
    """Settings whose typed fields are checked on construction (:func:`check_fields`)."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(kw_only=True)
class ResultsOptions(Checked):
    results_dir: str = "results"
    """Root of the outputs: tables and plots (RESULTS_DIR/SUITE/), published models, studies
    (RESULTS_DIR/tune/STUDY/)."""


@dataclass(kw_only=True)
class RunsOptions(Checked):
    runs_dir: str = "runs"
    """Root of the run directories the command trains (compare: RUNS_DIR/compare/SUITE/, tune: RUNS_DIR/tune/STUDY/)."""


@dataclass(kw_only=True)
class DeviceOption(Checked):
    device: Device | None = None
    """Torch device: auto (CUDA when present, else the CPU), cpu or cuda. Default: the config's
    for training (auto), auto for evaluation; a model saved on one device loads on any."""


Executor = typing.Literal["local", "ray"]
ModelChoice = typing.Literal["final", "best"]


def check_executor(executor: str, ray_address: str | None) -> None:
    """``--ray-address`` only with ``--executor ray``.

    :raises CrBenchError: otherwise.
    """
    if ray_address is not None and executor != "ray":
        raise CrBenchError("--ray-address needs --executor ray")


@dataclass(kw_only=True)
class ExecutorOptions(Checked):
    executor: Executor = "local"
    """Where the work runs: local processes, or tasks on a Ray cluster (the cluster extra)."""
    ray_address: str | None = None
    """--executor ray: the cluster's address, e.g. ray://HEAD:10001 or HEAD:6379 (default:
    RAY_ADDRESS, else a new local cluster on this machine)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_executor(self.executor, self.ray_address)


@dataclass(kw_only=True)
class TracksOptions(Checked):
    episodes: Count | None = None
    """Episodes, one track each (default: the run config's eval.episodes; compare: the suite evaluation's)."""
    track_seed_start: Index | None = None
    """First track seed (default: eval.track_seed_start, the first test track)."""
    backend: Backend | None = None
    """Simulator (default: eval.backend; tracks differ between backends)."""


@dataclass(kw_only=True)
class TrainArgs(DeviceOption):
    agent: str = field(metadata={"positional": True, "metavar": "AGENT"})
    """Agent to train (`cr-bench train --help` lists them)."""
    frames: Frames | None = None
    """Budget in env frames, raw CarRacing steps (default: the config's frames)."""
    seed: Index | None = None
    """Training seed (default: the config's seed)."""
    config: str | None = None
    """YAML file overriding the agent's defaults."""
    n_envs: Count | None = None
    """Parallel environments (default: the agent's)."""
    backend: EnvBackend | None = None
    """Simulator (default: the config's env.backend; auto is envpool when installed, else gymnasium)."""
    overrides: list[Override] = field(default_factory=list, metadata={"flag": "--set", "metavar": "KEY=VALUE"})
    """Override one config value, e.g. --set algo.learning_rate=3e-4 (repeatable)."""
    out: str | None = None
    """Run directory (default runs/AGENT-seedS-TIME)."""
    resume: bool = False
    """Continue the run in --out (after Ctrl-C, or to raise --frames)."""
    init_from: str | None = None
    """Start from this run's model (a run folder, or RUN/checkpoints/frames-N.zip) and train on under
    this command's config (the network and its inputs must match); its frames count in --frames."""


@dataclass(kw_only=True)
class EvalArgs(TracksOptions, DeviceOption):
    run_dir: str = field(metadata={"positional": True, "metavar": "RUN_DIR"})
    """A trained run."""
    n_envs: Count | None = None
    """Episodes played at once (default: the run's eval.n_envs)."""
    stochastic: bool = False
    """Sample actions instead of the deterministic action."""
    out: str | None = None
    """Folder for episodes.csv, summary.yaml and command.txt (default RUN_DIR/eval; never inside a
    published model folder)."""


@dataclass(kw_only=True)
class VerifyArgs(Checked):
    run_dir: str = field(metadata={"positional": True, "metavar": "RUN_DIR"})
    """A published model folder."""
    episodes: Count | None = None
    """The first N published tracks (default all)."""
    track_seed_start: Index | None = None
    """First track, within the published ones (default theirs)."""
    margin: Points = 10.0
    """Return points added to each side of the published mean's 95% CI. A re-evaluation on
    another CPU is close to a second sample of the same returns, and the mean of a second
    sample misses the first one's 95% CI about one time in six. Ten points bring that under
    one in forty for the 100-track headline figures (CI half-widths of 7 to 16 points); a
    check on a few tracks has a wide CI of its own and may need a larger margin."""


@dataclass(kw_only=True)
class RecordArgs(Checked):
    run_dir: str = field(metadata={"positional": True, "metavar": "RUN_DIR"})
    """A trained run."""
    out: str = field(metadata={"required": True})
    """Output file, .gif or .mp4."""
    track_seed: Index | None = None
    """Track seed (default: the run's first eval track)."""
    fps: Count = 25
    """Frames per second of the video."""
    every: Count = 2
    """Keep every N-th env frame."""
    backend: Backend | None = None
    """Simulator (default: the run's eval.backend; gymnasium renders the 600x400 view)."""


@dataclass(kw_only=True)
class PlayArgs(Checked):
    episodes: Count = 1
    """Episodes to drive, one track each (Esc ends the session)."""
    track_seed_start: Index = TEST_TRACK_START
    """First track seed (default: the first test track, as eval's)."""
    fps: Count = 50
    """Frames per second shown (CarRacing's own rate is 50; lower is easier)."""
    record: str | None = None
    """Also save the episodes as a .gif or .mp4."""
    out: str | None = None
    """Folder for episodes.csv and summary.yaml in eval's format (a human row for a comparison)."""


@dataclass(kw_only=True)
class CompareArgs(TracksOptions, RunsOptions, ResultsOptions, DeviceOption, ExecutorOptions):
    run_dirs: list[str] = field(default_factory=list, metadata={"positional": True, "metavar": "RUN_DIR"})
    """Finished runs to compare (instead of --suite)."""
    suite: str | None = None
    """Suite YAML, e.g. benchmarks/smoke.yaml."""
    workers: Count = 1
    """(agent, seed) jobs run in parallel."""
    report_only: bool = False
    """--suite: train and score no run; write the tables from the runs finished and evaluated
    so far, and the curve from the checkpoints scored so far (a suite in progress). The
    baselines play their tracks if they have not yet: a table needs them."""
    name: FolderName = "compare"
    """RUN_DIRs: output folder name under RESULTS_DIR."""
    human: list[str] = field(default_factory=list, metadata={"metavar": "PLAY_DIR"})
    """RUN_DIRs: a `cr-bench play --out` folder whose episodes join the table as agent `human`
    (repeatable: each player is one seed); it must hold exactly the comparison's tracks."""


@dataclass(kw_only=True)
class PublishArgs(ResultsOptions):
    run_dir: str = field(metadata={"positional": True, "metavar": "RUN_DIR"})
    """A trained run."""
    name: FolderName = field(metadata={"required": True})
    """Folder name under RESULTS_DIR/models."""
    episodes: Count = 100
    """Held-out test tracks for the final model: the published figure."""
    curve_points: CheckpointCount = field(default=8, metadata={"metavar": "N|all"})
    """Kept checkpoints to score on validation tracks, evenly spread, the last included (all:
    every one; 0: none); the final model is always scored. Time to 800 and 900 is the first
    scored point to reach it, so this grid is its resolution."""
    curve_episodes: Count = 20
    """Validation tracks (2000000+) per checkpoint score, the final model's included."""
    model: ModelChoice = "final"
    """The model to publish: final (the run's model.zip) or best (the scored point with the highest
    validation mean, the earliest of equals; with --curve-points all, among every kept checkpoint), as
    rl-zoo3's best_model. Its frames and wall time are the published ones; the run's are recorded."""
    no_randomized: bool = False
    """Skip the evaluation in randomized colours (domain_randomize=True) on the same test tracks
    (an evaluation on EnvPool, which has no domain_randomize, skips it anyway)."""
    n_envs: Count | None = None
    """Episodes played at once (default: the run's eval.n_envs)."""
    force: bool = False
    """Replace an existing published folder."""


@dataclass(kw_only=True)
class ReportArgs(ResultsOptions):
    pass


@dataclass(kw_only=True)
class BenchArgs(Checked):
    raw_frames: Frames = 4000
    """Frames of the gymnasium measurements (EnvPool's are 4x and 8x)."""
    train_frames: Frames = 40_000
    """Frames of each training run."""
    no_reference: bool = False
    """Skip the (slow) rl-zoo3 reference training run."""
    no_levers: bool = False
    """Skip the training runs that measure each speed lever (bench.LEVERS)."""
    out_dir: str = "results"
    """Where to write throughput.md and throughput.csv."""
