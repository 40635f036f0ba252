"""``cr-bench publish``: turn a trained run into a small, citable model folder.

``results/models/<name>/`` is itself a run directory, so ``cr-bench record`` accepts it,
``cr-bench verify`` re-checks the published figures and ``cr-bench eval --out DIR``
re-evaluates it elsewhere (eval never writes inside a published folder)::

    model.zip          the policy (optimizer state dropped, so it stays a few MB)
    config.yaml        the resolved config, eval.episodes set to the published count
    curve.csv          training curve: true return of every training episode
    command.txt        the training command(s), resumed segments included
    progress.json      frames done and wall seconds of the training
    versions.yaml      library versions of the training
    eval/              episodes.csv and summary.yaml on the held-out tracks
    checkpoints.csv    score of kept checkpoints vs env frames and wall hours
    curve.png          training curve with the checkpoint scores
    publish.txt        the publish command
    published.yaml     the published figures, evaluation settings and a hash of
                       eval/episodes.csv (the report refuses a folder whose evaluation
                       no longer matches; ``--resume`` refuses the folder)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm

from cr_bench.agents.models import load_model, set_torch_threads
from cr_bench.agents.rundir import PUBLISHED_MARKER, RunDir
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.episodes import EpisodeResult, episode_laps, evaluate, write_episodes
from cr_bench.io import atomic_write_text, folders_removed_on_error
from cr_bench.results.plots import plot_training_curve
from cr_bench.results.stats import success_rate, summarize, summarize_scores
from cr_bench.results.tables import checkpoint_row, table_laps, write_checkpoint_table
from cr_bench.spec.loader import read_yaml, to_dict, write_yaml
from cr_bench.spec.run import EnvConfig, EvalConfig, RunConfig, check_held_out, resolve_backend

COPIED_FILES = ("curve.csv", "command.txt", "progress.json", "versions.yaml")


def slim_model(model: BaseAlgorithm, path: Path) -> None:
    """Save ``model`` without the optimizer's per-parameter state (Adam's moments: 2/3 of the size).

    The parameter groups stay, so the file loads like any SB3 model.
    """
    model.policy.optimizer.state.clear()
    model.save(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pick_checkpoints(kept: list[dict[str, Any]], points: int) -> list[dict[str, Any]]:
    """At most ``points`` kept checkpoints, evenly spread over training, the last one included."""
    if points < 1 or not kept:
        return []
    if len(kept) <= points:
        return kept
    indices = np.unique(np.round(np.linspace(len(kept) - 1, 0, points)).astype(int))
    return [kept[i] for i in indices]


def publish(
    run_dir: str | Path,
    out_dir: str | Path,
    episodes: int,
    curve_points: int,
    curve_episodes: int,
    command: str,
    n_envs: int | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Copy ``run_dir`` to ``out_dir`` and evaluate it there (see the module docstring).

    The final model is evaluated on ``episodes`` held-out tracks; up to ``curve_points``
    kept checkpoints on the first ``curve_episodes`` of the same tracks.

    :raises CrBenchError: if ``run_dir`` is not a trained run or ``out_dir`` exists
        (without ``force``).
    """
    run, out = RunDir(run_dir), Path(out_dir)
    config = run.read_config()
    run.require_model()
    _check_request(run, out, episodes, curve_points, curve_episodes, force)
    progress = run.read_progress()
    curve_episodes = min(curve_episodes, episodes)  # checkpoints play the first of the same tracks
    set_torch_threads(config.torch_threads)
    settings = dataclasses.replace(
        config.eval,
        episodes=episodes,
        n_envs=n_envs or config.eval.n_envs,
        backend=resolve_backend(config.eval.backend),
    )
    check_held_out(config.training_seeds, settings.track_seeds, f"publishing {run.path}")
    # A publish refused part-way (a model that does not load) leaves no results folder of its own.
    with folders_removed_on_error(out.parent), _staging(out) as staging:
        staged = RunDir(staging)
        _copy_run(run, staged, dataclasses.replace(config, eval=settings), command)
        rows = _score_checkpoints(run, config, settings, progress["frames_done"], curve_points, curve_episodes, log)
        # Reload the slimmed copy: the published figures are those of the published file.
        log(f"evaluating the published model on {episodes} {settings.backend} tracks")
        final = _evaluate(load_model(config, str(staged.model)), config.env, settings, episodes)
        summary = write_episodes(staged.eval_dir / "episodes.csv", final, settings.backend)
        atomic_write_text(staged.eval_dir / "command.txt", command + "\n")
        for count in sorted({curve_episodes, episodes}):
            rows.append(_checkpoint_row(final[:count], progress["frames_done"], progress["wall_seconds"], "model.zip"))
        write_checkpoint_table(staging / "checkpoints.csv", rows)
        curve = pd.read_csv(staged.curve) if staged.curve.is_file() else None
        plot_training_curve(curve, pd.read_csv(staging / "checkpoints.csv"), staging / "curve.png")
        record = _published_record(run, config, settings, progress, final, staged.eval_dir / "episodes.csv", command)
        write_yaml(staging / PUBLISHED_MARKER, record)
    log(f"published {out}: mean {summary['mean']:.1f} ± {summary['std']:.1f}, IQM {summary['iqm']:.1f}")
    return out


