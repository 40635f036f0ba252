"""Results tables: the DataFrames, CSV files and markdown that people cite.

Tables arrange scores; every statistic in them comes from :mod:`cr_bench.results.stats`. The
episode tables they read are :mod:`cr_bench.evaluation.episodes`'s (``EPISODE_COLUMNS`` and its
extensions).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cr_bench.evaluation.episodes import CONDITIONS
from cr_bench.io import write_csv
from cr_bench.results.stats import (
    CI_OVER_RUNS,
    CI_OVER_TRACKS,
    CI_RUNS_PER_TRACK,
    NO_CI,
    SUCCESS_RETURN,
    improvement_ci,
    lap_summary,
    probability_of_improvement,
    score_matrix,
    summarize_scores,
    supported_ci,
)

if TYPE_CHECKING:
    from cr_bench.spec.suite import CurveSettings

CHECKPOINT_COLUMNS = ["frames", "wall_hours", "episodes", "mean", "std", "iqm", "success_rate", "model"]
"""checkpoints.csv of a published model: one row per scored checkpoint, the final model last
(``cr-bench publish``: on validation tracks, which its published.yaml names; folders published
before then scored them on the first test tracks)."""
TIME_TO_SCORES = (800, 900)
"""Validation means whose first crossing a published model records (time to 800, time to 900)."""
IN_PROGRESS_HEADING = "## In progress"
"""The section of a suite's summary.md that names its runs still in progress (``compare --report-only``)."""
CURVE_TABLE_COLUMNS = ["agent", "frames", "seeds", "mean", "ci_low", "ci_high", "ci_over", "lap_rate", "tile_fraction"]
"""curve.csv of a suite: mean score and its 95% CI per agent and frame count (``ci_over``: what
the CI redraws, :func:`cr_bench.results.stats.supported_ci`)."""


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str) -> list[str]:
    """The lines of a markdown table; ``align`` has one letter per column, ``l`` or ``r``.

    >>> print("\\n".join(markdown_table(["agent", "mean"], [["ppo", "901.5"]], "lr")))
    | agent | mean |
    |---|---:|
    | ppo | 901.5 |
    """
    if len(align) != len(header):
        raise ValueError(f"align needs one letter per column ({len(header)}), got {align!r}")

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(map(str, cells)) + " |"

    corner = line(header).replace("|  |", "| |")  # an empty header cell: the corner of a matrix
    return [corner, "|" + "".join("---:|" if a == "r" else "---|" for a in align), *map(line, rows)]


# -- Comparisons (cr-bench compare) --------------------------------------------------------
def summarize_agents(episodes: pd.DataFrame, runs: pd.DataFrame, reps: int = 2000) -> pd.DataFrame:
    """One row per agent: score statistics per condition (:func:`cr_bench.results.stats.summarize_scores`
    over its runs x tracks), training cost.

    :param episodes: columns ``SUITE_EPISODE_COLUMNS`` (:mod:`cr_bench.evaluation.episodes`).
    :param runs: columns ``agent, seed, frames, wall_seconds`` of the trained runs (and
        ``machines``; ``refills``, the frames at which a run refilled its replay buffer,
        ``;``-joined; ``refill_frames``, the frames of random actions each refill played; where
        recorded).
    """
    rows = []
    for agent in dict.fromkeys(episodes["agent"]):
        row: dict[str, Any] = {"agent": agent}
        for condition in CONDITIONS:
            part = episodes[(episodes.agent == agent) & (episodes.condition == condition)]
            if part.empty:
                continue
            summary = summarize_scores(episode_matrix(part), reps=reps, random_state=0)
            suffix = "" if condition == "standard" else "_randomized"
            for key in ("mean", "std", "median", "iqm", "iqm_ci_low", "iqm_ci_high", "ci_over", "success_rate"):
                row[key + suffix] = summary[key]
            row[f"mean_length{suffix}"] = part["length"].mean()
            for key, value in table_laps(part).items():
                row[key + suffix] = value
        row["runs"] = int(episodes[episodes.agent == agent]["seed"].nunique())
        trained = runs[runs.agent == agent]
        if not trained.empty:
            row["training_frames"] = float(trained["frames"].mean())
            row["wall_seconds"] = float(trained["wall_seconds"].mean())
            row["frames_per_s"] = float(trained["frames"].sum() / trained["wall_seconds"].sum())
            row["machines"] = _machines_text(trained.get("machines", pd.Series("", index=trained.index)))
            row["refills"] = _refills_text(trained)
        rows.append(row)
    return pd.DataFrame(rows)


