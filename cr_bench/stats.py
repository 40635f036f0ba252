"""Score statistics, as pure functions over arrays (rliable's definitions)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of ``scores`` (any shape, flattened).

    Same as ``scipy.stats.trim_mean(scores, 0.25, axis=None)``, which rliable uses:
    ``int(0.25 * n)`` scores are cut from each end.

    >>> iqm(np.array([0.0, 1.0, 2.0, 100.0]))
    1.5
    """
    flat = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
    if flat.size == 0:
        raise ValueError("iqm of an empty array")
    cut = int(0.25 * flat.size)
    return float(flat[cut : flat.size - cut].mean())


def summarize(returns: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation (population, as numpy), median and IQM of episode returns."""
    returns = np.asarray(returns, dtype=np.float64)
    return {
        "episodes": int(returns.size),
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "median": float(np.median(returns)),
        "iqm": iqm(returns),
    }


def format_summary(summary: dict[str, float]) -> str:
    """One line: ``mean ± std, median, IQM`` over N episodes."""
    return (
        f"{summary['mean']:.1f} ± {summary['std']:.1f} (mean ± std), median {summary['median']:.1f}, "
        f"IQM {summary['iqm']:.1f} over {summary['episodes']} episodes"
    )


SUCCESS_RETURN = 900.0
"""CarRacing counts as solved at 900; an episode at or above it is a success."""


def success_rate(returns: np.ndarray) -> float:
    """Fraction of episodes at or above :data:`SUCCESS_RETURN`."""
    return float((np.asarray(returns) >= SUCCESS_RETURN).mean())


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic`` by rliable's stratified bootstrap.

    :param scores: shape ``(n_runs, n_tracks)``; the same tracks for every run. As in
        rliable (tasks -> tracks), each bootstrap sample redraws the runs independently
        for each track, with replacement, so every track keeps its weight.
    :return: (low, high).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must have shape (n_runs, n_tracks), got {scores.shape}")
    rng = np.random.default_rng(random_state)
    n_runs, n_tracks = scores.shape
    columns = np.arange(n_tracks)
    samples = np.empty(reps)
    for rep in range(reps):
        rows = rng.integers(0, n_runs, size=(n_runs, n_tracks))
        samples[rep] = statistic(scores[rows, columns])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def episodes_ci(
    returns: np.ndarray, statistic: Callable[[np.ndarray], float] = iqm, confidence: float = 0.95
) -> tuple[float, float]:
    """Bootstrap CI of ``statistic`` over one run's episodes, ``returns`` of shape ``(n_episodes,)``.

    The stratified bootstrap with the episodes as the runs of a single stratum: each sample
    redraws ``n_episodes`` episodes with replacement.
    """
    returns = np.asarray(returns, dtype=np.float64).reshape(-1)
    return stratified_bootstrap_ci(returns[:, None], statistic, confidence=confidence)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y), rliable's definition: the Mann-Whitney statistic per track, averaged over tracks.

    :param x: shape ``(n_runs_x, n_tracks)``; :param y: shape ``(n_runs_y, n_tracks)``.
    Ties count one half.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need (runs, tracks) arrays with the same tracks, got {x.shape} and {y.shape}")
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def score_matrix(returns: np.ndarray, runs: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """Arrange episode returns into ``(n_runs, n_tracks)``; every run must cover the same tracks."""
    run_ids, track_ids = np.unique(runs), np.unique(tracks)
    if len(returns) != len(run_ids) * len(track_ids):
        raise ValueError("every run must be evaluated once on each of the same tracks")
    matrix = np.full((len(run_ids), len(track_ids)), np.nan)
    matrix[np.searchsorted(run_ids, runs), np.searchsorted(track_ids, tracks)] = returns
    if np.isnan(matrix).any():
        raise ValueError("every run must be evaluated once on each of the same tracks")
    return matrix
