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
    eval/              episodes.csv and summary.yaml on the held-out test tracks: the
                       published figure
    eval/randomized/   the same on the same tracks with domain_randomize=True (unless
                       ``--no-randomized``, or evaluated on EnvPool, which has none)
    checkpoints.csv    validation curve: score of kept checkpoints and of the final model
                       (last row) on validation tracks, vs env frames and wall hours
    curve.png          training curve with the validation scores
    publish.txt        the publish command
    published.yaml     the published figures (test tracks, and randomized colours), the
                       validation curve's tracks and grid, the time to 800 and 900, the
                       evaluation settings and hashes of the episodes files (the report
                       refuses a folder whose evaluation no longer matches; ``--resume``
                       refuses the folder)

Checkpoints are scored on validation tracks (seeds 2,000,000+), like every score that
justifies a choice: the test tracks give the published figure only. The time to a score is
the first scored point, in frames order, whose validation mean reaches it, so it is only as
fine as the grid ``--curve-points`` picks (``all``: every kept checkpoint).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm

from cr_bench.agents.init_from import config_at, read_start
from cr_bench.agents.models import load_model, set_torch_threads
from cr_bench.agents.rundir import PUBLISHED_MARKER, RunDir
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.episodes import EpisodeResult, episode_laps, evaluate, write_episodes
from cr_bench.io import atomic_write_text, folders_removed_on_error
from cr_bench.results.plots import plot_training_curve
from cr_bench.results.stats import success_rate, summarize, summarize_scores
from cr_bench.results.tables import checkpoint_row, table_laps, time_to, time_to_text, write_checkpoint_table
from cr_bench.spec.loader import read_yaml, to_dict, write_yaml
from cr_bench.spec.run import VALIDATION_TRACK_START, EvalConfig, RunConfig, check_held_out, resolve_backend

COPIED_FILES = ("curve.csv", "command.txt", "progress.json", "versions.yaml", "replay_refills.json")
RANDOMIZED_EPISODES = Path("eval") / "randomized" / "episodes.csv"
"""The final model on the published test tracks with domain_randomize=True, in a published folder."""
FIGURES = ("mean", "std", "iqm", "success_rate", "lap_rate", "tile_fraction")
"""The figures a published evaluation is summed up by (:func:`published_models`)."""


