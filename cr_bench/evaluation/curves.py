"""Score vs env frames: every kept checkpoint of a run, evaluated on the same held-out tracks.

A suite with a ``curve`` section (``benchmarks/early.yaml``) keeps a checkpoint every
``every_frames`` and scores each one here; across seeds, :func:`cr_bench.results.tables.curve_table` gives the
mean and a stratified-bootstrap 95% CI at each frame count. The scores are cached in the
run, one file per evaluation setting (:func:`cache_file`), so a rerun evaluates only what
is new.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cr_bench.agents.models import load_model
from cr_bench.agents.rundir import RunDir
from cr_bench.evaluation.episodes import episodes_at_once, evaluate
from cr_bench.io import write_dataframe
from cr_bench.spec.run import EvalConfig
from cr_bench.spec.suite import CurveSettings

SCORE_COLUMNS = ["frames", "track_seed", "return", "tile_fraction", "lap_completed"]
"""A run's cached checkpoint scores: the raw return and the lap metrics of each track (caches
written before the lap metrics lack the last two: NaN, not played again)."""


def grid_frames(frames: int, every: int) -> int:
    """A checkpoint's frame count on the ``every`` grid (checkpoints land a few frames past it).

    >>> grid_frames(100_043, 100_000)
    100000
    """
    return round(frames / every) * every


def cache_file(run_dir: Path, settings: CurveSettings) -> Path:
    """Where a run's checkpoint scores under ``settings``' simulator and tracks are kept."""
    return run_dir / f"curve-{settings.backend}-{settings.track_seed_start}-{settings.episodes}.csv"


def scored_checkpoints(run_dir: Path, settings: CurveSettings) -> pd.DataFrame:
    """The checkpoint scores already in the run's :func:`cache_file`, each on every track of
    ``settings`` (columns :data:`SCORE_COLUMNS`); nothing is played."""
    cache = cache_file(Path(run_dir), settings)
    scores = pd.read_csv(cache) if cache.is_file() else pd.DataFrame(columns=SCORE_COLUMNS)
    scores = scores.reindex(columns=SCORE_COLUMNS)
    tracks = list(settings.track_seeds)
    done = {f for f, group in scores.groupby("frames") if sorted(group["track_seed"]) == tracks}
    scores = scores[scores["frames"].isin(done)]
    return scores.astype({"frames": int, "track_seed": int, "return": float, "tile_fraction": float,
                          "lap_completed": float})  # fmt: skip


def score_checkpoints(run_dir: Path, settings: CurveSettings) -> pd.DataFrame:
    """Scores of every kept checkpoint of ``run_dir`` (columns :data:`SCORE_COLUMNS`).

    Checkpoints already in the run's :func:`cache_file` are not played again.
    """
    run = RunDir(run_dir)
    config = run.read_config()
    cache = cache_file(run.path, settings)
    tracks = EvalConfig(
        episodes=settings.episodes,
        track_seed_start=settings.track_seed_start,
        backend=settings.backend,
        n_envs=episodes_at_once(settings.backend, settings.episodes, config.eval.n_envs),
    )
    scores = scored_checkpoints(run.path, settings)
    done = set(scores["frames"])
    for checkpoint in run.list_checkpoints():
        frames = grid_frames(checkpoint["frames_done"], settings.every_frames)
        if frames in done or frames == 0:
            continue
        model = load_model(config, str(checkpoint["path"]))
        results = evaluate(model, config.env, tracks)
        rows = pd.DataFrame(
            [[frames, r.track_seed, r.true_return, r.tile_fraction, float(r.lap_frames is not None)] for r in results],
            columns=SCORE_COLUMNS,
        )
        scores = pd.concat([scores, rows], ignore_index=True)
        done.add(frames)
        write_dataframe(cache, scores)
    return scores.astype({"frames": int, "track_seed": int, "return": float})
