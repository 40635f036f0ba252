"""What a person sees: estimates from this machine's measured speeds, and no bars in worker processes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cr_bench import progress
from cr_bench.results.throughput import measured_fps
from cr_bench.runner.bench import Measurement, write_results
from tests.conftest import ONE_ENV, TINY, run_cli


def _throughput(folder: Path) -> None:
    """A bench table where gymnasium runs at 100 frames/s and ppo trains on EnvPool at 1,000."""
    write_results(
        [
            Measurement("raw env", "gymnasium", 1, 1, 1000, 8.0),
            Measurement("cr-bench pipeline", "gymnasium", 1, 1, 1000, 10.0),
            Measurement("cr-bench pipeline", "envpool", 8, 2, 4000, 2.0),
            Measurement("train cr-bench ppo", "envpool", 8, 2, 10_000, 10.0),
            Measurement("train SB3 PPO rl-zoo3 recipe", "gymnasium", 8, 2, 1000, 10.0),
        ],
        folder / "results",
        "cr-bench bench",
    )


def test_speeds_come_from_the_bench_table(tmp_path: Path) -> None:
    _throughput(tmp_path)
    table = tmp_path / "results" / "throughput.csv"
    assert progress.training_fps("ppo", "envpool", table) == 1000.0
    assert progress.training_fps("dqn", "envpool", table) is None  # not measured: no guess
    assert progress.training_fps("dqn", "gymnasium", table) == 100.0
    assert progress.evaluation_fps("envpool", 2, table) == 2000.0
    assert progress.evaluation_fps("gymnasium", 1, table) == 100.0
    assert measured_fps("raw env", "gymnasium", table) == 125.0
    assert measured_fps("raw env", "gymnasium", tmp_path / "missing.csv") is None


def test_train_says_how_long_it_will_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 frames on gymnasium at the table's 100 frames/s: about 10 s, said before training."""
    _throughput(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(
        ["train", "ppo", "--frames", "1000", "--out", str(tmp_path / "run"), *ONE_ENV, *TINY["ppo"]]
    )
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("training ppo seed 0 on gymnasium: about 10 s (1,000 frames at 100 frames/s")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_workers_show_no_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal a bar shows, until the process is made quiet (a worker of compare or tune)."""
    monkeypatch.setattr(progress, "_show_bars", True)
    assert not progress.bar(10, "frame", file=_Terminal()).disable
    progress.quiet()
    assert progress.bar(10, "frame", file=_Terminal()).disable
