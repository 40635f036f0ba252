"""Score vs env frames: every kept checkpoint of a run, evaluated on the same held-out tracks.

A suite with a ``curve`` section (``benchmarks/early.yaml``) keeps a checkpoint every
``every_frames`` and scores each one here; across seeds, :func:`cr_bench.results.tables.curve_table` gives the
mean and a 95% CI (over runs and tracks) at each frame count. The scores are cached in the
run, one file per evaluation setting (:func:`cache_file`), so a rerun evaluates only what
is new. :class:`ScoreAsTheyLand` scores them while the run trains on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback

from cr_bench.agents.init_from import config_at
from cr_bench.agents.models import load_model, set_torch_threads
from cr_bench.agents.rundir import RunDir
from cr_bench.evaluation.episodes import episodes_at_once, evaluate
from cr_bench.io import write_dataframe
from cr_bench.lifeline import on_parent_exit
from cr_bench.spec.run import EvalConfig
from cr_bench.spec.suite import CurveSettings

STOP_SECONDS = 10.0
"""How long an interrupted scorer gets to stop before it is killed."""
LIVE_EVERY_FRAMES = 10_000
"""Checkpoints closer than this are scored after the training, not beside it: a scorer process
costs seconds to start, more than a short training's checkpoints are worth scoring early."""
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
        trained = config_at(run, checkpoint["frames_done"])  # a copied start's checkpoint: the start's config
        model = load_model(trained, str(checkpoint["path"]))
        results = evaluate(model, trained.env, tracks)
        rows = pd.DataFrame(
            [[frames, r.track_seed, r.true_return, r.tile_fraction, float(r.lap_frames is not None)] for r in results],
            columns=SCORE_COLUMNS,
        )
        scores = pd.concat([scores, rows], ignore_index=True)
        done.add(frames)
        write_dataframe(cache, scores)
    return scores.astype({"frames": int, "track_seed": int, "return": float})


class ScoreAsTheyLand(BaseCallback):
    """Score a training's kept checkpoints while it trains on, in a child process.

    Each time the run passes a multiple of ``settings.every_frames`` (where the training
    keeps a checkpoint), a scorer process runs :func:`score_checkpoints` unless one is still
    playing; the next checkpoint starts it again, and whatever is left is scored after the
    training by the caller. So a run's curve grows while it trains (``compare --report-only``
    shows it), and a carried run (:mod:`cr_bench.runner.carry`) travels without the
    checkpoints already scored. The scorer shares the cores with the training: the work is
    the same as scoring after it, done earlier. Checkpoints closer than
    :data:`LIVE_EVERY_FRAMES` are all scored after the training. It ends with its parent, however that ends
    (:mod:`cr_bench.lifeline`); a checkpoint it was playing is scored by the next pass.
    """

    def __init__(self, run_dir: str | Path, settings: CurveSettings) -> None:
        super().__init__()
        self.run_dir, self.settings = Path(run_dir), settings
        self._next = 0
        self._scorer: Any = None
        self._lifeline: Connection | None = None
        self._live = True

    def _on_training_start(self) -> None:
        frames = int(self.model.frames_done)  # type: ignore[attr-defined]
        self._next = (frames // self.settings.every_frames + 1) * self.settings.every_frames

    def _on_step(self) -> bool:
        if not self._live or self.settings.every_frames < LIVE_EVERY_FRAMES:
            return True
        if int(self.model.frames_done) >= self._next:  # type: ignore[attr-defined]
            self._next += self.settings.every_frames
            if self._scorer is None or not self._scorer.is_alive():
                try:
                    self._start_scorer()
                except Exception as error:  # no process to spare: the pass after training scores them
                    print(f"cr-bench: checkpoints are scored after the training ({error})", file=sys.stderr)
                    self._live = False
        return True

    def _start_scorer(self) -> None:
        self.wait()
        context = multiprocessing.get_context("forkserver")
        parent_alive, self._lifeline = context.Pipe(duplex=False)
        self._scorer = context.Process(target=_score_in_child, args=(self.run_dir, self.settings, parent_alive))
        self._scorer.start()
        parent_alive.close()

    def wait(self) -> None:
        """Wait for the scorer playing now, if any (before the caller scores what is left)."""
        if self._scorer is not None:
            self._scorer.join()
            self._scorer = None
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None

    def stop(self) -> None:
        """Stop the scorer playing now, if any (the training was interrupted): the scores it
        wrote are kept, the checkpoint it was playing is scored by the next pass."""
        if self._scorer is not None and self._scorer.is_alive():
            os.kill(self._scorer.pid, signal.SIGINT)
            self._scorer.join(STOP_SECONDS)
            if self._scorer.is_alive():
                self._scorer.kill()
        self.wait()


def _score_in_child(run_dir: Path, settings: CurveSettings, parent_alive: Connection) -> None:
    """A scorer process: score what has landed, one torch thread, gone when its parent is."""
    try:
        on_parent_exit(parent_alive, lambda: os._exit(1))
        set_torch_threads(1)
        score_checkpoints(run_dir, settings)
    except KeyboardInterrupt:  # stopped, or Ctrl-C (it reaches the process group): the next pass scores it
        os._exit(130)
