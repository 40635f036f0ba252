"""cr-bench compare --suite S --report-only: the tables of a suite in progress, playing nothing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pandas as pd
import pytest

import cr_bench.evaluation.curves
from cr_bench.agents.registry import resolve_config
from cr_bench.agents.rundir import RunDir
from cr_bench.agents.training import train
from cr_bench.evaluation.curves import ScoreAsTheyLand, cache_file, scored_checkpoints
from cr_bench.results.report import build_report
from cr_bench.runner import compare
from cr_bench.runner.compare import compare_suite
from cr_bench.spec.suite import CurveSettings
from tests.conftest import run_cli
from tests.test_compare import TINY_SET, _suite

CURVE = {"every_frames": 40, "episodes": 2, "track_seed_start": 2_000_000, "backend": "gymnasium"}


def _forbid_playing(monkeypatch: pytest.MonkeyPatch) -> None:
    def played(*args: object, **kwargs: object) -> None:
        raise AssertionError("--report-only trained or played an episode")

    for name in ("train", "resume", "evaluate"):
        monkeypatch.setattr(compare, name, played)
    monkeypatch.setattr(cr_bench.evaluation.curves, "evaluate", played)


def test_report_only_writes_what_finished_and_names_the_runs_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents = [{"name": "beta", "agent": "ppo", "set": TINY_SET}]
    results, runs = tmp_path / "results", tmp_path / "runs"
    compare_suite(_suite(tmp_path, frames=80, curve=CURVE, agents=agents, baselines=[]), 1, results, runs, "c")
    cache = pd.read_csv(runs / "compare" / "tiny" / "beta" / "seed-0" / "curve-gymnasium-2000000-2.csv")
    assert cache["tile_fraction"].between(0, 1).all() and set(cache["lap_completed"]) <= {0.0, 1.0}  # lap metrics
    _forbid_playing(monkeypatch)

    # Every run finished: the report is the finished suite's, with nothing said to be in progress.
    finished = _suite(tmp_path, frames=80, curve=CURVE, agents=agents, baselines=[])
    assert "progress" not in compare_suite(finished, 1, results, runs, "c", report_only=True).read_text()

    # A third seed joins: the two finished runs fill the tables, the third is named.
    suite = _suite(tmp_path, frames=80, seeds=[0, 1, 2], curve=CURVE, agents=agents, baselines=[])
    command = "cr-bench compare --suite s.yaml --workers 2 --report-only"
    summary = compare_suite(suite, 1, results, runs, command, report_only=True)
    text = summary.read_text()
    assert "## In progress" in text and "2 of 3 runs finished and evaluated" in text
    # The runs in the tables were trained and evaluated by the command that continues the suite:
    # the tables name it, and the section in progress names the command that wrote them.
    assert "Produced by `cr-bench compare --suite s.yaml --workers 2`" in text
    assert f"Written by `{command}`" in text
    assert "- beta seed 2: not started" in text
    assert set(pd.read_csv(results / "tiny" / "episodes.csv")["seed"]) == {0, 1}
    curve = pd.read_csv(results / "tiny" / "curve.csv")
    assert list(curve["frames"]) == [40, 80] and set(curve["seeds"]) == {2}
    # report re-renders the tables with today's statistics, and keeps saying the suite is in progress.
    readme = build_report(results, "cr-bench report").read_text()
    assert "In progress" in readme and "- beta seed 2: not started" in readme
    assert "## In progress" in (results / "tiny" / "summary.md").read_text()

    # The budget rises: no run is finished, the curve keeps every checkpoint scored so far.
    suite = _suite(tmp_path, frames=120, seeds=[0, 1], curve=CURVE, agents=agents, baselines=[])
    text = compare_suite(suite, 1, results, runs, "c", report_only=True).read_text()
    assert "0 of 2 runs" in text and "- beta seed 0: 80 of 120 frames" in text
    assert list(pd.read_csv(results / "tiny" / "curve.csv")["frames"]) == [40, 80]


def test_report_only_needs_a_suite(tmp_path: Path) -> None:
    code, _, err = run_cli(["compare", str(tmp_path), "--report-only"])
    assert code == 2 and err == "cr-bench: error: --report-only reports a --suite in progress\n"


def test_checkpoints_are_scored_while_the_run_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's curve grows during its training: a scorer process plays the checkpoints that
    land, with no pass after the training (so a carried run leaves them behind). Stopped (the
    training interrupted), it leaves no process and no half-written cache."""
    monkeypatch.setattr(cr_bench.evaluation.curves, "LIVE_EVERY_FRAMES", 40)  # this run's checkpoints are 40 apart
    settings, run = CurveSettings(**CURVE), tmp_path / "run"
    config = resolve_config("ppo", {**TINY_SET, "checkpoint_every_frames": 40, "keep_checkpoints": True, "frames": 120})
    scorer = ScoreAsTheyLand(run, settings)
    train(config, run, callbacks=[scorer])
    scorer.wait()
    scores = scored_checkpoints(run, settings)
    assert 40 in set(scores["frames"]) and len(scores) % 2 == 0  # whole checkpoints, each on both tracks
    assert not list(run.glob(".*"))  # no temporary file left

    cache_file(run, settings).unlink()
    scorer._start_scorer()
    scorer.stop()
    assert scorer._scorer is None and not multiprocessing.active_children()
    assert not list(run.glob(".*"))
    assert set(scored_checkpoints(run, settings)["frames"]) <= {40, 80, 120}


def test_a_scorer_that_cannot_start_leaves_the_training_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No process to spare (EMFILE, a broken fork server): the training goes on and its
    checkpoints are scored after it, as before live scoring."""
    monkeypatch.setattr(cr_bench.evaluation.curves, "LIVE_EVERY_FRAMES", 40)

    def cannot_start(self: ScoreAsTheyLand) -> None:
        raise OSError("Too many open files")

    monkeypatch.setattr(ScoreAsTheyLand, "_start_scorer", cannot_start)
    settings, run = CurveSettings(**CURVE), tmp_path / "run"
    config = resolve_config("ppo", {**TINY_SET, "checkpoint_every_frames": 40, "keep_checkpoints": True, "frames": 80})
    scorer = ScoreAsTheyLand(run, settings)
    train(config, run, callbacks=[scorer])
    assert RunDir(run).read_progress()["finished"] and not scorer._live
