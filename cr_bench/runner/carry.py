"""A suite's runs, carried in git between machines (a suite's ``carry: true``).

``runs/`` does not travel, and a suite that trains for days spans sessions on fresh
machines. With ``carry``, ``compare`` keeps in ``RESULTS_DIR/<suite>/carry/<agent>/seed-<s>/``
what a rerun needs to continue each run: its config, progress, model, reward statistics,
training curve, cached evaluations and curve scores, and the kept checkpoints not yet
scored; not its TensorBoard logs or scored checkpoints. The baselines' cached episodes
travel too (``carry/baselines``). The carry is refreshed whenever
``compare`` ends (finished, failed, Ctrl-C or SIGTERM; not kill -9), and a run missing from
``runs/`` starts from it, so the same command on a fresh clone continues the suite.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from cr_bench.agents.init_from import INIT_FILE
from cr_bench.agents.rundir import RunDir
from cr_bench.evaluation.curves import grid_frames

CARRIED = ("config.yaml", "versions.yaml", "command.txt", "progress.json", "curve.csv", "model.zip",
           "reward_normalization.npz", "replay_refills.json", INIT_FILE)  # fmt: skip
"""A run's files that travel, besides its cached scores and unscored checkpoints."""


def carry_folder(results_dir: Path, suite: str) -> Path:
    """Where a suite's runs are carried."""
    return results_dir / suite / "carry"


def save_carry(run_dir: Path, carried: Path, every_frames: int | None) -> None:
    """Refresh ``carried`` (a run's carry folder) from ``run_dir``: replaced whole, so it holds
    one consistent state of the run. A run resumes from its model, so the only checkpoints that
    travel are those a curve every ``every_frames`` (None: no curve) has still to score."""
    run = RunDir(run_dir)
    if not run.progress.is_file():
        return  # nothing saved yet: nothing to continue
    staging = carried.with_name(f".{carried.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in CARRIED:
        if (run.path / name).is_file():
            shutil.copy2(run.path / name, staging / name)
    scored: set[int] = set()
    for cache in run.path.glob("curve-*.csv"):  # the copy says what is scored (a scorer may write on)
        shutil.copy2(cache, staging / cache.name)
        scored |= {int(frames) for frames in pd.read_csv(staging / cache.name)["frames"]}
    if run.eval_dir.is_dir():
        shutil.copytree(run.eval_dir, staging / "eval", ignore=shutil.ignore_patterns(".*"))
    for checkpoint in run.list_checkpoints():
        if every_frames is not None and grid_frames(checkpoint["frames_done"], every_frames) not in scored:
            (staging / "checkpoints").mkdir(exist_ok=True)
            for path in (checkpoint["path"], checkpoint["path"].with_suffix(".json")):
                shutil.copy2(path, staging / "checkpoints" / path.name)
    shutil.rmtree(carried, ignore_errors=True)
    staging.rename(carried)


def restore_carry(carried: Path, run_dir: Path) -> bool:
    """Start ``run_dir`` from its carry when ``runs/`` lacks it (a fresh machine); whether it did."""
    if (run_dir / "progress.json").is_file() or not (carried / "progress.json").is_file():
        return False
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(run_dir, ignore_errors=True)  # what a start that saved nothing left
    shutil.copytree(carried, run_dir)
    return True


def save_baselines(root: Path, carried: Path) -> None:
    """Carry the baselines' cached episodes (``root/baselines``): small tables, slow to replay."""
    if (root / "baselines").is_dir():
        shutil.copytree(root / "baselines", carried / "baselines", dirs_exist_ok=True)


def restore_baselines(carried: Path, root: Path) -> None:
    """Put the carried baselines' episodes back where compare caches them (missing files only)."""
    if (carried / "baselines").is_dir():
        for path in (carried / "baselines").rglob("*.csv"):
            target = root / "baselines" / path.relative_to(carried / "baselines")
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
