"""The throughput table ``cr-bench bench`` writes (``throughput.csv`` and ``throughput.md``):
its row names, and reading a measured speed back from it (for the time estimates)."""

from __future__ import annotations

import csv
import os
import platform
from pathlib import Path

RAW = "raw env"
"""The bare simulator, no cr-bench code."""
RAW_SHARDED = "raw env, a pool per thread"
"""Bare EnvPool split into one single-thread pool per thread, stepped in turn: the layout
of cr-bench's EnvPool backend, and the fastest bare EnvPool measured here."""
PIPELINE = "cr-bench pipeline"
"""The simulator under ppo's observation pipeline (no learning)."""
TRAIN = "train cr-bench ppo"
"""End-to-end training of the default ppo agent."""
LEVER_PREFIX = f"{TRAIN}, lever: "
"""A training of ppo with one speed lever changed (``bench.LEVERS``)."""
PARALLEL_LEVER = "2 trainings at once, 1 torch thread each (frames/s summed)"
"""The lever that trains two copies of ppo at once (what ``compare --workers 2`` and ``tune
--n-jobs 2`` do): its ratio is the two trainings' summed frames/s over one alone's."""
REFERENCE = "train SB3 PPO rl-zoo3 recipe"
"""rl-zoo3's CarRacing-v3 PPO recipe in plain SB3 on gymnasium: the speed reference."""
CSV_NAME, MARKDOWN_NAME = "throughput.csv", "throughput.md"
DEFAULT_TABLE = Path("results") / CSV_NAME
"""Where ``cr-bench bench`` writes by default, relative to the working directory."""


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine's CPU model (Linux's ``model name``), else its architecture: figures from
    Intel and AMD machines of the same kind differ by about 20%."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return f"{value.strip()}, {platform.machine()}"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_text() -> str:
    """``2 CPUs (AMD EPYC, x86_64)``: what a speed or wall time was measured on."""
    return f"{os.cpu_count()} CPUs ({cpu_model()})"


def measured_row(measurement: str, backend: str, table: Path = DEFAULT_TABLE) -> dict[str, str] | None:
    """One row of the table (``None`` if there is no table or no such row)."""
    try:
        with table.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return None
    return next((r for r in rows if r.get("measurement") == measurement and r.get("backend") == backend), None)


def measured_fps(measurement: str, backend: str, table: Path = DEFAULT_TABLE) -> float | None:
    """Frames/s of one row of the table (``None`` if there is no table or no such row)."""
    return _number(measured_row(measurement, backend, table), "frames_per_s")


def measured_work(table: Path = DEFAULT_TABLE) -> float | None:
    """The agent work per frame (:func:`cr_bench.progress.agent_work`) of the config the
    :data:`TRAIN` row trained (``None``: a table written before bench recorded it)."""
    return _number(measured_row(TRAIN, "envpool", table), "agent_work")


def parallel_ratio(table: Path = DEFAULT_TABLE) -> float | None:
    """Summed frames/s of two trainings at once over one alone (:data:`PARALLEL_LEVER`;
    ``None`` if not measured)."""
    return _number(measured_row(LEVER_PREFIX + PARALLEL_LEVER, "envpool", table), "ratio")


def _number(row: dict[str, str] | None, column: str) -> float | None:
    try:
        return None if row is None else float(row[column])
    except (KeyError, ValueError, TypeError):
        return None