def slim_model(model: BaseAlgorithm, path: Path) -> None:
    """Save ``model`` without the optimizer's per-parameter state (Adam's moments: 2/3 of the size).

    The parameter groups stay, so the file loads like any SB3 model.
    """
    model.policy.optimizer.state.clear()
    model.save(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pick_checkpoints(kept: list[dict[str, Any]], points: int | Literal["all"]) -> list[dict[str, Any]]:
    """At most ``points`` kept checkpoints, evenly spread over training, the last one included
    (``all``: every one)."""
    if isinstance(points, str) or len(kept) <= points:  # "all"
        return kept
    if points < 1:
        return []
    indices = np.unique(np.round(np.linspace(len(kept) - 1, 0, points)).astype(int))
    return [kept[i] for i in indices]


def publish(
    run_dir: str | Path,
    out_dir: str | Path,
    episodes: int,
    curve_points: int | Literal["all"],
    curve_episodes: int,
    command: str,
    n_envs: int | None = None,
    force: bool = False,
    randomized: bool = True,
    model_choice: Literal["final", "best"] = "final",
    log: Callable[[str], None] = print,
) -> Path:
    """Copy ``run_dir`` to ``out_dir`` and evaluate it there (see the module docstring).

    The final model is evaluated on ``episodes`` held-out test tracks (the published figure),
    and again on them in randomized colours if ``randomized`` (gymnasium only: EnvPool has no
    domain_randomize, so an evaluation there has none). Up to ``curve_points`` kept
    checkpoints (``all``: every one) and the final model are scored on ``curve_episodes``
    validation tracks: the validation curve and the time to 800 and 900. ``model_choice``
    ``best`` publishes the scored point with the highest validation mean (the earliest of
    equals) instead of the final model, with its frames and wall time; ``selected`` in
    published.yaml records the choice and the run's own frames and wall time.

    :raises CrBenchError: if ``run_dir`` is not a trained run, ``out_dir`` exists (without
        ``force``) or the tracks are not held out.
    """
    run, out = RunDir(run_dir), Path(out_dir)
    config = run.read_config()
    run.require_model()
    _check_request(run, out, episodes, curve_points, curve_episodes, force)
    progress = run.read_progress()
    set_torch_threads(config.torch_threads)
    settings = dataclasses.replace(
        config.eval,
        episodes=episodes,
        n_envs=n_envs or config.eval.n_envs,
        backend=resolve_backend(config.eval.backend),
    )
    validation = dataclasses.replace(settings, episodes=curve_episodes, track_seed_start=VALIDATION_TRACK_START)
    check_held_out(config.training_seeds, settings.track_seeds, f"publishing {run.path}")
    check_held_out(config.training_seeds, validation.track_seeds, f"scoring {run.path}'s checkpoints", use="choice")
    if randomized and settings.backend != "gymnasium":  # as compare RUN_DIR... does
        log(f"no randomized colours: {settings.backend} has no domain_randomize (eval.backend gymnasium has)")
        randomized = False
    frames_done, wall_seconds = int(progress["frames_done"]), float(progress["wall_seconds"])
    # A publish refused part-way (a model that does not load) leaves no results folder of its own.
    with folders_removed_on_error(out.parent), _staging(out) as staging:
        staged = RunDir(staging)
        _copy_run(run, staged, dataclasses.replace(config, eval=settings), command)
        kept = [c for c in run.list_checkpoints() if c["frames_done"] < frames_done]  # the final one is model.zip
        rows = _score_checkpoints(run, validation, pick_checkpoints(kept, curve_points), log)
        # Reload the slimmed copy: the published figures are those of the published file.
        model = load_model(config, str(staged.model))
        log(f"scoring the final model on {curve_episodes} {settings.backend} validation tracks")
        rows.append(_checkpoint_row(evaluate(model, config.env, validation), frames_done, wall_seconds, "model.zip"))
        selected = None
        if model_choice == "best":
            start = read_start(run)  # the models a run started from another copied are that run's
            own = [row for row in rows if start is None or row["frames"] > start.frames]
            best = max(own, key=lambda row: (row["mean"], -row["frames"]))
            selected = {"model": best["model"], "by": "validation mean", "points": len(own),
                        "run_frames": frames_done, "run_wall_seconds": wall_seconds}  # fmt: skip
            log(f"best on the validation tracks: {best['model']} ({best['frames']:,} frames, mean {best['mean']:.1f})")
            if best["model"] != "model.zip":
                chosen = next(c for c in kept if c["path"].name == best["model"])
                slim_model(load_model(config, str(chosen["path"])), staged.model)
                model = load_model(config, str(staged.model))
                frames_done, wall_seconds = int(chosen["frames_done"]), float(chosen["wall_seconds"])
                staged.write_progress(frames_done, wall_seconds, finished=True)
                staged.trim_curve(frames_done)  # the folder is the run as it was at that model
                progress = staged.read_progress()
        write_checkpoint_table(staging / "checkpoints.csv", rows)
        curve = pd.read_csv(staged.curve) if staged.curve.is_file() else None
        plot_training_curve(curve, pd.read_csv(staging / "checkpoints.csv"), staging / "curve.png")

        log(f"evaluating the published model on {episodes} {settings.backend} test tracks")
        final = evaluate(model, config.env, settings)
        summary = write_episodes(staged.eval_dir / "episodes.csv", final, settings.backend)
        atomic_write_text(staged.eval_dir / "command.txt", command + "\n")
        colours = None
        if randomized:
            log(f"evaluating the published model on the same {episodes} tracks in randomized colours")
            colours = evaluate(model, dataclasses.replace(config.env, domain_randomize=True), settings)
            write_episodes(staging / RANDOMIZED_EPISODES, colours, settings.backend)
        record = {
            **_published_record(run, config, settings, progress, final, staged.eval_dir / "episodes.csv"),
            "validation_curve": {
                "track_seeds": [validation.track_seeds[0], validation.track_seeds[-1]],
                "episodes": curve_episodes,
                "backend": validation.backend,
                "scored": len(rows),
                "kept": len(kept),
            },
            "time_to": time_to(pd.DataFrame(rows)),
            "selected": selected,
            "randomized": None if colours is None else _figures_record(colours, staging / RANDOMIZED_EPISODES),
            "command": command,
        }
        write_yaml(staging / PUBLISHED_MARKER, record)
    log(f"published {out}: mean {summary['mean']:.1f} ± {summary['std']:.1f}, IQM {summary['iqm']:.1f}")
    if colours is not None:
        log(f"  randomized colours: mean {record['randomized']['mean']:.1f} ± {record['randomized']['std']:.1f}")
    for score, reached in record["time_to"].items():
        log(f"  time to {score} (validation): {time_to_text(reached)}")
    return out


def _check_request(
    run: RunDir, out: Path, episodes: int, curve_points: int | Literal["all"], curve_episodes: int, force: bool
) -> None:
    """Refuse counts below one, publishing onto the run itself or over a folder, and an untrained run."""
    if episodes < 1 or curve_episodes < 1 or (not isinstance(curve_points, str) and curve_points < 0):
        raise CrBenchError("--episodes and --curve-episodes must be >= 1 and --curve-points >= 0 or all")
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


def _score_checkpoints(
    run: RunDir,
    validation: EvalConfig,
    checkpoints: list[dict[str, Any]],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """checkpoints.csv rows of ``checkpoints`` (:meth:`RunDir.list_checkpoints` entries), each
    scored on the ``validation`` tracks."""
    rows = []
    for checkpoint in checkpoints:
        name = checkpoint["path"].name
        log(f"scoring {name} on {validation.episodes} {validation.backend} validation tracks")
        trained = config_at(run, checkpoint["frames_done"])  # a copied start's checkpoint: the start's config
        results = evaluate(load_model(trained, str(checkpoint["path"])), trained.env, validation)
        rows.append(_checkpoint_row(results, checkpoint["frames_done"], checkpoint["wall_seconds"], name))
        log(f"  {rows[-1]['frames']} frames: mean {rows[-1]['mean']:.1f}, IQM {rows[-1]['iqm']:.1f}")
    return rows


def _checkpoint_row(results: list[EpisodeResult], frames: int, wall_seconds: float, model: str) -> dict[str, Any]:
    return checkpoint_row(np.array([r.true_return for r in results]), frames, wall_seconds, model)


def _figures(results: list[EpisodeResult]) -> dict[str, float]:
    """The summary of some episodes as published.yaml states it (rounded; no episode count)."""
    returns = np.array([r.true_return for r in results])
    summary = {**summarize(returns), **episode_laps(results)}
    return {
        **{key: round(float(value), 4) for key, value in summary.items() if key != "episodes"},
        "success_rate": success_rate(returns),
    }


def _figures_record(results: list[EpisodeResult], episodes_csv: Path) -> dict[str, Any]:
    """published.yaml's entry of an extra evaluation (randomized colours): its tracks, figures
    and the hash of ``episodes_csv``, which holds ``results``."""
    return {
        "episodes": len(results),
        "track_seeds": [results[0].track_seed, results[-1].track_seed],
        **_figures(results),
        "episodes_sha256": sha256(episodes_csv),
    }


def _published_record(
    run: RunDir,
    config: RunConfig,
    settings: EvalConfig,
    progress: dict[str, Any],
    final: list[EpisodeResult],
    episodes_csv: Path,
) -> dict[str, Any]:
    """published.yaml's first entries: the figures, the evaluation settings and the hash of
    ``episodes_csv`` (which holds ``final``)."""
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
        **_figures(final),
        "episodes_sha256": sha256(episodes_csv),
    }


def published_folder(path: Path) -> Path | None:
    """The published model folder that ``path`` is or lies in, if any (nothing may be written there)."""
    path = path.resolve()
    return next((folder for folder in [path, *path.parents] if (folder / PUBLISHED_MARKER).is_file()), None)


def read_published(folder: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """``published.yaml`` and ``eval/episodes.csv`` of a published folder, checked against each
    other (and eval/randomized/episodes.csv against its hash, where one was published).

    :raises CrBenchError: if ``folder`` is not a published model folder, or an episodes file
        is not the one it was published with (edited or overwritten).
    """
    marker = folder / PUBLISHED_MARKER
    if not marker.is_file():
        raise CrBenchError(f"{folder} is not a published model folder (no {PUBLISHED_MARKER}; see cr-bench publish)")
    record = read_yaml(marker)
    episodes_csv = folder / "eval" / "episodes.csv"
    _check_hash(folder, episodes_csv, record.get("episodes_sha256"))
    if record.get("randomized"):
        _check_hash(folder, folder / RANDOMIZED_EPISODES, record["randomized"].get("episodes_sha256"))
    return record, pd.read_csv(episodes_csv)


def _check_hash(folder: Path, episodes_csv: Path, published_sha256: str | None) -> None:
    if not episodes_csv.is_file() or sha256(episodes_csv) != published_sha256:
        raise CrBenchError(
            f"{episodes_csv} is not the evaluation {folder.name} was published with "
            "(restore it from git, or publish again)"
        )


def _table_figures(episodes: pd.DataFrame) -> dict[str, Any]:
    """:data:`FIGURES` and the IQM's CI of an episodes table, with today's statistics (lap
    metrics NaN where it predates them)."""
    # Each episode a run of one track: the IQM's CI redraws episodes (stats.episodes_ci).
    summary = {
        **summarize_scores(episodes["return"].to_numpy(dtype=np.float64)[:, None]),
        **table_laps(episodes),
    }
    return {
        **{key: summary[key] for key in FIGURES},
        "iqm_ci": (summary["iqm_ci_low"], summary["iqm_ci_high"]),
    }


def published_models(results_dir: Path) -> list[dict[str, Any]]:
    """The figures of every ``results_dir/models/*`` folder, checked against its evaluation:
    published.yaml's entries, with :data:`FIGURES` and ``iqm_ci`` of its test tracks (and under
    ``randomized``, of its randomized colours; None where not evaluated) recomputed from its
    episodes. ``time_to`` and ``validation_curve`` are missing from folders published before them.

    :raises CrBenchError: if a folder's eval/episodes.csv is not the one it was published
        with (edited, or overwritten by an older cr-bench).
    """
    rows = []
    for marker in sorted(results_dir.glob(f"models/*/{PUBLISHED_MARKER}")):
        folder = marker.parent
        if folder.name.startswith("."):
            continue  # a publish in progress or a leftover of one
        record, episodes = read_published(folder)
        randomized = record.get("randomized")  # absent: published before; None: --no-randomized
        versions = read_yaml(folder / "versions.yaml") if (folder / "versions.yaml").is_file() else {}
        rows.append(
            {
                **record,
                "name": folder.name,
                "folder": folder,
                **_table_figures(episodes),
                "randomized": _table_figures(pd.read_csv(folder / RANDOMIZED_EPISODES)) if randomized else None,
                "cpus": versions.get("cpus"),
            }
        )
    return rows
