"""What ``cr-bench tune`` reads: search spaces (data) and :class:`TuneSettings`, validated.

A search space maps names to :class:`ParamSpec` (:data:`SEARCH_SPACES` per agent, narrowed
or replaced by ``--space FILE``); it is widened to hold the base config's own values
(:func:`include_defaults`), so trial 0 can be the base config. The trials run in
:mod:`cr_bench.runner.tuning`, the Optuna study is :mod:`cr_bench.runner.study`'s and the outputs
:mod:`cr_bench.results.tune_report`'s.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cr_bench.agents.registry import get_agent, resolve_config
from cr_bench.errors import CrBenchError
from cr_bench.spec.commands import (
    Backend,
    Count,
    DeviceOption,
    ExecutorOptions,
    Frames,
    Index,
    ResultsOptions,
    RunsOptions,
    check_executor,
    check_fields,
    folder_name,
)
from cr_bench.spec.loader import from_dict, read_yaml
from cr_bench.spec.run import VALIDATION_TRACK_START, RunConfig, check_held_out, read_config_file

Sampler = Literal["tpe", "random", "cmaes"]
"""Optuna samplers ``--sampler`` accepts (:func:`cr_bench.runner.study.make_sampler` builds them)."""
Pruner = Literal["hyperband", "halving", "median", "none"]
"""Optuna pruners ``--pruner`` accepts (:func:`cr_bench.runner.study.make_pruner` builds them)."""
MAX_CONFIRM_CHECKPOINTS = 40
"""Checkpoints a confirmation run may keep (:meth:`TuneSettings.confirm_every`)."""
DEFAULT_PRUNER: Pruner = "halving"
"""A new study's pruner: replayed on the published ppo study, successive halving found a
trial as good as Hyperband's, within the validation noise, for fewer frames
(results/tune/ppo-old-default/pruners.md, ``cr-bench tune --replay-pruners``)."""


@dataclass
class ParamSpec:
    """One searched hyperparameter."""

    type: str
    """``float``, ``int`` or ``categorical``."""
    low: float | None = None
    """Lower bound (float and int)."""
    high: float | None = None
    """Upper bound (float and int)."""
    log: bool = False
    """Sample on a log scale (float and int)."""
    choices: list[Any] | None = None
    """Values to choose from (categorical)."""

    def check(self, name: str) -> None:
        if self.type == "categorical":
            if not self.choices:
                raise CrBenchError(f"space.{name}: categorical needs a non-empty choices list")
        elif self.type in ("float", "int"):
            if self.low is None or self.high is None or self.low > self.high:
                raise CrBenchError(f"space.{name}: {self.type} needs low <= high")
            if self.log and self.low <= 0:
                raise CrBenchError(f"space.{name}: log scale needs low > 0")
        else:
            raise CrBenchError(f"space.{name}: type must be float, int or categorical, got {self.type!r}")


# Where each searchable name goes in the RunConfig.
ALGO_PARAMS = {
    "learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range", "ent_coef",
    "vf_coef", "max_grad_norm", "buffer_size", "learning_starts", "target_update_interval",
    "exploration_fraction", "exploration_final_eps", "train_freq", "gradient_steps", "tau",
}  # fmt: skip
ENV_PARAMS = {"action_repeat", "frame_stack", "obs_size"}

_PPO_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True},
    "n_steps": {"type": "categorical", "choices": [64, 128, 256, 512]},
    "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
    "n_epochs": {"type": "int", "low": 3, "high": 10},
    "gamma": {"type": "categorical", "choices": [0.95, 0.98, 0.99, 0.995, 0.999]},
    "gae_lambda": {"type": "categorical", "choices": [0.8, 0.9, 0.95, 0.98]},
    "clip_range": {"type": "categorical", "choices": [0.1, 0.2, 0.3]},
    "ent_coef": {"type": "categorical", "choices": [0.0, 1e-4, 1e-3, 1e-2]},
    "max_grad_norm": {"type": "categorical", "choices": [0.3, 0.5, 1.0, 2.0, 5.0]},
    "action_repeat": {"type": "categorical", "choices": [2, 4, 8]},
    "frame_stack": {"type": "categorical", "choices": [2, 3, 4]},
}
SEARCH_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    # The six-conv network needs the full 96x96 frame, so ppo does not search obs_size. Action
    # repeat 2 is left out by evidence (results/tune/ppo-old-default/trials.csv, the 50-trial study): its 6
    # trials reached 518 at best and trained at a median 350 frames/s against repeat 4's 580,
    # and all 12 best trials used repeat 4.
    # n_epochs stops at 6 for speed: epochs are the learner's cost per frame, and in
    # results/tune/ppo-300k/trials.csv (repeat 4, batch 64) 10 epochs trained at 267-310
    # frames/s per worker against 357-419 at 6. Six epochs lose nothing the validation noise
    # shows: in results/tune/ppo-old-default 4 of its 5 best trials used 4-6 epochs (best 875 at
    # 7, 866 at 6, 861 at 4), and in ppo-300k the best 6-epoch trial scored 816 against 861 at 10.
    "ppo": {
        **_PPO_SPACE,
        "action_repeat": {"type": "categorical", "choices": [4, 8]},
        "n_epochs": {"type": "int", "low": 3, "high": 6},
    },
    "ppo-gaussian": {**_PPO_SPACE, "obs_size": {"type": "categorical", "choices": [64, 84, 96]}},
    "recurrent-ppo": {
        **_PPO_SPACE,
        "obs_size": {"type": "categorical", "choices": [64, 84, 96]},
        "frame_stack": {"type": "categorical", "choices": [1, 2]},
    },
    "dqn": {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        "gamma": {"type": "categorical", "choices": [0.95, 0.98, 0.99, 0.995]},
        "buffer_size": {"type": "categorical", "choices": [10_000, 50_000, 100_000]},
        "learning_starts": {"type": "categorical", "choices": [1_000, 5_000, 10_000]},
        "target_update_interval": {"type": "categorical", "choices": [500, 1_000, 5_000, 10_000]},
        "exploration_fraction": {"type": "float", "low": 0.05, "high": 0.5},
        "exploration_final_eps": {"type": "float", "low": 0.01, "high": 0.2},
        "train_freq": {"type": "categorical", "choices": [1, 4, 8]},
        "gradient_steps": {"type": "categorical", "choices": [1, 2, 4]},
        "action_repeat": {"type": "categorical", "choices": [2, 4, 8]},
        "frame_stack": {"type": "categorical", "choices": [2, 3, 4]},
        "obs_size": {"type": "categorical", "choices": [64, 84, 96]},
    },
}
SEARCH_SPACES["qrdqn"] = SEARCH_SPACES["dqn"]
SEARCH_SPACES["ppo-v1"] = SEARCH_SPACES["ppo"]
"""Default search spaces per agent. Names not listed keep the agent's (or --config's) value."""


def load_space(agent: str, path: Path | None = None) -> dict[str, ParamSpec]:
    """The agent's search space, narrowed or replaced by a YAML file.

    The file holds ``params: {name: spec or null}`` and optionally ``replace: true``. By
    default its params override the agent's entries of the same name (``null`` drops a
    name, so it keeps the base config's value); with ``replace: true`` they are the whole
    space.
    """
    agent = get_agent(agent).name
    if agent not in SEARCH_SPACES:
        raise CrBenchError(f"no search space for agent {agent!r}; tunable: {', '.join(SEARCH_SPACES)}")
    raw: dict[str, Any] = dict(SEARCH_SPACES[agent])
    if path is not None:
        data = read_yaml(path)
        unknown = set(data) - {"params", "replace"}
        if unknown:
            raise CrBenchError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: params, replace")
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise CrBenchError(f"{path}: params must be a mapping of name -> spec")
        raw = dict(params) if data.get("replace", False) else {**raw, **params}
        raw = {name: spec for name, spec in raw.items() if spec is not None}
    space = {}
    for name, spec in raw.items():
        if name not in ALGO_PARAMS | ENV_PARAMS:
            known = ", ".join(sorted(ALGO_PARAMS | ENV_PARAMS))
            raise CrBenchError(f"space: unknown parameter {name!r}; searchable: {known}")
        space[name] = from_dict(ParamSpec, spec, f"space.{name}")
        space[name].check(name)
    return space


def default_params(space: dict[str, ParamSpec], config: RunConfig) -> dict[str, Any]:
    """The base config's value of each searched name (SB3's default where the config sets none).

    A value a numeric parameter cannot hold (a schedule such as ``lin_1e-3``, or 0 on a
    log scale) is left out: trial 0 keeps the base config's value for it, unsampled.
    """
    algorithm = get_agent(config.agent).algorithm
    signature = inspect.signature(algorithm.__init__).parameters
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if name in ENV_PARAMS:
            value = getattr(config.env, name)
        elif name in config.algo:
            value = config.algo[name]
        elif name in signature and signature[name].default is not inspect.Parameter.empty:
            value = signature[name].default
        else:
            continue
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if spec.type == "categorical" or (numeric and (value > 0 or not spec.log)):
            values[name] = value
    return values


def include_defaults(space: dict[str, ParamSpec], defaults: dict[str, Any]) -> dict[str, ParamSpec]:
    """The space widened so that it holds the base config: a missing categorical choice is
    appended and a numeric range is stretched to the default. Deterministic, so every worker
    builds the same space."""
    widened = {}
    for name, spec in space.items():
        spec = dataclasses.replace(spec, choices=list(spec.choices) if spec.choices is not None else None)
        if name in defaults:
            value = defaults[name]
            if spec.type == "categorical":
                assert spec.choices is not None
                if value not in spec.choices:
                    spec.choices.append(value)
            else:
                spec.low, spec.high = min(float(spec.low or 0), value), max(float(spec.high or 0), value)
                if spec.type == "int":
                    spec.low, spec.high = int(spec.low), int(spec.high)
        widened[name] = spec
    return widened


@dataclass
class TuneSettings(RunsOptions, ResultsOptions, DeviceOption, ExecutorOptions):
    """Everything a tuning worker needs; plain data so it crosses process boundaries.

    The CLI's ``cr-bench tune`` flags take their defaults from here.
    """

    agent: str = field(metadata={"positional": True, "metavar": "AGENT"})
    """Agent to tune (`cr-bench train --help` lists them)."""
    trials: Count = 50
    """The study's total number of trials (interrupted ones are retried and do not count)."""
    frames_per_trial: Frames = 150_000
    """Env frames each trial trains per seed. Half the 300k of the first two studies, aiming at
    50 trials in 2 hours on 2 cores (results/tune/ppo/summary.md says what the study took). What
    it costs in the choice (``--replay-budgets``, results/tune/*/budgets.md, whose 150k row cuts
    the recorded curves at their 75k and 150k evaluations, not the 50k/100k/150k of this
    default): in ppo-300k the value at 150k ranks the complete trials like the value at 300k
    (Spearman 0.70) and picks the same best; in ppo-old-default it does not (0.21), and its pick
    scored 817 at 300k against the best's 875. A 150k study picks configs that learn fast;
    whether they hold at the budget users train at is what ``--confirm`` measures."""
    eval_episodes: Count = 10
    """Validation tracks at each pruning point."""
    final_eval_episodes: Count = 20
    """Validation tracks at the end of a trial's training."""
    evals_per_trial: Count = 3
    """Evaluations per seed, evenly spaced in frames; the last is the final one. Three at 150k
    frames: halving prunes at the first (50k), and the value is read at 100k and 150k."""
    value_evals: Count = 2
    """A trial's value is the mean of its last K evaluations (the final one included)."""
    seeds_per_trial: Count = 1
    """Training seeds per trial; the value is their mean."""
    seed: Index = 0
    """First training seed (trials share seeds; samplers are seeded per worker)."""
    study_name: str = ""
    """Study name (default: the agent)."""
    storage: str = ""
    """Optuna storage URL (default: a journal file in the results)."""
    sampler: Sampler = "tpe"
    """Optuna sampler: tpe (multivariate), random or cmaes."""
    pruner: Pruner | None = None
    """Optuna pruner: halving (successive halving), hyperband, median or none. Default: the
    study's own when continuing one (a study keeps its pruner), else halving, which replayed
    on the published ppo study found as good a trial as Hyperband for fewer frames
    (results/tune/ppo-old-default/pruners.md, --replay-pruners)."""
    eval_backend: Backend | None = None
    """Simulator of the validation episodes (default: the training one)."""
    space_file: str | None = field(default=None, metadata={"flag": "--space"})
    """YAML file narrowing or replacing the search space."""
    config_file: str | None = field(default=None, metadata={"flag": "--config"})
    """YAML file of the base config every trial starts from (trial 0 is this config)."""
    n_jobs: Count = 2
    """Worker processes on this machine. Two by default: on 2 cores two trainings at once train
    1.20x the frames/s of one (results/throughput.md, "2 trainings at once"), and on a surrogate
    of the published study two workers found configs as good as one, within the spread between
    studies (results/tune/ppo-old-default/samplers.md, --replay-samplers)."""
    confirm: Index = 0
    """Retrain the study's top K configs, and the base config as the yardstick, on
    --confirm-seeds seeds no trial used, to --confirm-frames; score every checkpoint on the
    validation tracks and write best.yaml from the confirmed means (0: no confirmation). Off by
    default: 3 configs and the base on 3 seeds at 2M frames is 24M frames, 3.5 times the 7M
    a 50-trial study trains with halving pruning (results/tune/ppo-old-default/pruners.md); --confirm 3
    --confirm-seeds 2 --confirm-frames 1000000 is a third of that."""
    confirm_seeds: Count = 3
    """Fresh training seeds per confirmed config."""
    confirm_frames: Frames = 2_000_000
    """Env frames each confirmation run trains: by default the budget ppo's default recipe is
    judged at (benchmarks/recipe.yaml), where a config that wins at 300k may have plateaued."""
    replay_pruners: bool = False
    """Run no trial: replay every pruner on the study's recorded evaluations, in random orders
    of its trials, and write pruners.md (frames each pruner costs, best value it keeps)."""
    replay_samplers: bool = False
    """Run no trial: run many simulated studies against a surrogate of this study's trials, with
    1, 2 and 4 workers at once and random sampling as the floor, and write samplers.md (what
    parallel workers cost the best config found)."""
    replay_budgets: bool = False
    """Run no trial: replay the study as if its trials had stopped at each of its earlier
    evaluation steps, and write budgets.md (frames a study would cost, and how the value there
    ranks the complete trials against their value in the study)."""
    export_trial: Index | None = field(default=None, metadata={"metavar": "N"})
    """Run no trial: write trial N's config to RESULTS_DIR/tune/STUDY/trial-N.yaml in
    best.yaml's form (no budget, the base config's threads), for ``cr-bench train --config`` or
    a suite's ``config:`` (benchmarks/tuned.yaml takes the study's best trial that way)."""
    base_config: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})
    """Overrides every trial starts from, on top of ``config_file`` (the agent's defaults below)."""
    command: str = field(default="", metadata={"cli": False})
    """The command line, written to the outputs."""

    def __post_init__(self) -> None:
        check_fields(self)
        check_executor(self.executor, self.ray_address)
        readers = [flag for flag, on in (("--export-trial", self.export_trial is not None),
                                         ("--replay-pruners", self.replay_pruners),
                                         ("--replay-samplers", self.replay_samplers),
                                         ("--replay-budgets", self.replay_budgets)) if on]  # fmt: skip
        if len(readers) > 1:
            raise CrBenchError(f"{' and '.join(readers)} each run no trial but read the study: give one")
        self.agent = get_agent(self.agent).name  # a former name tunes (and names) the same study
        self.base_config = {**read_config_file(self.config_file, self.agent), **self.base_config}
        if self.device is not None:
            self.base_config["device"] = self.device
        self.study_name = self.study_name or self.agent
        try:
            folder_name(self.study_name)  # the study's folder under RESULTS_DIR/tune and RUNS_DIR/tune
        except ValueError as error:
            raise CrBenchError(f"study_name {error}") from None
        base = self.resolved_base()  # validates the base config now, not in the first trial
        self.eval_backend = self.eval_backend or typing.cast(Backend, base.env.backend)
        if not 1 <= self.value_evals <= self.evals_per_trial:
            raise CrBenchError(f"value_evals must be in [1, evals_per_trial={self.evals_per_trial}]")
        # A trial's k-th seed seeds its envs seed + k .. seed + k + n_envs - 1.
        seeds = range(self.seed, self.seed + self.seeds_per_trial + base.n_envs - 1)
        played = max(self.eval_episodes, self.final_eval_episodes)
        tracks = range(VALIDATION_TRACK_START, VALIDATION_TRACK_START + played)
        check_held_out(seeds, tracks, "tune's validation tracks", use="choice")
        if self.confirm:
            self.confirm_every()
            seeds = range(self.confirm_seed_list()[0], self.confirm_seed_list()[-1] + base.n_envs)
            check_held_out(seeds, tracks, "the confirmation's validation tracks", use="choice")

    @property
    def out_dir(self) -> Path:
        return Path(self.results_dir) / "tune" / self.study_name

    def space(self) -> dict[str, ParamSpec]:
        """The search space, holding the base config's values."""
        space = load_space(self.agent, Path(self.space_file) if self.space_file else None)
        return include_defaults(space, default_params(space, self.resolved_base()))

    def eval_steps(self) -> list[int]:
        """Frames at which a seed is evaluated, evenly spaced; the last is the budget."""
        return [self.frames_per_trial * (i + 1) // self.evals_per_trial for i in range(self.evals_per_trial)]

    def confirm_every(self) -> int:
        """Frames between a confirmation run's checkpoints: the largest step that lands on both
        the trial budget and the confirmation budget (their gcd), so both are scored.

        :raises CrBenchError: when that grid needs more than :data:`MAX_CONFIRM_CHECKPOINTS`.
        """
        every = math.gcd(self.frames_per_trial, self.confirm_frames)
        if self.confirm_frames // every > MAX_CONFIRM_CHECKPOINTS:
            raise CrBenchError(
                f"confirm_frames {self.confirm_frames:,} and frames_per_trial {self.frames_per_trial:,} share no "
                f"checkpoint grid of at most {MAX_CONFIRM_CHECKPOINTS} points; make confirm_frames a multiple "
                f"of {self.frames_per_trial:,}"
            )
        return every

    def confirm_seed_list(self) -> list[int]:
        """The confirmation's training seeds: the first ones after every trial's env seeds."""
        first = self.seed + self.seeds_per_trial - 1 + self.resolved_base().n_envs
        return list(range(first, first + self.confirm_seeds))

    def resolved_base(self) -> RunConfig:
        return resolve_config(self.agent, self.base_config)
