"""``cr-bench report``: rebuild results/README.md from what the other commands wrote."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cr_bench.agents.registry import get_agent
from cr_bench.agents.rundir import RunDir
from cr_bench.io import atomic_write_text, write_dataframe
from cr_bench.results.plots import agent_colours, plot_score_distributions
from cr_bench.results.publish import RANDOMIZED_EPISODES, published_models
from cr_bench.results.stats import CI_RUNS_PER_TRACK, NO_CI
from cr_bench.results.tables import (
    IN_PROGRESS_HEADING,
    TIME_TO_SCORES,
    checkpoints_markdown,
    curve_markdown,
    improvement_matrix,
    leaderboard_markdown,
    markdown_table,
    percent,
    standard_matrices,
    summarize_agents,
    time_to_text,
)
from cr_bench.results.throughput import MARKDOWN_NAME
from cr_bench.spec.suite import CurveSettings

# Quoted from their sources, not produced by cr-bench. All are on CarRacing-v0, an older
# version of the task (Gymnasium has since changed how a lap completes), so they are a
# reference, not a like-for-like comparison.
PUBLISHED_FIGURES = [
    ("World Models (Ha & Schmidhuber, 2018)", "906 ± 21", "100 trials", "evolution strategy (CMA-ES), many CPUs"),
    ("Attention agent (Tang, Nguyen & Ha, 2020)", "914 ± 15", "100 trials", "evolution strategy (CMA-ES), many CPUs"),
    (
        "rl-zoo3 recurrent PPO (CnnLstm)",
        "862 ± 97",
        "156 episodes (rl-zoo3 benchmark.md)",
        "4M steps without frame skip (4M frames), one run",
    ),
    ("rl-zoo3 PPO", "154 ± 74", "179 episodes (rl-zoo3 benchmark.md)", "4M steps at frame skip 2 (8M frames), one run"),
]


STANDARD_SUITE = "standard"
"""The suite (benchmarks/standard.yaml) whose leaderboard leads results/README.md."""
STANDARD_VS_LITERATURE = (
    "What differs from the figures above: they are on CarRacing-v0, an older version of the task "
    "(Gymnasium has since changed how a lap completes, among other things); each is one training run or one "
    "evolved solution, at budgets from 4M env frames (rl-zoo3's recurrent PPO) and 8M (its PPO) to far more "
    "(the evolution strategies), scored over 100 to 179 episodes on tracks not held out by seed. The standard "
    "leaderboard is CarRacing-v3, with the training runs per agent its *runs* column counts, at the env frames "
    "per run its *train frames* column states, every agent on the same held-out track seeds."
)


def literature_lines() -> list[str]:
    """The published figures (:data:`PUBLISHED_FIGURES`) as a table with its caption."""
    return [
        "Published figures, quoted from their sources (CarRacing-v0, an older version of the task; mean ± std). "
        "CarRacing counts as solved at 900:",
        "",
        *markdown_table(["agent", "score", "evaluation", "training"], PUBLISHED_FIGURES, "lrll"),
        "",
    ]


def _demote(markdown: str) -> str:
    """Push headings one level down so each file becomes a section."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines())


def _relink(markdown: str, folder: str) -> str:
    """Point the links of a file in ``folder`` (its plots, tables) at that folder.

    >>> _relink("![curve](score_vs_frames.png) [top](#top) [x](https://a.b/c) [y](sub/y.md)", "early")
    '![curve](early/score_vs_frames.png) [top](#top) [x](https://a.b/c) [y](sub/y.md)'
    """
    return re.sub(r"\]\((?![a-z]+://|#)([^)/]+)\)", rf"]({folder}/\1)", markdown)


