"""cr-bench bench: measurements, ratios and the written tables (tiny budgets)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cr_bench.bench import Measurement, _add_ratios, _tree_rss_mb, raw_gymnasium, write_results


def _rows() -> list[Measurement]:
    return [
        Measurement("raw env", "gymnasium", 1, 1, 1000, 5.0),
        Measurement("raw env", "envpool", 8, 2, 8000, 4.0),
        Measurement("cr-bench pipeline", "envpool", 8, 2, 8000, 5.0),
        Measurement("train cr-bench ppo", "envpool", 8, 2, 20000, 20.0, peak_rss_mb=900.0),
        Measurement("train SB3 PPO rl-zoo3 recipe", "gymnasium", 8, 2, 20000, 200.0, peak_rss_mb=2500.0),
    ]


def test_ratios_compare_like_with_like() -> None:
    """Pipeline vs raw env on its backend, EnvPool vs gymnasium, training vs the reference."""
    rows = _rows()
    _add_ratios(rows)
    assert rows[1].ratio == 10.0 and "gymnasium" in rows[1].ratio_to
    assert rows[2].ratio == 0.8 and rows[2].ratio_to.startswith("raw env (envpool, 2 threads)")
    assert rows[3].ratio == 10.0 and rows[3].ratio_to.startswith("train SB3 PPO")
    assert rows[0].ratio is None and rows[4].ratio is None


def test_tables_carry_the_command_ratios_and_targets(tmp_path: Path) -> None:
    rows = _rows()
    _add_ratios(rows)
    csv_path, md_path = write_results(rows, tmp_path, "cr-bench bench --train-frames 20000")
    text = md_path.read_text()
    assert "`cr-bench bench --train-frames 20000`" in text.splitlines()[2]
    assert "keeps >= 80% of raw EnvPool: 80% (met)" in text
    assert ">= 10x the reference's frames/s: 10.0x (met)" in text
    with csv_path.open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["frames_per_s"] for r in table] == ["200.0", "2000.0", "1600.0", "1000.0", "100.0"]
    assert table[3]["peak_rss_mb"] == "900.0"


def test_raw_gymnasium_counts_frames() -> None:
    row = raw_gymnasium(50)
    assert row.frames == 50 and row.seconds > 0 and row.frames_per_s > 0


def test_tree_rss_includes_children() -> None:
    """The memory sampler adds a child's memory (here a child holding 200 MB) to its parent's."""
    code = "import sys, time; block = bytearray(200_000_000); print('ready', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        alone = _tree_rss_mb(child.pid)
        assert alone > 150
        assert _tree_rss_mb(os.getpid()) > alone
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_full_bench_runs(tmp_path: Path) -> None:
    """The whole bench with small budgets (minutes: runs both trainings)."""
    from cr_bench.bench import run_bench

    rows = run_bench(raw_frames=200, train_frames=2000, reference=True, log=lambda _: None)
    assert {r.measurement for r in rows} >= {"raw env", "cr-bench pipeline", "train cr-bench ppo"}
    write_results(rows, tmp_path, "test")
    assert (tmp_path / "throughput.md").is_file()