def _machines_text(machines: pd.Series) -> str:
    """The machines some runs trained on (each run's ``;``-joined), and how many runs recorded none."""
    joined = machines.fillna("").astype(str)
    named = sorted({m for text in joined for m in text.split("; ")} - {""})
    missing = int((joined == "").sum())
    if missing == len(joined):
        return "not recorded"
    return "; ".join(named + ([f"not recorded for {missing} run{'s' if missing > 1 else ''}"] if missing else []))


def refill_points(value: Any) -> list[int]:
    """The frames at which a run refilled its replay buffer, from its ``refills`` cell (``;``-joined;
    a single one may read back from a CSV as a number, none as NaN or empty).

    >>> refill_points("200000; 250000"), refill_points(200000.0), refill_points(float("nan"))
    ([200000, 250000], [200000], [])
    """
    return [int(float(f)) for f in _text(value).split("; ") if f]


def _frames_list(points: list[int]) -> str:
    return " and ".join(f"{f:,}" for f in points)


def _refills_text(trained: pd.DataFrame) -> str:
    """Which of an agent's runs refilled their replay buffer, at which frames, and what each
    refill cost (empty: none did)."""
    refills = map(refill_points, trained.get("refills", pd.Series("", index=trained.index)))
    text = ", ".join(
        f"seed {seed} at {_frames_list(points)} frames"
        for seed, points in zip(trained["seed"], refills, strict=True)
        if points
    )
    lengths = set(trained.get("refill_frames", pd.Series(dtype=float)).dropna().astype(int)) - {0}
    if text and len(lengths) == 1:
        text += f" (each about {lengths.pop():,} frames of random actions)"
    return text


BOOTSTRAP_TEXT = "a bootstrap over runs and tracks (whole runs redrawn: a run's policy plays every track)"
"""How every CI over runs is drawn (:func:`cr_bench.results.stats.bootstrap_ci`), as captions say it."""

ONE_RUN_NOTE = (
    "† One run: its CI redraws the tracks it played, not training runs (it says nothing of the spread between seeds)."
)
CI_FOOTNOTE = ONE_RUN_NOTE + " n/a: one episode, no interval."
CURVE_NO_CI_NOTE = (
    "n/a: no interval: one seed on one track, or a one-seed point scored before cr-bench drew "
    "intervals for a single run (its per-track scores are not kept in this folder)."
)
PER_TRACK_FOOTNOTE = (
    "‡ Written before cr-bench redrew whole runs: this CI redrew the runs separately for each track "
    "(rliable's stratified bootstrap), which leaves most of the spread between seeds out; the per-track "
    "scores to redraw it are not kept in this folder."
)


def interval(low: float, high: float, over: str | None = CI_OVER_RUNS, decimals: int = 1) -> str:
    """A confidence interval as a table shows it: ``[low, high]``, marked ``†`` when it redraws
    one run's tracks (:func:`cr_bench.results.stats.supported_ci`), ``‡`` when it redrew the runs
    per track (:data:`cr_bench.results.stats.CI_RUNS_PER_TRACK`), ``n/a`` when there is none.

    >>> interval(1.0, 2.0), interval(1.0, 2.0, "tracks"), interval(float("nan"), float("nan"), "n/a")
    ('[1.0, 2.0]', '[1.0, 2.0]†', 'n/a')
    """
    if over == NO_CI or pd.isna(low) or pd.isna(high):
        return "n/a"
    mark = {CI_OVER_TRACKS: "†", CI_RUNS_PER_TRACK: "‡"}.get(str(over), "")
    return f"[{low:.{decimals}f}, {high:.{decimals}f}]{mark}"


def table_laps(episodes: pd.DataFrame) -> dict[str, float]:
    """:func:`cr_bench.results.stats.lap_summary` of an episode table's rows (NaN where it predates the lap metrics)."""
    unknown = np.full(len(episodes), np.nan)
    return lap_summary(episodes.get("tile_fraction", unknown), episodes.get("lap_frames", unknown))