def build_report(results_dir: Path, command: str) -> Path:
    """Write ``results_dir/README.md``: every leaderboard with its plots, tuning studies, throughput."""
    lines = [
        "# Results",
        "",
        f"Rebuilt by `{command}` from the files beside it; each section names the command that produced it.",
        "",
    ]
    lines += headline_section(results_dir)
    # The comparison people cite first, beside the literature; then the others by name.
    suites = sorted(
        (p.parent for p in results_dir.glob("*/summary.md") if p.parent.name != "tune"),
        key=lambda folder: (folder.name != STANDARD_SUITE, folder.name),
    )
    for folder in suites:
        refresh_suite(folder)
        lines += [_relink(_demote((folder / "summary.md").read_text()), folder.name), ""]
        data = [
            f"[{folder.name}/{name}]({folder.name}/{name})"
            for name in ("episodes.csv", "summary.csv", "runs.csv", "curve.csv")
            if (folder / name).is_file()
        ]
        lines += ["Data: " + ", ".join(data) + ".", ""]
        if folder.name == STANDARD_SUITE:
            lines += [*literature_lines(), STANDARD_VS_LITERATURE, ""]
    studies = sorted(results_dir.glob("tune/*/summary.md"))
    if studies:
        lines += ["## Tuning studies", ""]
        lines += [f"- [{p.parent.name}](tune/{p.parent.name}/summary.md)" for p in studies]
        lines.append("")
    throughput = results_dir / MARKDOWN_NAME
    if throughput.is_file():
        lines += [_demote(throughput.read_text()), ""]
    if len(lines) == 4:
        lines += ["Nothing yet: run `cr-bench compare`, `cr-bench tune` or `cr-bench bench` first.", ""]
    path = results_dir / "README.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines))
    return path


def _headline_row(m: dict[str, Any]) -> list[str]:
    low, high = m["iqm_ci"]
    first, last = m["track_seeds"]
    return [
        f"[{m['name']}](models/{m['name']})",
        get_agent(m["agent"]).name,
        f"{m['frames']:,}",
        f"{m['wall_seconds'] / 3600:.2f}",
        str(m["cpus"] or "not recorded"),
        f"{m['episodes']} {m['backend']} ({first}..{last})",
        "deterministic" if m["deterministic"] else "stochastic",
        f"{m['mean']:.1f} ± {m['std']:.1f}",
        f"{m['iqm']:.1f} [{low:.1f}, {high:.1f}]",
        f"{m['success_rate']:.0%}",
        percent(m["lap_rate"]),
        percent(m["tile_fraction"], 1),
        "n/a" if m["randomized"] is None else f"{m['randomized']['mean']:.1f} ± {m['randomized']['std']:.1f}",
        *(_time_to_cell(m, score) for score in TIME_TO_SCORES),
    ]


def _time_to_cell(m: dict[str, Any], score: int) -> str:
    """A published model's time to ``score``: n/a where published before cr-bench measured it."""
    reached = m.get("time_to")
    return "n/a" if reached is None or score not in reached else time_to_text(reached[score])


def headline_section(results_dir: Path) -> list[str]:
    """The published models (results/models): score, cost, published figures, how to reproduce."""
    models = sorted(published_models(results_dir), key=lambda m: -m["mean"])
    if not models:
        return []
    lines = [
        "## Headline agents",
        "",
        "Each agent is one training run, published with `cr-bench publish`. Score: the raw CarRacing-v3 return "
        "(no shaping, no early termination), one episode per held-out track. Wall hours count training only, on "
        "the CPUs listed (from the run's versions.yaml). IQM's 95% CI is a percentile bootstrap over episodes. "
        "*Laps*: episodes that visited every tile (the env ends the lap there); *tiles*: the mean fraction of the "
        "track's tiles visited. *Randomized*: the same tracks with `domain_randomize=True` (colours change every "
        "episode). *To 800*, *to 900*: the env frames and wall hours of training to the first scored checkpoint "
        "(the published model included) whose mean on the validation tracks reaches that score, even if a later "
        "one falls back; only the checkpoints publish scored count (listed under each model: `--curve-points "
        "all` scores every kept one), so the time is as fine as that grid; not reached: none did. n/a: "
        "published before cr-bench measured it.",
        "",
    ]
    header = ["model", "agent", "env frames", "wall hours", "CPUs", "tracks", "policy", "mean ± std", "IQM [95% CI]",
              "success (≥ 900)", "laps", "tiles", "randomized mean ± std",
              *(f"to {score}" for score in TIME_TO_SCORES)]  # fmt: skip
    lines += markdown_table(header, map(_headline_row, models), "llrrrllrrrrrr" + "r" * len(TIME_TO_SCORES))
    lines += ["", *literature_lines()]
    for m in models:
        folder: Path = m["folder"]
        rel = f"models/{folder.name}"
        lines += [f"### {folder.name}", ""]
        if (folder / "lap.gif").is_file():
            lines += [f"![one lap]({rel}/lap.gif)", ""]
        if (folder / "curve.png").is_file():
            lines += [f"![training curve]({rel}/curve.png)", ""]
        if m["randomized"] is not None:
            lines += [_randomized_line(m), ""]
        lines += [_per_track_line(folder, rel), ""]
        if (folder / "checkpoints.csv").is_file():
            table = pd.read_csv(folder / "checkpoints.csv")
            lines += [_checkpoints_caption(m), ""]
            lines += checkpoints_markdown(table)
            lines.append("")
        lines += [
            "Commands: the training segments as run, publishing, the check that re-evaluates the published "
            "model on its tracks, and the recording:",
            "",
            "```",
        ]
        for name in ("command.txt", "publish.txt", None, "lap.gif.txt"):
            if name is None:
                lines.append(f"cr-bench verify {folder}")
            elif (folder / name).is_file():
                lines += [line for line in (folder / name).read_text().splitlines() if line.strip()]
        lines += [
            "```",
            "",
            "To train it again from its resolved config (defaults may have changed since):",
            "",
            "```",
            f"cr-bench train {m['agent']} --config {folder}/config.yaml "
            f"--frames {(m.get('selected') or {}).get('run_frames', m['frames'])} --out runs/{folder.name}",
            "```",
            "",
        ]
    return lines


