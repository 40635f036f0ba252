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

import csv
import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm

from cr_bench.agents import load_model, set_torch_threads
from cr_bench.config import read_yaml, to_dict, write_yaml
from cr_bench.envs import resolve_backend
from cr_bench.errors import CrBenchError
from cr_bench.evaluation import EpisodeResult, evaluate, write_episodes
from cr_bench.rundir import PUBLISHED_MARKER, RunDir
from cr_bench.stats import SUCCESS_RETURN, episodes_ci, iqm, success_rate

CHECKPOINT_COLUMNS = ["frames", "wall_hours", "episodes", "mean", "std", "iqm", "success_rate", "model"]
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


def score_row(results: list[EpisodeResult], frames: int, wall_seconds: float, model: str) -> dict[str, Any]:
    returns = np.array([r.true_return for r in results])
    return {
        "frames": frames,
        "wall_hours": round(wall_seconds / 3600, 3),
        "episodes": len(returns),
        "mean": round(float(returns.mean()), 2),
        "std": round(float(returns.std()), 2),
        "iqm": round(iqm(returns), 2),
        "success_rate": round(success_rate(returns), 3),
        "model": model,
    }


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
    run = RunDir(run_dir)
    config = run.read_config()
    run.require_model()
    if episodes < 1 or curve_episodes < 1 or curve_points < 0:
        raise CrBenchError("--episodes and --curve-episodes must be >= 1 and --curve-points >= 0")
    curve_episodes = min(curve_episodes, episodes)  # checkpoints play the first of the same tracks
    out = Path(out_dir)
    if out.resolve() == run.path.resolve():
        raise CrBenchError(f"cannot publish {run.path} onto itself")
    if out.exists() and not force:
        raise CrBenchError(f"{out} already exists; pass --force to replace it")
    progress = run.read_progress()
    if progress["frames_done"] == 0:
        raise CrBenchError(f"run {run.path} has no training progress to publish")
    set_torch_threads(config.torch_threads)
    eval_settings = dataclasses.replace(
        config.eval,
        episodes=episodes,
        n_envs=n_envs or config.eval.n_envs,
        backend=resolve_backend(config.eval.backend),
    )

    # Build the folder beside its final place and move it in at the end, so an interrupted
    # publish leaves either the previous folder or none.
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}-*"):  # left by a publish that was killed
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        staged = RunDir(staging)
        model = load_model(config.agent, str(run.model))
        slim_model(model, staged.model)
        write_yaml(staged.config, to_dict(dataclasses.replace(config, eval=eval_settings)))
        for name in COPIED_FILES:
            if (run.path / name).is_file():
                shutil.copyfile(run.path / name, staging / name)
        (staging / "publish.txt").write_text(command + "\n")

        def run_eval(model: BaseAlgorithm, count: int, label: str) -> list[EpisodeResult]:
            log(f"evaluating {label} on {count} {eval_settings.backend} tracks")
            return evaluate(
                model,
                config.env,
                count,
                eval_settings.track_seed_start,
                deterministic=eval_settings.deterministic,
                backend=eval_settings.backend,
                n_envs=eval_settings.n_envs,
            )

        rows = []
        # Checkpoints at the final frames are the final model, evaluated below.
        earlier = [c for c in run.list_checkpoints() if c["frames_done"] < progress["frames_done"]]
        for checkpoint in pick_checkpoints(earlier, curve_points):
            name = checkpoint["path"].name
            results = run_eval(load_model(config.agent, str(checkpoint["path"])), curve_episodes, name)
            rows.append(score_row(results, checkpoint["frames_done"], checkpoint["wall_seconds"], name))
            log(f"  {rows[-1]['frames']} frames: mean {rows[-1]['mean']:.1f}, IQM {rows[-1]['iqm']:.1f}")
        # Reload the slimmed copy: the published figures are those of the published file.
        final = run_eval(load_model(config.agent, str(staged.model)), episodes, "the published model")
        summary = write_episodes(staged.eval_dir / "episodes.csv", final, eval_settings.backend)
        (staged.eval_dir / "command.txt").write_text(command + "\n")
        for count in sorted({curve_episodes, episodes}):
            rows.append(score_row(final[:count], progress["frames_done"], progress["wall_seconds"], "model.zip"))
        write_checkpoint_table(staging / "checkpoints.csv", rows)
        plot_curve(staging)
        returns = np.array([r.true_return for r in final])
        record = {
            "source_run": str(run.path),
            "agent": config.agent,
            "frames": int(progress["frames_done"]),
            "wall_seconds": float(progress["wall_seconds"]),
            "episodes": episodes,
            "track_seeds": [final[0].track_seed, final[-1].track_seed],
            "backend": eval_settings.backend,
            "deterministic": eval_settings.deterministic,
            "n_envs": eval_settings.n_envs,
            "torch_threads": config.torch_threads,
            **{key: round(float(value), 4) for key, value in summary.items() if key != "episodes"},
            "success_rate": success_rate(returns),
            "episodes_sha256": sha256(staged.eval_dir / "episodes.csv"),
            "command": command,
        }
        write_yaml(staging / PUBLISHED_MARKER, record)
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
    log(f"published {out}: mean {summary['mean']:.1f} ± {summary['std']:.1f}, IQM {summary['iqm']:.1f}")
    return out


def write_checkpoint_table(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, CHECKPOINT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def plot_curve(folder: Path) -> None:
    """curve.png: rolling mean of the training episodes' true return, and the checkpoint scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    curve_path = folder / "curve.csv"
    if curve_path.is_file():
        curve = pd.read_csv(curve_path)
        if len(curve):
            rolling = curve["true_return"].rolling(50, min_periods=1).mean()
            ax.plot(curve["frames"] / 1e6, rolling, lw=1, label="training episodes (rolling mean of 50, true return)")
    scores = pd.read_csv(folder / "checkpoints.csv")
    scores = scores[scores["episodes"] == scores["episodes"].min()]
    ax.errorbar(
        scores["frames"] / 1e6,
        scores["mean"],
        yerr=scores["std"],
        fmt="o",
        capsize=3,
        label=f"held-out tracks (first {scores['episodes'].min()}), mean ± std",
    )
    ax.axhline(SUCCESS_RETURN, color="grey", ls="--", lw=1, label="solved (900)")
    ax.set_xlabel("env frames (millions)")
    ax.set_ylabel("raw CarRacing-v3 return")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "curve.png", dpi=100)
    plt.close(fig)


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
        returns = episodes["return"].to_numpy(dtype=np.float64)
        low, high = episodes_ci(returns)
        versions = read_yaml(folder / "versions.yaml") if (folder / "versions.yaml").is_file() else {}
        rows.append(
            {
                **record,
                "name": folder.name,
                "folder": folder,
                "mean": float(returns.mean()),
                "std": float(returns.std()),
                "iqm": iqm(returns),
                "iqm_ci": (low, high),
                "success_rate": success_rate(returns),
                "cpus": versions.get("cpus"),
            }
        )
    return rows