def _check_request(run: RunDir, out: Path, episodes: int, curve_points: int, curve_episodes: int, force: bool) -> None:
    """Refuse counts below one, publishing onto the run itself or over a folder, and an untrained run."""
    if episodes < 1 or curve_episodes < 1 or curve_points < 0:
        raise CrBenchError("--episodes and --curve-episodes must be >= 1 and --curve-points >= 0")
    if out.resolve() == run.path.resolve():
        raise CrBenchError(f"cannot publish {run.path} onto itself")
    if out.exists() and not force:
        raise CrBenchError(f"{out} already exists; pass --force to replace it")
    if run.read_progress()["frames_done"] == 0:
        raise CrBenchError(f"run {run.path} has no training progress to publish")


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """Yield a folder to build beside ``out``, then swap it in for ``out``.

    An interrupted publish leaves either the previous folder or the new one (or both, one of
    them hidden), never a half-built ``out``.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}-*"):  # left by a publish that was killed
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private
        # Swap by renames: an interruption leaves the old folder, the new one, or both.
        backup = out.parent / f".{out.name}-previous"
        if out.exists():
            out.rename(backup)
        staging.rename(out)
        shutil.rmtree(backup, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _copy_run(run: RunDir, staged: RunDir, config: RunConfig, command: str) -> None:
    """The slimmed model, the config to publish, the run's records and the publish command."""
    slim_model(load_model(config, str(run.model)), staged.model)
    write_yaml(staged.config, to_dict(config))
    for name in COPIED_FILES:
        if (run.path / name).is_file():
            shutil.copyfile(run.path / name, staged.path / name)
    atomic_write_text(staged.path / "publish.txt", command + "\n")


def _evaluate(model: BaseAlgorithm, env: EnvConfig, settings: EvalConfig, count: int) -> list[EpisodeResult]:
    """``count`` episodes on the first of the published tracks."""
    return evaluate(model, env, dataclasses.replace(settings, episodes=count))