def _randomized_line(m: dict[str, Any]) -> str:
    """A published model's figures in randomized colours, as one sentence."""
    r = m["randomized"]
    low, high = r["iqm_ci"]
    return (
        f"Randomized colours (`domain_randomize=True`, the same {m['episodes']} test tracks): mean "
        f"{r['mean']:.1f} ± {r['std']:.1f}, IQM {r['iqm']:.1f} [{low:.1f}, {high:.1f}], success "
        f"{r['success_rate']:.0%}, laps {percent(r['lap_rate'])}, tiles {percent(r['tile_fraction'], 1)}."
    )


def _per_track_line(folder: Path, rel: str) -> str:
    """Where a published model fails: links to its score per track and, when its episodes have
    the lap metrics, the laps it completes, the tiles it misses otherwise and its worst tracks."""
    episodes = RunDir(folder).eval_dir / "episodes.csv"
    links = [f"[test tracks]({rel}/{episodes.relative_to(folder).as_posix()})"]
    if (folder / RANDOMIZED_EPISODES).is_file():
        links.append(f"[randomized colours]({rel}/{RANDOMIZED_EPISODES.as_posix()})")
    line = f"Score per track: {', '.join(links)}"
    table = pd.read_csv(episodes)
    if "lap_completed" not in table or table["lap_completed"].isna().any():
        return line + " (return and frames; published before the lap metrics)."
    lap = table["lap_completed"].astype(bool)
    laps, rest = table[lap], table[~lap]
    parts = []
    if len(laps):
        parts.append(
            f"{len(laps)} of {len(table)} tracks end in a lap, scoring {_span(laps['return'], '.1f')} "
            f"(the lap in {_span(laps['lap_frames'], ',.0f')} frames)"
        )
    if len(rest):
        parts.append(
            f"{len(rest)} do not: they visit {_span(rest['tile_fraction'], '.1%')} of their tiles and end after "
            f"{_span(rest['length'], ',')} frames"
        )
    worst = table.nsmallest(min(5, len(table)), "return")
    tracks = [
        f"{row.track_seed} ({row['return']:.1f}, {row.tile_fraction:.1%} of its tiles)" for _, row in worst.iterrows()
    ]
    parts.append("lowest: " + ", ".join(tracks))
    return f"{line} (return, frames, tiles visited, lap, frames to the lap). Where it fails: {'; '.join(parts)}."


def _span(values: pd.Series, spec: str) -> str:
    """``12 to 15``, or ``12`` when every value is the same, each formatted by ``spec``."""
    low, high = format(values.min(), spec), format(values.max(), spec)
    return low if low == high else f"{low} to {high}"


def _checkpoints_caption(m: dict[str, Any]) -> str:
    """What a published model's checkpoints.csv holds: a validation curve, or (published before
    it was one) scores on the first test tracks."""
    curve = m.get("validation_curve")
    if curve is None:
        return (
            "Score vs env frames and wall hours (kept checkpoints on the first tracks of the same held-out set; "
            "the last rows are the published model):"
        )
    first, last = curve["track_seeds"]
    reached = "; ".join(f"time to {score}: {_time_to_cell(m, score)}" for score in TIME_TO_SCORES)
    caption = (
        f"Validation curve, score vs env frames and wall hours: {curve['scored'] - 1} of the {curve['kept']} kept "
        f"checkpoints and the final model (last row), each on the {curve['episodes']} validation tracks "
        f"{first}..{last} ({curve['backend']}), where choices are made (the figures above are on the test tracks). "
        f"From these rows, {reached}."
    )
    selected = m.get("selected")
    if selected:
        caption += (
            f" The published model is the best of the run's own {selected['points']} scored points on the "
            "validation tracks "
            f"(`{selected['model']}`, `cr-bench publish --model best`); the run trained "
            f"{selected['run_frames']:,} frames in {selected['run_wall_seconds'] / 3600:.2f} wall hours."
        )
    return caption


