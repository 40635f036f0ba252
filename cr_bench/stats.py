"""Score statistics, as pure functions over arrays (rliable's definitions)."""

from __future__ import annotations

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