def percent(value: float, decimals: int = 0) -> str:
    """A share as a percentage, ``n/a`` where not measured (NaN).

    >>> percent(0.625), percent(float("nan"))
    ('62%', 'n/a')
    """
    return "n/a" if pd.isna(value) else f"{value:.{decimals}%}"


def episode_matrix(episodes: pd.DataFrame) -> np.ndarray:
    """One agent's episode returns in one condition as runs x tracks (:func:`cr_bench.results.stats.score_matrix`)."""
    return score_matrix(episodes["return"].to_numpy(), episodes["seed"].to_numpy(), episodes["track_seed"].to_numpy())


def standard_matrices(episodes: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each agent's returns on the standard tracks, runs x tracks, in the table's agent order."""
    standard = episodes[episodes.condition == "standard"]
    return {str(agent): episode_matrix(part) for agent, part in standard.groupby("agent", sort=False)}


IMPROVEMENT_COLUMNS = ["x", "y", "p", "ci_low", "ci_high", "ci_over"]
"""P(x > y) on the standard tracks with its 95% CI (``ci_over``: what the CI redraws,
:func:`cr_bench.results.stats.improvement_ci`)."""


def improvement_matrix(episodes: pd.DataFrame, reps: int = 2000) -> pd.DataFrame:
    """P(x > y) and its CI on the standard tracks for every ordered pair of agents (``IMPROVEMENT_COLUMNS``)."""
    matrices = standard_matrices(episodes)
    rows = [
        (x, y, probability_of_improvement(matrices[x], matrices[y]), *improvement_ci(matrices[x], matrices[y], reps))
        for x, y in itertools.permutations(matrices, 2)
    ]
    return pd.DataFrame(rows, columns=IMPROVEMENT_COLUMNS)


LEARNING_CURVES_TEXT = (
    "Learning curves: the true return (the unwrapped env's rewards) of each run's training episodes vs env "
    "frames, the mean over runs with a 95% bootstrap band over runs (two runs: the band spans the two; one "
    "run: none). The episodes are played under each agent's training conditions: exploration (sampled "
    "actions, epsilon-greedy), the recipe's training-only early termination, and replay refills of random "
    "actions (dotted lines). So the curves show that and when each agent learned, not held-out skill: the "
    "leaderboard ranks the agents on held-out tracks, and *Score vs env frames* (where the suite scores "
    "checkpoints) follows the deterministic policy on validation tracks."
)
"""The caption under a comparison's learning curves (:func:`cr_bench.results.plots.plot_learning_curves`)."""


def leaderboard_markdown(
    summary: pd.DataFrame,
    poi: pd.DataFrame,
    name: str,
    command: str,
    episodes: pd.DataFrame,
    runs: pd.DataFrame | None = None,
) -> str:
    """A comparison's summary.md: the leaderboard (:func:`summarize_agents`), the
    probability of improvement (:func:`improvement_matrix`), the two plots and, given the
    trained ``runs`` (:data:`RUN_COLUMNS`), the compute of each (:func:`compute_markdown`)."""
    tracks = episodes[episodes.condition == "standard"]["track_seed"]
    lines = [
        f"# {name}: leaderboard",
        "",
        f"Produced by `{command}`. Raw CarRacing-v3 return on track seeds {tracks.min()}..{tracks.max()} "
        f"({tracks.nunique()} held-out tracks per run); learned policies act deterministically (the random "
        "policy: one seed per run); *mean ± std* over every episode of the agent's runs; IQM with a 95% CI "
        f"by {BOOTSTRAP_TEXT}; success = return >= {SUCCESS_RETURN:.0f}. *Laps*: episodes that "
        "visited every tile (the env ends the lap there); *tiles*: the mean fraction of the track's tiles "
        "visited (n/a: evaluated before cr-bench measured them). *Randomized*: the same "
        "tracks with `domain_randomize=True`. *Train frames* and *wall h* are means per run, *frames/s* their "
        "ratio; *CPUs* the machines the runs trained on (with `--workers 2` two runs shared them).",
        "",
    ]
    header = ["agent", "runs", "mean ± std", "median", "IQM [95% CI]", "success", "laps", "tiles",
              "IQM randomized [95% CI]", "success randomized",
              "train frames", "wall h", "frames/s", "CPUs"]  # fmt: skip
    lines += markdown_table(
        header,
        map(_leaderboard_row, summary.sort_values("iqm", ascending=False).to_dict("records")),
        "l" + "r" * 12 + "l",
    )
    if (summary.get("ci_over", pd.Series(dtype=object)) != CI_OVER_RUNS).any():
        lines += ["", CI_FOOTNOTE]
    refilled = [f"{r['agent']}: {r['refills']}" for r in summary.to_dict("records") if _text(r.get("refills"))]
    if refilled:
        lines += ["", "Resumed without the replay buffer (gigabytes: it does not travel between machines, and "
                  "a hard kill loses it), so it was refilled before training went on: `learning_starts` "
                  "transitions of random actions, without learning, counted in the run's frames: "
                  + "; ".join(refilled) + "."]  # fmt: skip
    lines += ["", "## Probability of improvement", "", "P(row > column) on the standard tracks with its 95% CI by "
              f"{BOOTSTRAP_TEXT}, each agent's runs redrawn; † where one of the two has a single run (the CI says "
              "nothing of that agent's spread between seeds); n/a: one episode against one, or no interval (one "
              "track).", ""]  # fmt: skip
    agents = list(dict.fromkeys(episodes[episodes.condition == "standard"]["agent"]))
    cells = {(r["x"], r["y"]): _improvement_cell(r) for r in poi.to_dict("records")}
    poi_rows = [[x, *(cells.get((x, y), "-") for y in agents)] for x in agents]
    lines += markdown_table(["", *agents], poi_rows, "l" + "r" * len(agents))
    lines += ["", "![learning curves](learning_curves.png)", "", LEARNING_CURVES_TEXT, "",
              "![score distributions](score_distributions.png)", ""]  # fmt: skip
    if runs is not None and not runs.empty:
        lines += [*compute_markdown(runs), ""]
    return "\n".join(lines)


RUN_COLUMNS = ["agent", "seed", "frames", "wall_seconds", "machines", "refills"]
"""runs.csv of a suite: each trained run's env frames, wall seconds of training, the machines
it trained on and the frames at which it refilled its replay buffer (``;``-joined)."""


def compute_markdown(runs: pd.DataFrame) -> list[str]:
    """The "Compute per run" section of a suite's summary.md (``runs``: :data:`RUN_COLUMNS`);
    nothing when no run trained."""
    if runs.empty:
        return []
    rows = []
    for r in runs.to_dict("records"):
        frames, wall = float(r["frames"]), float(r["wall_seconds"])
        refills = refill_points(r.get("refills"))
        rows.append([
            r["agent"], int(r["seed"]), f"{frames:,.0f}", f"{wall / 3600:.2f}",
            f"{frames / wall:,.0f}" if wall > 0 else "-", _text(r.get("machines")) or "not recorded",
            _frames_list(refills) or "-",
        ])  # fmt: skip
    header = ["agent", "seed", "env frames", "wall h", "frames/s", "CPUs", "replay refilled at (frames)"]
    frames, hours = float(runs["frames"].sum()), float(runs["wall_seconds"].sum()) / 3600
    return [
        "## Compute per run",
        "",
        "Each trained run: env frames, wall hours of training (its checkpoints' scoring included, which "
        "shares the cores) and their ratio, the machine it trained on, and the frames at which it resumed "
        "without its replay buffer and refilled it with random actions.",
        "",
        *markdown_table(header, rows, "lrrrrll"),
        "",
        f"Total: {frames:,.0f} env frames in {hours:.2f} wall hours of training over {len(runs)} runs (runs "
        "that trained side by side shared a machine's CPUs).",
    ]


def _improvement_cell(r: dict[str, Any]) -> str:
    """P(x > y) with its CI, as the matrix shows it (n/a: one episode against one)."""
    return "n/a" if pd.isna(r["p"]) else f"{r['p']:.2f} " + interval(r["ci_low"], r["ci_high"], r["ci_over"], 2)


def _text(value: Any) -> str:
    """A table cell's text, empty for a missing value (NaN after a CSV round trip)."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _leaderboard_row(r: dict[str, Any]) -> list[str]:
    if pd.notna(r.get("iqm_randomized")):
        randomized = [
            f"{r['iqm_randomized']:.1f} "
            + interval(r["iqm_ci_low_randomized"], r["iqm_ci_high_randomized"], r.get("ci_over_randomized")),
            f"{r['success_rate_randomized']:.0%}",
        ]
    else:
        randomized = ["-", "-"]
    if pd.notna(r.get("training_frames")):
        cost = [f"{r['training_frames']:,.0f}", f"{r['wall_seconds'] / 3600:.2f}", f"{r['frames_per_s']:,.0f}",
                str(r.get("machines") or "not recorded")]  # fmt: skip
    else:
        cost = ["-", "-", "-", "-"]
    return [
        str(r["agent"]),
        str(r["runs"]),
        f"{r['mean']:.1f} ± {r['std']:.1f}",
        f"{r['median']:.1f}",
        f"{r['iqm']:.1f} " + interval(r["iqm_ci_low"], r["iqm_ci_high"], r.get("ci_over")),
        f"{r['success_rate']:.0%}",
        percent(r.get("lap_rate", np.nan)),
        percent(r.get("tile_fraction", np.nan), 1),
        *randomized,
        *cost,
    ]


def binned_curves(curves: list[pd.DataFrame], bins: int = 20) -> tuple[np.ndarray, np.ndarray] | None:
    """Training curves of several runs on one grid of env frames, for a mean-and-band plot.

    :param curves: each run's curve.csv (``frames``, ``true_return`` columns).
    :return: ``(centres, per_run)``: the bins' centres in env frames, shape ``(bins,)``, and
        each run's mean true return per bin, shape ``(n_runs, bins)`` (NaN where a run had
        no episode); None when no run has an episode.
    """
    top = max((float(c["frames"].max()) for c in curves if not c.empty), default=0.0)
    if top <= 0:
        return None
    edges = np.linspace(0, top, bins + 1)
    per_run = np.array(
        [
            [c[(c.frames > lo) & (c.frames <= hi)]["true_return"].mean() for lo, hi in itertools.pairwise(edges)]
            for c in curves
        ],
        dtype=np.float64,
    )
    return (edges[:-1] + edges[1:]) / 2, per_run


# -- Score vs env frames (suite curves) ----------------------------------------------------
def curve_table(scores: pd.DataFrame, reps: int = 2000) -> pd.DataFrame:
    """Mean score and its 95% CI per agent and frame count, over seeds and tracks.

    :param scores: columns ``agent, seed, frames, track_seed, return``, and where measured the
        lap metrics ``tile_fraction`` and ``lap_completed`` (0 or 1).
    :return: columns :data:`CURVE_TABLE_COLUMNS`; the CI is the bootstrap over runs and tracks
        (:func:`cr_bench.results.stats.bootstrap_ci`) of the mean; the lap rate and mean tile
        fraction are NaN where any episode predates the lap metrics.
    """
    rows = []
    unknown = pd.Series(np.nan, index=scores.index)
    for (agent, frames), group in scores.groupby(["agent", "frames"], sort=True):
        matrix = group.pivot_table(index="seed", columns="track_seed", values="return").dropna(axis=1)
        low, high, over = supported_ci(matrix.to_numpy(), statistic=np.mean, reps=reps)
        laps = [scores.get(name, unknown).loc[group.index] for name in ("lap_completed", "tile_fraction")]
        lap_rate, tiles = (float(values.mean()) if values.notna().all() else np.nan for values in laps)
        mean = float(matrix.to_numpy().mean())
        rows.append([agent, int(frames), len(matrix), mean, low, high, over, lap_rate, tiles])
    return pd.DataFrame(rows, columns=CURVE_TABLE_COLUMNS)


def curve_markdown(table: pd.DataFrame, settings: CurveSettings) -> list[str]:
    """The "Score vs env frames" section of a suite's summary.md (:func:`curve_table`)."""
    tracks = f"{settings.track_seed_start}..{settings.track_seed_start + settings.episodes - 1}"
    lines = [
        "## Score vs env frames",
        "",
        f"Each run's checkpoint every {settings.every_frames:,} frames, deterministic policy, on {settings.episodes} "
        f"validation tracks ({tracks}, {settings.backend}); mean over seeds and tracks with a 95% CI by "
        f"{BOOTSTRAP_TEXT}, the share of laps completed and the mean share of tiles visited (`curve.csv`; n/a: "
        "scored before the lap metrics).",
        "",
    ]
    rows = [
        [r.agent, f"{r.frames:,}", r.seeds, f"{r.mean:.1f} " + interval(r.ci_low, r.ci_high, r.ci_over),
         percent(r.lap_rate), percent(r.tile_fraction, 1)]
        for r in table.itertuples()
    ]  # fmt: skip
    lines += markdown_table(["agent", "frames", "seeds", "mean [95% CI]", "laps", "tiles"], rows, "lrrrrr")
    over = table["ci_over"].fillna(NO_CI)  # "n/a" reads back from a CSV as NaN
    for mark, note in (
        (CI_OVER_TRACKS, ONE_RUN_NOTE),
        (NO_CI, CURVE_NO_CI_NOTE),
        (CI_RUNS_PER_TRACK, PER_TRACK_FOOTNOTE),
    ):
        if (over == mark).any():
            lines += ["", note]
    lines += ["", "![score vs frames](score_vs_frames.png)", ""]
    return lines


