"""What ``cr-bench compare --suite`` reads: a suite of agents x seeds under one frame budget.

A suite (YAML in ``benchmarks/``) names agents, training seeds, a frame budget, the
evaluation every run gets (an :class:`~cr_bench.spec.run.EvalConfig`, by default 20 test
tracks in standard and randomized colours) and optionally a score-vs-frames ``curve``.
:func:`load_suite` validates it and resolves each agent's run config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cr_bench.agents.registry import get_agent, resolve_config
from cr_bench.envs.baselines import BASELINES
from cr_bench.errors import CrBenchError
from cr_bench.spec.commands import folder_name
from cr_bench.spec.loader import from_dict, read_yaml
from cr_bench.spec.run import (
    BACKENDS,
    VALIDATION_TRACK_START,
    Backend,
    EvalConfig,
    RunConfig,
    check_eval_config,
    check_frames,
    check_held_out,
    read_config_file,
)


@dataclass
class SuiteAgent:
    """One agent of a suite."""

    name: str
    """Label in the tables (unique in the suite)."""
    agent: str
    """Registry name (``cr-bench train --help`` lists them)."""
    config: str | None = None
    """YAML config the runs start from, e.g. a tuned best.yaml (relative to the suite file)."""
    set: dict[str, Any] = field(default_factory=dict)
    """Overrides on top, as in ``cr-bench train --set``."""
    seeds: list[int] | None = None
    """This agent's training seeds (default: the suite's)."""
    frames: int | None = None
    """This agent's training budget in env frames (default: the suite's), e.g. to stop a
    control agent early while the others train on."""
    init_from: str | None = None
    """Start each run from this run folder or kept checkpoint (``{seed}`` is the run's seed;
    relative to the suite file), e.g. another suite's carried run: ``cr-bench train
    --init-from``. Its frames count in the budget."""

    def start(self, suite_file: Path, seed: int) -> str | None:
        """The model the run of ``seed`` starts from (None: from scratch)."""
        return None if self.init_from is None else str(suite_file.parent / self.init_from.format(seed=seed))


@dataclass
class CurveSettings:
    """The ``curve`` section of a suite: score vs frames on validation tracks."""

    every_frames: int = 100_000
    """Keep and score a checkpoint every N env frames."""
    episodes: int = 10
    """Tracks per checkpoint score."""
    track_seed_start: int = VALIDATION_TRACK_START
    """First track: validation tracks by default, since a curve justifies choices (the test tracks
    are allowed too; never the training seeds: :func:`~cr_bench.spec.run.check_held_out`)."""
    backend: Backend = "envpool"
    """Simulator of the checkpoint episodes (the same for every agent of the suite)."""

    @property
    def track_seeds(self) -> range:
        """The track seeds each checkpoint plays."""
        return range(self.track_seed_start, self.track_seed_start + self.episodes)


def suite_eval() -> EvalConfig:
    """The evaluation of a comparison unless it says otherwise: 20 test tracks per run, in
    standard and randomized colours."""
    return EvalConfig(episodes=20, randomized=True)


@dataclass
class Suite:
    """A comparison: agents x seeds under one frame budget, evaluated on the same tracks."""

    name: str
    """Suite name; outputs go to results/<name>/."""
    frames: int
    """Training budget of every run, in env frames."""
    seeds: list[int]
    """Training seeds of every agent."""
    agents: list[SuiteAgent]
    """Agents to compare."""
    eval: EvalConfig = field(default_factory=suite_eval)
    """Evaluation settings (every agent and baseline plays the same tracks)."""
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    """Policies that do not learn, shown in every table: random and scripted."""
    curve: CurveSettings | None = None
    """Also score each run's checkpoints every ``curve.every_frames`` (score vs env frames)."""
    carry: bool = False
    """Keep what each run needs to continue in RESULTS_DIR/<name>/carry/ (for git: a suite that
    spans sessions on fresh machines continues from it; :mod:`cr_bench.runner.carry`)."""


def load_suite(path: Path) -> tuple[Suite, dict[str, RunConfig]]:
    """Read and validate a suite; return it with the resolved RunConfig of each agent."""
    suite = from_dict(Suite, read_yaml(path), str(path))
    if suite.frames < 1 or not suite.seeds or not suite.agents:
        raise CrBenchError(f"{path}: a suite needs frames >= 1, at least one seed and one agent")
    check_frames(suite.frames, f"{path}: frames")
    for agent in suite.agents:
        if agent.frames is not None:
            check_frames(agent.frames, f"{path}: {agent.name}'s frames")
    check_eval_config(suite.eval, f"{path}: eval")
    if min(suite.seeds) < 0 or any(a.seeds is not None and (not a.seeds or min(a.seeds) < 0) for a in suite.agents):
        raise CrBenchError(f"{path}: seeds must be >= 0 (and an agent's seeds list not empty)")
    _check_no_repeats(suite.seeds, f"{path}: seeds")
    _check_folder_name(suite.name, f"{path}: name")
    for agent in suite.agents:
        _check_folder_name(agent.name, f"{path}: agent name")
        if agent.seeds is not None:
            _check_no_repeats(agent.seeds, f"{path}: {agent.name}'s seeds")
    names = [a.name for a in suite.agents]
    if len(set(names)) != len(names) or set(names) & set(BASELINES):
        raise CrBenchError(f"{path}: agent names must be unique and not {', '.join(BASELINES)}")
    if suite.curve is not None and (
        min(suite.curve.every_frames, suite.curve.episodes) < 1
        or suite.curve.track_seed_start < 0
        or suite.curve.backend not in BACKENDS
    ):
        raise CrBenchError(
            f"{path}: curve needs every_frames >= 1, episodes >= 1, track_seed_start >= 0 "
            "and backend gymnasium or envpool"
        )
    unknown = set(suite.baselines) - set(BASELINES)
    if unknown:
        raise CrBenchError(f"{path}: unknown baseline(s) {', '.join(sorted(unknown))}; known: {', '.join(BASELINES)}")
    configs = {}
    for entry in suite.agents:
        get_agent(entry.agent)
        base = read_config_file(path.parent / entry.config if entry.config else None, entry.agent)
        curve = {"checkpoint_every_frames": suite.curve.every_frames, "keep_checkpoints": True} if suite.curve else {}
        frames = suite.frames if entry.frames is None else entry.frames
        config = resolve_config(entry.agent, base, entry.set, {"frames": frames, **curve})
        for seed in entry.seeds or suite.seeds:
            run = dataclasses.replace(config, seed=seed)
            check_held_out(run.training_seeds, suite.eval.track_seeds, f"{path}: eval of {entry.name} seed {seed}")
            if suite.curve is not None:
                where = f"{path}: curve of {entry.name} seed {seed}"
                check_held_out(run.training_seeds, suite.curve.track_seeds, where, use="choice")
        configs[entry.name] = config
    return suite, configs


def _check_no_repeats(seeds: list[int], where: str) -> None:
    """Each seed once: a run is one (agent, seed) folder, so a repeated seed is one run counted twice."""
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise CrBenchError(f"{where} list seed {repeated[0]} twice; each seed is one run")


def _check_folder_name(name: str, where: str) -> None:
    """Suite and agent names are folders under --runs-dir and --results-dir."""
    try:
        folder_name(name)
    except ValueError as error:
        raise CrBenchError(f"{where} {error}") from None
