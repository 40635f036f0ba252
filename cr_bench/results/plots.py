"""Figures: every plot cr-bench writes, with the one matplotlib setup.

Plots draw; they compute nothing of their own. Means, bands and score distributions come
from :mod:`cr_bench.results.stats`, tables of scores from :mod:`cr_bench.results.tables`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cr_bench.io import atomic_path
from cr_bench.results.stats import CI_OVER_RUNS, SUCCESS_RETURN, bootstrap_band, performance_profile

if TYPE_CHECKING:
    import optuna

DPI = 100
TRAINING_SMOOTHING = 50
"""Training episodes averaged by the rolling mean of a training curve."""


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: files only, no display needed (servers, workers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:  # keeps the .png suffix, which names the format
        figure.savefig(tmp, dpi=DPI)
    _pyplot().close(figure)


def plot_learning_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """True training return vs env frames: mean over runs with a 95% bootstrap band.

    :param curves: agent -> ``(frames, per_run)``: ``frames`` of shape ``(n_points,)``,
        ``per_run`` of shape ``(n_runs, n_points)`` (see :func:`cr_bench.results.tables.binned_curves`).
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    for agent, (frames, per_run) in curves.items():
        mean, low, high = bootstrap_band(per_run)  # one run: no band
        axes.plot(frames, mean, label=agent if len(per_run) > 1 else f"{agent} (1 run, no band)")
        axes.fill_between(frames, low, high, alpha=0.25)
    axes.set_xlabel("env frames")
    axes.set_ylabel("true return (training episodes)")
    axes.legend()
    _save(figure, path)


def plot_score_distributions(returns: dict[str, np.ndarray], path: Path) -> None:
    """Score distributions (rliable's performance profiles): P(return > tau) per agent.

    :param returns: agent -> its episode returns, shape ``(n_episodes,)``.
    """
    plt = _pyplot()
    lowest = min(float(np.min(r)) for r in returns.values())
    taus = np.linspace(min(-100.0, lowest), 1000.0, 200)
    figure, axes = plt.subplots(figsize=(7, 4))
    for agent, agent_returns in returns.items():
        axes.plot(taus, performance_profile(agent_returns, taus), label=agent)
    axes.axvline(SUCCESS_RETURN, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("return threshold tau")
    axes.set_ylabel("fraction of episodes with return > tau")
    axes.legend()
    _save(figure, path)


def plot_score_vs_frames(table: pd.DataFrame, path: Path) -> None:
    """Mean score vs env frames with its 95% CI band, one line per agent.

    :param table: :func:`cr_bench.results.tables.curve_table`'s columns ``agent, frames, mean, ci_low, ci_high,
        ci_over``.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for agent, group in table.groupby("agent", sort=False):
        one_run = "" if (group["ci_over"] == CI_OVER_RUNS).all() else " (1 run: band over tracks)"
        axes.plot(group["frames"], group["mean"], marker="o", label=f"{agent}{one_run}")
        axes.fill_between(group["frames"], group["ci_low"], group["ci_high"], alpha=0.2)
    axes.set_xlabel("env frames")
    axes.set_ylabel("mean raw return (95% CI over seeds and tracks)")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_training_curve(curve: pd.DataFrame | None, checkpoints: pd.DataFrame, path: Path) -> None:
    """A published model's curve.png: rolling mean of the training episodes' true return, and
    the scores of the checkpoints and the final model on validation tracks.

    :param curve: the run's curve.csv (:data:`cr_bench.agents.rundir.CURVE_COLUMNS`), if any.
    :param checkpoints: checkpoints.csv (:data:`cr_bench.results.tables.CHECKPOINT_COLUMNS`),
        every row on the same validation tracks.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    if curve is not None and len(curve):
        rolling = curve["true_return"].rolling(TRAINING_SMOOTHING, min_periods=1).mean()
        label = f"training episodes (rolling mean of {TRAINING_SMOOTHING}, true return)"
        axes.plot(curve["frames"] / 1e6, rolling, lw=1, label=label)
    axes.errorbar(
        checkpoints["frames"] / 1e6,
        checkpoints["mean"],
        yerr=checkpoints["std"],
        fmt="o",
        capsize=3,
        label=f"checkpoints on {checkpoints['episodes'].min()} validation tracks, mean ± std",
    )
    axes.axhline(SUCCESS_RETURN, color="grey", ls="--", lw=1, label=f"solved ({SUCCESS_RETURN:.0f})")
    axes.set_xlabel("env frames (millions)")
    axes.set_ylabel("raw CarRacing-v3 return")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    _save(figure, path)


def plot_optimization_history(study: optuna.Study, path: Path) -> None:
    """A tuning study's history.png: every trial's value and the best so far."""
    plt = _pyplot()
    from optuna.visualization.matplotlib import plot_optimization_history as optuna_history

    axes = optuna_history(study)
    axes.set_ylabel("mean raw return (validation tracks)")
    _save(plt.gcf(), path)
