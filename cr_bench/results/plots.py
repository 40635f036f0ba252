"""Figures: every plot cr-bench writes, with the one matplotlib setup.

Plots draw; they compute nothing of their own. Means, bands and score distributions come
from :mod:`cr_bench.results.stats`, tables of scores from :mod:`cr_bench.results.tables`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cr_bench.io import atomic_path
from cr_bench.results.stats import CI_OVER_RUNS, CI_OVER_TRACKS, NO_CI, SUCCESS_RETURN, bootstrap_band, profile_band

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


def agent_colours(agents: Iterable[str]) -> dict[str, Any]:
    """One colour per agent, in order (matplotlib's default cycle), so that every figure of a
    comparison draws an agent alike, whichever of the agents it shows."""
    cycle = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    return {agent: cycle[i % len(cycle)] for i, agent in enumerate(dict.fromkeys(agents))}


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:  # keeps the .png suffix, which names the format
        figure.savefig(tmp, dpi=DPI)
    _pyplot().close(figure)


def plot_learning_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    colours: Mapping[str, Any] | None = None,
    refills: Mapping[str, Sequence[float]] | None = None,
) -> None:
    """True training return vs env frames: mean over runs with a 95% bootstrap band over runs.

    The episodes are the training ones, under each agent's training conditions (exploration,
    early termination, replay refills), so the curves show learning, not held-out skill. Two
    runs' band is just their range, and the legend says so; one run has none.

    :param curves: agent -> ``(frames, per_run)``: ``frames`` of shape ``(n_points,)``,
        ``per_run`` of shape ``(n_runs, n_points)`` (see :func:`cr_bench.results.tables.binned_curves`).
    :param colours: agent -> colour (:func:`agent_colours`; default: the agents in order).
    :param refills: agent -> the frames at which one of its runs refilled its replay buffer
        (random actions, no learning: the curve dips there), each marked by a dotted line.
    """
    plt = _pyplot()
    colours = colours or agent_colours(curves)
    figure, axes = plt.subplots(figsize=(7, 4))
    for agent, (frames, per_run) in curves.items():
        mean, low, high = bootstrap_band(per_run)  # one run: no band
        label = agent + {1: " (1 run, no band)", 2: " (2 runs: band spans the two)"}.get(len(per_run), "")
        axes.plot(frames, mean, label=label, color=colours[agent])
        axes.fill_between(frames, low, high, alpha=0.25, color=colours[agent])
        for i, at in enumerate((refills or {}).get(agent, [])):
            label = f"{agent}: replay buffer refilled" if i == 0 else "_"
            axes.axvline(at, color=colours[agent], linestyle=":", linewidth=1, label=label)
    axes.set_xlabel("env frames")
    axes.set_ylabel("true return of training episodes (95% CI)")
    if curves:  # baselines only: nothing trained yet
        axes.legend()
    _save(figure, path)


BAND_LABELS = {CI_OVER_RUNS: "", CI_OVER_TRACKS: " (1 run: band over tracks)", NO_CI: " (1 episode, no band)"}
"""What a plotted band redraws, as a legend names it (:func:`cr_bench.results.stats.supported_ci`)."""


def plot_score_distributions(
    scores: dict[str, np.ndarray], path: Path, colours: Mapping[str, Any] | None = None
) -> None:
    """Score distributions (rliable's performance profiles): P(return > tau) per agent, with
    the 95% band its runs support (:func:`cr_bench.results.stats.profile_band`).

    :param scores: agent -> its returns, shape ``(n_runs, n_tracks)``.
    :param colours: agent -> colour (:func:`agent_colours`; default: the agents in order).
    """
    plt = _pyplot()
    colours = colours or agent_colours(scores)
    lowest = min(float(np.min(r)) for r in scores.values())
    taus = np.linspace(min(-100.0, lowest), 1000.0, 200)
    figure, axes = plt.subplots(figsize=(7, 4))
    for agent, matrix in scores.items():
        profile, low, high, over = profile_band(matrix, taus)
        axes.plot(taus, profile, label=agent + BAND_LABELS[over], color=colours[agent])
        if over != NO_CI:
            axes.fill_between(taus, low, high, alpha=0.2, color=colours[agent])
    axes.axvline(SUCCESS_RETURN, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("return threshold tau")
    axes.set_ylabel("fraction of episodes with return > tau (95% CI)")
    axes.legend()
    _save(figure, path)


def plot_score_vs_frames(table: pd.DataFrame, path: Path, colours: Mapping[str, Any] | None = None) -> None:
    """Mean score vs env frames with its 95% CI band, one line per agent.

    :param table: :func:`cr_bench.results.tables.curve_table`'s columns ``agent, frames, mean, ci_low, ci_high,
        ci_over``.
    :param colours: agent -> colour (:func:`agent_colours`; default: the agents in order).
    """
    plt = _pyplot()
    colours = colours or agent_colours(table["agent"])
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for agent, group in table.groupby("agent", sort=False):
        colour = colours[str(agent)]
        axes.plot(group["frames"], group["mean"], marker="o", label=f"{agent}{_one_run_label(group)}", color=colour)
        axes.fill_between(group["frames"], group["ci_low"], group["ci_high"], alpha=0.2, color=colour)
    axes.set_xlabel("env frames")
    axes.set_ylabel("mean raw return (95% CI over seeds and tracks)")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def _one_run_label(group: pd.DataFrame) -> str:
    """What a curve's legend says of its points with one run (their band redraws tracks)."""
    over = group["ci_over"].fillna(NO_CI)
    tracks, none = int((over == CI_OVER_TRACKS).sum()), int((over == NO_CI).sum())
    if tracks + none == 0:
        return ""
    what = "band over tracks" if none == 0 else "no band" if tracks == 0 else "band over tracks or none"
    if tracks + none == len(group):
        return f" (1 run: {what})"
    return f" (1 run at {tracks + none} of {len(group)} points: {what} there)"


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