def _score_checkpoints(
    run: RunDir,
    config: RunConfig,
    settings: EvalConfig,
    frames_done: int,
    points: int,
    episodes: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """checkpoints.csv rows of up to ``points`` kept checkpoints before ``frames_done``, each
    on ``episodes`` tracks."""
    # Checkpoints at the final frames are the final model, evaluated on its own.
    earlier = [c for c in run.list_checkpoints() if c["frames_done"] < frames_done]
    rows = []
    for checkpoint in pick_checkpoints(earlier, points):
        name = checkpoint["path"].name
        log(f"evaluating {name} on {episodes} {settings.backend} tracks")
        results = _evaluate(load_model(config, str(checkpoint["path"])), config.env, settings, episodes)
        rows.append(_checkpoint_row(results, checkpoint["frames_done"], checkpoint["wall_seconds"], name))
        log(f"  {rows[-1]['frames']} frames: mean {rows[-1]['mean']:.1f}, IQM {rows[-1]['iqm']:.1f}")
    return rows


def _checkpoint_row(results: list[EpisodeResult], frames: int, wall_seconds: float, model: str) -> dict[str, Any]:
    return checkpoint_row(np.array([r.true_return for r in results]), frames, wall_seconds, model)


def _published_record(
    run: RunDir,
    config: RunConfig,
    settings: EvalConfig,
    progress: dict[str, Any],
    final: list[EpisodeResult],
    episodes_csv: Path,
    command: str,
) -> dict[str, Any]:
    """published.yaml: the figures, the evaluation settings and the hash of ``episodes_csv``
    (which holds ``final``)."""
    summary = {**summarize(np.array([r.true_return for r in final])), **episode_laps(final)}
    return {
        "source_run": str(run.path),
        "agent": config.agent,
        "frames": int(progress["frames_done"]),
        "wall_seconds": float(progress["wall_seconds"]),
        "episodes": len(final),
        "track_seeds": [final[0].track_seed, final[-1].track_seed],
        "backend": settings.backend,
        "deterministic": settings.deterministic,
        "n_envs": settings.n_envs,
        "torch_threads": config.torch_threads,
        **{key: round(float(value), 4) for key, value in summary.items() if key != "episodes"},
        "success_rate": success_rate(np.array([r.true_return for r in final])),
        "episodes_sha256": sha256(episodes_csv),
        "command": command,
    }


def published_folder(path: Path) -> Path | None:
    """The published model folder that ``path`` is or lies in, if any (nothing may be written there)."""
    path = path.resolve()
    return next((folder for folder in [path, *path.parents] if (folder / PUBLISHED_MARKER).is_file()), None)


def read_published(folder: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """``published.yaml`` and ``eval/episodes.csv`` of a published folder, checked against each other.

    :raises CrBenchError: if ``folder`` is not a published model folder, or its
        eval/episodes.csv is not the one it was published with (edited or overwritten).
    """
    marker = folder / PUBLISHED_MARKER
    if not marker.is_file():
        raise CrBenchError(f"{folder} is not a published model folder (no {PUBLISHED_MARKER}; see cr-bench publish)")
    record = read_yaml(marker)
    episodes_csv = folder / "eval" / "episodes.csv"
    if not episodes_csv.is_file() or sha256(episodes_csv) != record.get("episodes_sha256"):
        raise CrBenchError(
            f"{episodes_csv} is not the evaluation {folder.name} was published with "
            "(restore it from git, or publish again)"
        )
    return record, pd.read_csv(episodes_csv)


def published_models(results_dir: Path) -> list[dict[str, Any]]:
    """The figures of every ``results_dir/models/*`` folder, checked against its evaluation.

    :raises CrBenchError: if a folder's eval/episodes.csv is not the one it was published
        with (edited, or overwritten by an older cr-bench).
    """
    rows = []
    for marker in sorted(results_dir.glob(f"models/*/{PUBLISHED_MARKER}")):
        folder = marker.parent
        if folder.name.startswith("."):
            continue  # a publish in progress or a leftover of one
        record, episodes = read_published(folder)
        # Each episode a run of one track: the IQM's CI redraws episodes (stats.episodes_ci).
        summary = {
            **summarize_scores(episodes["return"].to_numpy(dtype=np.float64)[:, None]),
            **table_laps(episodes),  # NaN: published before the lap metrics
        }
        versions = read_yaml(folder / "versions.yaml") if (folder / "versions.yaml").is_file() else {}
        rows.append(
            {
                **record,
                "name": folder.name,
                "folder": folder,
                **{key: summary[key] for key in ("mean", "std", "iqm", "success_rate", "lap_rate", "tile_fraction")},
                "iqm_ci": (summary["iqm_ci_low"], summary["iqm_ci_high"]),
                "cpus": versions.get("cpus"),
            }
        )
    return rows