def refresh_suite(folder: Path) -> None:
    """Re-render a suite's ``summary.csv``, ``summary.md``, ``curve.csv`` and, once it is
    finished, ``score_distributions.png`` from the data beside them, with today's statistics:
    its ``episodes.csv`` (every episode compare played), the training cost (``runs.csv`` where
    written) and the curve means compare wrote. A suite written before a statistic changed (a
    CI a single run cannot support, the lap metrics) then reads as a new one would.

    A curve's per-track scores stay in the runs, so a one-seed curve point written before its
    CI was marked gets none (n/a) rather than the zero-width interval it had, and a CI of
    several seeds written then keeps the mark of the bootstrap that drew it. A suite written
    in progress (``compare --report-only``) keeps its section naming the runs not in the tables.
    """
    old_text = (folder / "summary.md").read_text()
    produced = re.search(r"Produced by `([^`]*)`", old_text)
    command = produced.group(1) if produced else "cr-bench compare"
    episodes = pd.read_csv(folder / "episodes.csv")
    old = pd.read_csv(folder / "summary.csv")
    summary = summarize_agents(episodes, pd.DataFrame(columns=["agent", "seed", "frames", "wall_seconds"]))
    cost = [c for c in ("training_frames", "wall_seconds", "frames_per_s", "machines", "refills") if c in old.columns]
    summary = summary.merge(old[["agent", *cost]], on="agent", how="left")
    if {"training_frames", "wall_seconds"} <= set(summary.columns):  # once the mean of each run's ratio
        summary["frames_per_s"] = summary["training_frames"] / summary["wall_seconds"]
    runs = pd.read_csv(folder / "runs.csv") if (folder / "runs.csv").is_file() else None
    text = leaderboard_markdown(summary, improvement_matrix(episodes), folder.name, command, episodes, runs)
    curve_section = old_text.find("## Score vs env frames")
    if (folder / "curve.csv").is_file() and curve_section >= 0:
        table = pd.read_csv(folder / "curve.csv")
        if "ci_over" in table.columns:
            table["ci_over"] = table["ci_over"].fillna(NO_CI)  # "n/a" reads back as NaN
        else:  # written before: only several seeds' CIs stand, redrawn per track
            several = table["seeds"] >= 2
            table["ci_over"] = np.where(several, CI_RUNS_PER_TRACK, NO_CI)
            table.loc[~several, ["ci_low", "ci_high"]] = np.nan
        for column in ("lap_rate", "tile_fraction"):  # scored before the lap metrics: n/a
            if column not in table.columns:
                table[column] = np.nan
        settings = _curve_settings(old_text[curve_section:])
        text += "\n" + "\n".join(curve_markdown(table, settings))
        write_dataframe(folder / "curve.csv", table)
    in_progress = old_text.find(IN_PROGRESS_HEADING)
    if in_progress >= 0:  # the suite runs on: its tables still hold only the runs named finished
        text = text.rstrip("\n") + "\n\n" + old_text[in_progress:]
    write_dataframe(folder / "summary.csv", summary.round(3))
    atomic_write_text(folder / "summary.md", text)
    if in_progress < 0:  # every agent in episodes.csv, in compare's order: the colours it gave them
        colours = agent_colours(dict.fromkeys(episodes["agent"]))
        plot_score_distributions(standard_matrices(episodes), folder / "score_distributions.png", colours)


def _curve_settings(section: str) -> CurveSettings:
    """The curve settings a summary's "Score vs env frames" section states."""
    found = re.search(
        r"checkpoint every ([\d,]+) frames.*? on (\d+) validation tracks \((\d+)\.\.\d+, (\w+)\)", section, re.S
    )
    if found is None:
        return CurveSettings()
    every, episodes, start, backend = found.groups()
    return CurveSettings(int(every.replace(",", "")), int(episodes), int(start), backend)  # type: ignore[arg-type]
