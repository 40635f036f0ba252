"""``cr-bench report``: rebuild results/README.md from what the other commands wrote."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from cr_bench.agents.registry import get_agent
from cr_bench.io import atomic_write_text
from cr_bench.results.publish import published_models
from cr_bench.results.tables import checkpoints_markdown, markdown_table, percent
from cr_bench.results.throughput import MARKDOWN_NAME

# Quoted from their sources, not produced by cr-bench. All are on CarRacing-v0, an older
# version of the task (Gymnasium has since changed how a lap completes), so they are a
# reference, not a like-for-like comparison.
PUBLISHED_FIGURES = [
    ("World Models (Ha & Schmidhuber, 2018)", "906 ± 21", "100 trials", "evolution strategy (CMA-ES), many CPUs"),
    ("Attention agent (Tang, Nguyen & Ha, 2020)", "914 ± 15", "100 trials", "evolution strategy (CMA-ES), many CPUs"),
    ("rl-zoo3 recurrent PPO (CnnLstm)", "862 ± 97", "rl-zoo3 benchmark", "4M steps"),
    ("rl-zoo3 PPO", "154 ± 74", "rl-zoo3 benchmark", "4M steps"),
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
    suites = sorted(p.parent for p in results_dir.glob("*/summary.md") if p.parent.name != "tune")
    for folder in suites:
        lines += [_relink(_demote((folder / "summary.md").read_text()), folder.name), ""]
        data = [f"[{folder.name}/{name}]({folder.name}/{name})" for name in ("episodes.csv", "summary.csv")]
        lines += ["Data: " + ", ".join(data) + ".", ""]
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
    ]


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
        "track's tiles visited (n/a: published before cr-bench measured them).",
        "",
    ]
    header = ["model", "agent", "env frames", "wall hours", "CPUs", "tracks", "policy", "mean ± std", "IQM [95% CI]",
              "success (≥ 900)", "laps", "tiles"]  # fmt: skip
    lines += markdown_table(header, map(_headline_row, models), "llrrrllrrrrr")
    lines += [
        "",
        "Published figures, quoted from their sources (CarRacing-v0, an older version of the task; mean ± std). "
        "CarRacing counts as solved at 900:",
        "",
        *markdown_table(["agent", "score", "evaluation", "training"], PUBLISHED_FIGURES, "lrll"),
        "",
    ]
    for m in models:
        folder: Path = m["folder"]
        rel = f"models/{folder.name}"
        lines += [f"### {folder.name}", ""]
        if (folder / "lap.gif").is_file():
            lines += [f"![one lap]({rel}/lap.gif)", ""]
        if (folder / "curve.png").is_file():
            lines += [f"![training curve]({rel}/curve.png)", ""]
        if (folder / "checkpoints.csv").is_file():
            table = pd.read_csv(folder / "checkpoints.csv")
            lines += [
                "Score vs env frames and wall hours (kept checkpoints on the first tracks of the same held-out set; "
                "the last rows are the published model):",
                "",
            ]
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
            f"cr-bench train {m['agent']} --config {folder}/config.yaml --frames {m['frames']} "
            f"--out runs/{folder.name}",
            "```",
            "",
        ]
    return lines
