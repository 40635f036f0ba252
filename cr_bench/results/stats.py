"""Score statistics, as pure functions over arrays (rliable's definitions).

Every summary of returns that cr-bench prints or writes comes from here: point estimates
(:func:`summarize`, :func:`success_rate`), their confidence intervals (the bootstrap over runs
and tracks, reproducible through ``random_state``), and what the plots draw
(:func:`bootstrap_band`, :func:`performance_profile`). Scores of several runs are arrays
of shape ``(n_runs, n_tracks)``: one row per training run, one column per evaluation track.
Tables (:mod:`cr_bench.results.tables`) and plots (:mod:`cr_bench.results.plots`) only arrange these.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

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
    """Episode count, mean, standard deviation (population, as numpy), median and IQM of
    episode returns (any shape, flattened).

    >>> summarize(np.array([1.0, 2.0, 3.0, 4.0, 10.0]))["iqm"]
    3.0
    """
    returns = np.asarray(returns, dtype=np.float64).reshape(-1)
    return {
        "episodes": int(returns.size),
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "median": float(np.median(returns)),
        "iqm": iqm(returns),
    }


def lap_summary(tile_fraction: Any, lap_frames: Any) -> dict[str, float]:
    """The lap metrics of some episodes: the share of laps completed (``lap_rate``), the mean
    fraction of tiles visited, and the mean frames to a completed lap.

    :param tile_fraction: per episode, NaN where not measured (tables written before the metrics).
    :param lap_frames: per episode, the frames to the lap's end, NaN where no lap was completed.
    :return: every figure NaN when the episodes were not measured; ``lap_frames`` NaN without a lap.

    >>> lap_summary([1.0, 0.5], [850, np.nan])
    {'lap_rate': 0.5, 'tile_fraction': 0.75, 'lap_frames': 850.0}
    """
    tiles = np.asarray(tile_fraction, dtype=np.float64).reshape(-1)
    frames = np.asarray(lap_frames, dtype=np.float64).reshape(-1)
    if tiles.size == 0 or np.isnan(tiles).any():
        return {"lap_rate": math.nan, "tile_fraction": math.nan, "lap_frames": math.nan}
    completed = ~np.isnan(frames)
    return {
        "lap_rate": float(completed.mean()),
        "tile_fraction": float(tiles.mean()),
        "lap_frames": float(frames[completed].mean()) if completed.any() else math.nan,
    }


def format_summary(summary: dict[str, float]) -> str:
    """One line: ``mean ± std, median, IQM`` over N episodes, and the lap metrics if measured."""
    line = (
        f"{summary['mean']:.1f} ± {summary['std']:.1f} (mean ± std), median {summary['median']:.1f}, "
        f"IQM {summary['iqm']:.1f} over {summary['episodes']} episodes"
    )
    if not math.isnan(summary.get("lap_rate", math.nan)):
        line += f"; laps completed {summary['lap_rate']:.0%}, tiles visited {summary['tile_fraction']:.1%}"
    return line


SUCCESS_RETURN = 900.0
"""CarRacing counts as solved at 900; an episode at or above it is a success."""


def success_rate(returns: np.ndarray) -> float:
    """Fraction of episodes (any shape) at or above :data:`SUCCESS_RETURN`.

    >>> success_rate(np.array([899.0, 900.0, 950.0, -30.0]))
    0.5
    """
    return float((np.asarray(returns) >= SUCCESS_RETURN).mean())


def summarize_scores(
    scores: np.ndarray, reps: int = 2000, confidence: float = 0.95, random_state: int | np.random.Generator = 0
) -> dict[str, Any]:
    """Everything a results table shows of one agent's scores, shape ``(n_runs, n_tracks)``.

    :func:`summarize` of all the episodes, their :func:`success_rate`, and the IQM's CI
    (:func:`supported_ci`) as ``iqm_ci_low`` and ``iqm_ci_high``, with what it redraws as
    ``ci_over``. A single run's episodes are ``returns[:, None]`` (each episode a run of one
    track: the bootstrap redraws episodes, as :func:`episodes_ci`).

    >>> summary = summarize_scores(np.array([[0.0, 900.0], [100.0, 1000.0]]))
    >>> summary["mean"], summary["success_rate"], summary["iqm"]
    (500.0, 0.5, 500.0)
    """
    scores = np.asarray(scores, dtype=np.float64)
    low, high, over = supported_ci(scores, iqm, reps=reps, confidence=confidence, random_state=random_state)
    return {
        **summarize(scores),
        "success_rate": success_rate(scores),
        "iqm_ci_low": low,
        "iqm_ci_high": high,
        "ci_over": over,
    }


CI_OVER_RUNS, CI_OVER_TRACKS, NO_CI = "runs and tracks", "tracks", "n/a"
"""What a confidence interval redraws (:func:`supported_ci`): whole runs and the tracks, the
tracks of a single run, or nothing (no interval)."""
CI_RUNS_PER_TRACK = "runs"
"""What an interval saved before cr-bench redrew whole runs redrew: the runs separately for
each track (rliable's stratified bootstrap), which leaves most of the spread between seeds out.
Only files written then hold it (a suite's curve.csv whose per-track scores are gone)."""


def supported_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator = 0,
) -> tuple[float, float, str]:
    """The confidence interval of ``statistic`` that ``scores`` (shape ``(n_runs, n_tracks)``)
    can support, and what it redraws.

    Several runs: :func:`bootstrap_ci` over runs and tracks (:data:`CI_OVER_RUNS`). One run on
    several tracks: the same bootstrap, which can only redraw its tracks (:data:`CI_OVER_TRACKS`;
    it says nothing of the spread between training seeds, so tables mark it). One episode: no
    interval (NaN, :data:`NO_CI`), never a zero-width one.

    >>> supported_ci(np.array([[1.0, 9.0]]), np.mean, reps=200)[2]
    'tracks'
    >>> supported_ci(np.array([[692.0]]))
    (nan, nan, 'n/a')
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must have shape (n_runs, n_tracks), got {scores.shape}")
    if scores.size == 1:
        return math.nan, math.nan, NO_CI
    over = CI_OVER_RUNS if len(scores) >= 2 else CI_OVER_TRACKS
    return (*bootstrap_ci(scores, statistic, reps, confidence, random_state), over)


def bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic`` by the bootstrap over runs and tracks.

    :param scores: shape ``(n_runs, n_tracks)``; the same tracks for every run. Each bootstrap
        sample redraws whole runs with replacement and, independently, the tracks, the same
        drawn tracks for every drawn run: Owen's pigeonhole bootstrap for a runs x tracks
        design. A run's policy plays every track, so its scores move together; rliable's
        stratified bootstrap, which redraws the runs separately for each task (made for runs
        trained per task, as on Atari), would mix the seeds on every sample and leave the
        spread between them out of the interval.
    :param reps: bootstrap samples.
    :param random_state: seed or generator; the same seed gives the same interval.
    :return: (low, high).

    Scores that are all the same have nothing to redraw:

    >>> bootstrap_ci(np.array([[5.0, 5.0], [5.0, 5.0]]), reps=10)
    (5.0, 5.0)
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must have shape (n_runs, n_tracks), got {scores.shape}")
    low, high = _percentile_interval(_bootstrap_samples(scores, statistic, reps, random_state), confidence)
    return float(low), float(high)


def _redraws(shape: tuple[int, int], reps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``reps`` redraws of a ``(n_runs, n_tracks)`` matrix: run indices ``(reps, n_runs, 1)`` and
    track indices ``(reps, 1, n_tracks)``, which index it as ``(reps, n_runs, n_tracks)``."""
    n_runs, n_tracks = shape
    return rng.integers(0, n_runs, size=(reps, n_runs, 1)), rng.integers(0, n_tracks, size=(reps, 1, n_tracks))


def _bootstrap_samples(
    scores: np.ndarray, statistic: Callable[[np.ndarray], Any], reps: int, random_state: int | np.random.Generator
) -> np.ndarray:
    """``statistic`` of ``reps`` redraws of ``scores`` (``(n_runs, n_tracks)``) over runs and
    tracks (:func:`bootstrap_ci`); shape ``(reps, *statistic's shape)``."""
    runs, tracks = _redraws(scores.shape, reps, np.random.default_rng(random_state))
    return np.array([statistic(scores[r, t]) for r, t in zip(runs, tracks, strict=True)])


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[Any, Any]:
    """The percentile interval of bootstrap ``samples`` (along their first axis)."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return low, high


def episodes_ci(
    returns: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    confidence: float = 0.95,
    random_state: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Bootstrap CI of ``statistic`` over one run's episodes, ``returns`` of shape ``(n_episodes,)``.

    :func:`bootstrap_ci` with each episode a run of a single track: each sample redraws
    ``n_episodes`` episodes with replacement.
    """
    returns = np.asarray(returns, dtype=np.float64).reshape(-1)
    return bootstrap_ci(returns[:, None], statistic, confidence=confidence, random_state=random_state)


def bootstrap_band(
    curves: np.ndarray, reps: int = 2000, confidence: float = 0.95, random_state: int | np.random.Generator = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve over runs with a percentile bootstrap band, for score-vs-frames plots.

    :param curves: shape ``(n_runs, n_points)``; NaN where a run has no value at a point
        (ignored by the means).
    :return: ``(mean, low, high)``, each of shape ``(n_points,)``. Each bootstrap sample
        redraws the runs (whole curves) with replacement and takes their NaN-mean per point;
        a single run has no band (``low`` and ``high`` NaN).

    >>> mean, low, high = bootstrap_band(np.array([[1.0, 2.0], [3.0, np.nan]]), reps=50)
    >>> mean.tolist(), high.tolist()
    ([2.0, 2.0], [3.0, 2.0])
    """
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.size == 0:
        raise ValueError(f"curves must have shape (n_runs, n_points), got {curves.shape}")
    rng = np.random.default_rng(random_state)
    n_runs = len(curves)
    if n_runs < 2:  # nothing to redraw: the curve, and no band
        nothing = np.full(curves.shape[1], np.nan)
        return curves[0].copy(), nothing, nothing.copy()
    with warnings.catch_warnings():  # a point that no run reached, or no redrawn run, is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
        samples = np.array([np.nanmean(curves[rng.integers(0, n_runs, n_runs)], axis=0) for _ in range(reps)])
        alpha = (1.0 - confidence) / 2.0
        low, high = np.nanpercentile(samples, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return mean, low, high


def performance_profile(returns: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """rliable's score distribution: the fraction of episodes with a return above each threshold.

    :param returns: episode returns, any shape (flattened). :param taus: shape ``(n_taus,)``.
    :return: shape ``(n_taus,)``.

    >>> performance_profile(np.array([0.0, 500.0, 950.0, 1000.0]), np.array([-1.0, 500.0, 999.0])).tolist()
    [1.0, 0.5, 0.25]
    """
    returns = np.asarray(returns, dtype=np.float64).reshape(-1)
    return np.asarray((returns[None, :] > np.asarray(taus, dtype=np.float64)[:, None]).mean(axis=1))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y), rliable's definition: the Mann-Whitney statistic per track, averaged over tracks.

    :param x: shape ``(n_runs_x, n_tracks)``; :param y: shape ``(n_runs_y, n_tracks)``.
    Ties count one half. NaN for one episode against one (a comparison, not a probability).
    """
    x, y = _score_pair(x, y)
    if x.size == 1 and y.size == 1:
        return math.nan  # one episode against one: no probability to estimate
    return float(np.mean(_mann_whitney(x, y)))


def _score_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two agents' scores as float arrays of shape ``(n_runs, n_tracks)`` on the same tracks."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or x.size == 0 or y.size == 0:
        raise ValueError(f"need (runs, tracks) arrays with the same tracks, got {x.shape} and {y.shape}")
    return x, y


def _mann_whitney(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) per track, ties counting one half: ``x`` of shape ``(..., n_runs_x, n_tracks)``,
    ``y`` of shape ``(..., n_runs_y, n_tracks)``; returns shape ``(..., n_tracks)``."""
    pairs = x[..., :, None, :] - y[..., None, :, :]
    return np.asarray((pairs > 0).mean(axis=(-3, -2)) + 0.5 * (pairs == 0).mean(axis=(-3, -2)))


def improvement_ci(
    x: np.ndarray,
    y: np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator = 0,
) -> tuple[float, float, str]:
    """The confidence interval of :func:`probability_of_improvement` that the runs support, and
    what it redraws (as :func:`supported_ci`).

    Each sample redraws each agent's runs and, the same for both, the tracks (:func:`bootstrap_ci`;
    rliable's independent bootstrap of the two agents, over runs and tracks). Both agents with
    several runs: :data:`CI_OVER_RUNS`. An agent with one run: :data:`CI_OVER_TRACKS` (nothing
    is known of that agent's spread between training seeds). One track and a single run: no
    interval (NaN, :data:`NO_CI`).

    :param x: shape ``(n_runs_x, n_tracks)``; :param y: shape ``(n_runs_y, n_tracks)``.
    """
    x, y = _score_pair(x, y)
    (n_x, n_tracks), n_y = x.shape, len(y)
    if min(n_x, n_y) == 1 and n_tracks == 1:
        return math.nan, math.nan, NO_CI
    rng = np.random.default_rng(random_state)
    runs_x, tracks = _redraws(x.shape, reps, rng)
    runs_y = rng.integers(0, n_y, size=(reps, n_y, 1))
    chunks = range(0, reps, 100)  # bounds the (reps, n_x, n_y, n_tracks) comparisons held at once
    samples = np.concatenate(
        [_mann_whitney(x[runs_x[i : i + 100], tracks[i : i + 100]], y[runs_y[i : i + 100], tracks[i : i + 100]])
         .mean(axis=-1) for i in chunks]
    )  # fmt: skip
    low, high = _percentile_interval(samples, confidence)
    return float(low), float(high), CI_OVER_RUNS if min(n_x, n_y) >= 2 else CI_OVER_TRACKS


def profile_band(
    scores: np.ndarray,
    taus: np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """A score distribution (:func:`performance_profile`) with the band the runs support, as
    rliable draws it.

    :param scores: shape ``(n_runs, n_tracks)``. :param taus: shape ``(n_taus,)``.
    :return: ``(profile, low, high, over)``, each array of shape ``(n_taus,)``. Several runs:
        the bootstrap over runs and tracks (:func:`bootstrap_ci`, :data:`CI_OVER_RUNS`); one
        run: over its tracks (:data:`CI_OVER_TRACKS`); one episode: no band (NaN, :data:`NO_CI`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must have shape (n_runs, n_tracks), got {scores.shape}")
    taus = np.asarray(taus, dtype=np.float64)
    profile = performance_profile(scores, taus)
    if scores.size == 1:
        nothing = np.full(len(taus), np.nan)
        return profile, nothing, nothing.copy(), NO_CI
    samples = _bootstrap_samples(scores, lambda drawn: performance_profile(drawn, taus), reps, random_state)
    low, high = _percentile_interval(samples, confidence)
    return profile, low, high, CI_OVER_RUNS if len(scores) >= 2 else CI_OVER_TRACKS


def score_matrix(returns: np.ndarray, runs: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """Arrange episode returns into ``(n_runs, n_tracks)``; every run must cover the same tracks.

    :param returns, runs, tracks: shape ``(n_episodes,)`` each: an episode's return, run id
        and track seed. Rows and columns follow the sorted run ids and track seeds.

    >>> score_matrix(np.array([1.0, 2.0, 3.0, 4.0]), np.array([7, 7, 3, 3]), np.array([10, 11, 11, 10]))
    array([[4., 3.],
           [1., 2.]])
    """
    run_ids, track_ids = np.unique(runs), np.unique(tracks)
    if len(returns) != len(run_ids) * len(track_ids):
        raise ValueError("every run must be evaluated once on each of the same tracks")
    matrix = np.full((len(run_ids), len(track_ids)), np.nan)
    matrix[np.searchsorted(run_ids, runs), np.searchsorted(track_ids, tracks)] = returns
    if np.isnan(matrix).any():
        raise ValueError("every run must be evaluated once on each of the same tracks")
    return matrix
