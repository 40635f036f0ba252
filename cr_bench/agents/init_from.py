"""``cr-bench train --init-from``: a new run that starts from another run's model and trains on
under its own config (rl-zoo3's ``--trained-agent``), e.g. with other shaping or learning rate.

The new run counts the source's frames and wall time as its own first ones (budgets are env
frames, and a published figure's cost includes the training it started from): its folder
starts with the source's progress, training curve, kept checkpoints (and their cached
scores), reward statistics and commands up to the starting model, and ``init_from.yaml`` says
where it came from and under which config those frames were trained. Only what shapes the
network and its inputs must match (:data:`PIPELINE_FIELDS` and the policy section); the
shaping, the algorithm's settings, action repeat and the seed may change.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm

from cr_bench.agents.models import load_model
from cr_bench.agents.registry import same_model
from cr_bench.agents.rundir import RunDir
from cr_bench.errors import CrBenchError
from cr_bench.io import write_dataframe
from cr_bench.spec.loader import from_dict, read_yaml, to_dict, write_yaml
from cr_bench.spec.run import RunConfig, check_held_out

PIPELINE_FIELDS = ("frame_stack", "grayscale", "crop_bottom_bar", "obs_size", "discrete_actions", "throttle_axis")
"""Env settings the network's input and output depend on: the same in both runs."""
INIT_FILE = "init_from.yaml"
"""Where a run started from another one records it."""


@dataclass(frozen=True)
class Start:
    """The model a run starts from."""

    source: Path
    """The source run's folder."""
    model: Path
    """Its model.zip or a kept checkpoint."""
    frames: int
    wall_seconds: float
    config: RunConfig
    """The source's config: what the first ``frames`` were trained under."""


def find_start(path: str | Path) -> Start:
    """The start ``path`` names: a run folder (its model.zip) or a kept checkpoint
    (``RUN/checkpoints/frames-N.zip``).

    :raises CrBenchError: in one line, if it is neither.
    """
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        if not run.model.is_file():
            raise CrBenchError(f"--init-from {path}: no model.zip (a run folder or RUN/checkpoints/frames-N.zip)")
        saved, config = run.read_progress(), run.read_config()
        if not saved["finished"]:  # its model.zip moves on while it trains; a kept checkpoint does not
            raise CrBenchError(
                f"--init-from {path}: the run is not finished ({saved['frames_done']:,} of {config.frames:,} "
                "frames); finish it, or start from one of its kept checkpoints"
            )
        return Start(path, run.model, int(saved["frames_done"]), float(saved["wall_seconds"]), config)
    if path.suffix == ".zip" and path.parent.name == "checkpoints":
        run = RunDir(path.parent.parent)
        kept = next((c for c in run.list_checkpoints() if c["path"] == path), None) if run.config.is_file() else None
        if kept is not None:
            return Start(run.path, path, int(kept["frames_done"]), float(kept["wall_seconds"]), run.read_config())
    raise CrBenchError(f"--init-from {path}: not a run folder or a kept checkpoint (RUN/checkpoints/frames-N.zip)")


def check_compatible(start: Start, config: RunConfig) -> None:
    """The new config must build the same network on the same inputs, and train past the start.

    :raises CrBenchError: in one line, naming what differs.
    """
    source = start.config
    if not same_model(source.agent, config.agent):
        raise CrBenchError(f"--init-from {start.source} holds a {source.agent} run, not {config.agent}")
    check_held_out(source.training_seeds, config.eval.track_seeds, f"--init-from {start.source}: eval.track_seed_start")
    differ = [f"env.{name}" for name in PIPELINE_FIELDS if getattr(source.env, name) != getattr(config.env, name)]
    differ += [f"policy.{name}" for name, value in to_dict(source.policy).items()
               if to_dict(config.policy)[name] != value]  # fmt: skip
    if differ:
        raise CrBenchError(f"--init-from {start.source}: the network would differ in {', '.join(differ)}")
    if config.frames <= start.frames:
        raise CrBenchError(f"--init-from starts at {start.frames:,} frames; --frames must be more (the total budget)")


def seed_run(run: RunDir, start: Start) -> None:
    """Give ``run`` (empty) the source's history up to the start, and record where it came from."""
    run.path.mkdir(parents=True, exist_ok=True)
    write_yaml(run.path / INIT_FILE, {
        "source": str(start.source), "model": str(start.model), "frames": start.frames,
        "wall_seconds": start.wall_seconds, "config": to_dict(start.config),
    })  # fmt: skip
    source = RunDir(start.source)
    run.write_progress(start.frames, start.wall_seconds, finished=False)
    if source.curve.is_file():
        curve = pd.read_csv(source.curve)
        write_dataframe(run.curve, curve[curve["frames"] <= start.frames])
    for checkpoint in source.list_checkpoints():
        if checkpoint["frames_done"] <= start.frames:
            run.checkpoints.mkdir(exist_ok=True)
            for file in (checkpoint["path"], checkpoint["path"].with_suffix(".json")):
                shutil.copy2(file, run.checkpoints / file.name)
    for cache in source.path.glob("curve-*.csv"):  # the same checkpoints' scores
        scores = pd.read_csv(cache)
        write_dataframe(run.path / cache.name, scores[scores["frames"] <= start.frames])
    if source.reward_stats.is_file():
        shutil.copy2(source.reward_stats, run.reward_stats)
    if (source.path / "command.txt").is_file():
        shutil.copy2(source.path / "command.txt", run.path / "command.txt")


def read_start(run: RunDir) -> Start | None:
    """The start a run recorded (None if it was trained from scratch)."""
    path = run.path / INIT_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = read_yaml(path)
    config = from_dict(RunConfig, data["config"], str(path))
    return Start(Path(data["source"]), Path(data["model"]), int(data["frames"]), float(data["wall_seconds"]), config)


Weights = tuple[dict[str, Any], dict[str, Any]]
"""A policy's state dict and its optimizer's."""


def read_weights(start: Start) -> Weights:
    """The start's network weights and optimizer state (read before the run is seeded, so a
    start that cannot load leaves nothing behind)."""
    if not start.model.is_file():
        raise CrBenchError(f"the model this run starts from is gone: {start.model}")
    source = load_model(dataclasses.replace(start.config, device="cpu"), str(start.model), device="cpu")
    return source.policy.state_dict(), source.policy.optimizer.state_dict()


def load_weights(model: BaseAlgorithm, weights: Weights, start: Start) -> None:
    """Put ``weights`` (read from ``start``) into ``model``: the policy, and the optimizer's
    state where one was saved (a published model has none: the optimizer starts afresh)."""
    policy, optimizer = weights
    try:
        model.policy.load_state_dict(policy)
    except RuntimeError as error:  # torch's first line is a header; the second names the tensor
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise CrBenchError(f"--init-from {start.model}: {' '.join(lines[:2])}") from None
    if optimizer["state"]:
        model.policy.optimizer.load_state_dict(optimizer)


def config_at(run: RunDir, frames: int) -> RunConfig:
    """The config the run's model at ``frames`` was trained under: the start's for the frames
    a run started from another counts as its own (its copied checkpoints), else the run's."""
    start = read_start(run)
    return start.config if start is not None and frames <= start.frames else run.read_config()