# -- Published models (cr-bench publish) ---------------------------------------------------
def checkpoint_row(returns: np.ndarray, frames: int, wall_seconds: float, model: str) -> dict[str, Any]:
    """One row of checkpoints.csv (:data:`CHECKPOINT_COLUMNS`) from a model's episode returns,
    shape ``(n_episodes,)``."""
    summary = summarize_scores(np.asarray(returns, dtype=np.float64)[:, None])
    return {
        "frames": frames,
        "wall_hours": round(wall_seconds / 3600, 3),
        "episodes": summary["episodes"],
        "mean": round(summary["mean"], 2),
        "std": round(summary["std"], 2),
        "iqm": round(summary["iqm"], 2),
        "success_rate": round(summary["success_rate"], 3),
        "model": model,
    }


def write_checkpoint_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """checkpoints.csv: rows of :func:`checkpoint_row`."""
    write_csv(path, CHECKPOINT_COLUMNS, ([row[column] for column in CHECKPOINT_COLUMNS] for row in rows))


def time_to(checkpoints: pd.DataFrame, scores: Sequence[int] = TIME_TO_SCORES) -> dict[int, dict[str, Any] | None]:
    """Time to each score: the env frames and wall hours of the first row, in frames order,
    whose mean reaches it (``>=``); None where no row does, even if a later one fell back below.

    Only the rows given count, so the answer is as fine as the grid of scored checkpoints.

    :param checkpoints: rows of checkpoints.csv (columns ``frames``, ``wall_hours``, ``mean``).

    >>> table = pd.DataFrame({"frames": [300, 100, 200], "wall_hours": [0.3, 0.1, 0.2], "mean": [905.0, 810.0, 790.0]})
    >>> time_to(table)
    {800: {'frames': 100, 'wall_hours': 0.1}, 900: {'frames': 300, 'wall_hours': 0.3}}
    >>> time_to(table, [950])
    {950: None}
    """
    ordered = checkpoints.sort_values("frames", kind="stable")
    reached: dict[int, dict[str, Any] | None] = {}
    for score in scores:
        first = ordered[ordered["mean"] >= score].head(1)
        reached[int(score)] = (
            None
            if first.empty
            else {"frames": int(first["frames"].iloc[0]), "wall_hours": float(first["wall_hours"].iloc[0])}
        )
    return reached


def time_to_text(reached: dict[str, Any] | None) -> str:
    """One entry of :func:`time_to` as tables show it.

    >>> time_to_text({"frames": 1_200_040, "wall_hours": 0.5}), time_to_text(None)
    ('1,200,040 frames, 0.50 h', 'not reached')
    """
    if reached is None:
        return "not reached"
    return f"{reached['frames']:,} frames, {reached['wall_hours']:.2f} h"


def checkpoints_markdown(table: pd.DataFrame) -> list[str]:
    """A published model's checkpoints.csv as a markdown table."""
    rows = [
        [f"{r.frames:,}", f"{r.wall_hours:.2f}", r.episodes, f"{r.mean:.1f} ± {r.std:.1f}", f"{r.iqm:.1f}",
         f"{r.success_rate:.0%}"]
        for r in table.itertuples()
    ]  # fmt: skip
    return markdown_table(["env frames", "wall hours", "tracks", "mean ± std", "IQM", "success"], rows, "rrrrrr")
