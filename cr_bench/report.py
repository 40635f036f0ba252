"""``cr-bench report``: rebuild results/README.md from what the other commands wrote."""

from __future__ import annotations

from pathlib import Path


def _demote(markdown: str) -> str:
    """Push headings one level down so each file becomes a section."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines())


def _relink(markdown: str, folder: str) -> str:
    """Point the plots of a suite's summary.md at its folder."""
    for name in ("learning_curves.png", "score_distributions.png", "history.png"):
        markdown = markdown.replace(f"]({name})", f"]({folder}/{name})")
    return markdown


def build_report(results_dir: Path, command: str) -> Path:
    """Write ``results_dir/README.md``: every leaderboard with its plots, tuning studies, throughput."""
    lines = [
        "# Results",
        "",
        f"Rebuilt by `{command}` from the files beside it; each section names the command that produced it.",
        "",
    ]
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
    throughput = results_dir / "throughput.md"
    if throughput.is_file():
        lines += [_demote(throughput.read_text()), ""]
    if len(lines) == 4:
        lines += ["Nothing yet: run `cr-bench compare`, `cr-bench tune` or `cr-bench bench` first.", ""]
    path = results_dir / "README.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
