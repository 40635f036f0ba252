"""Results tables and atomic writes: small tables worked out by hand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cr_bench.evaluation.episodes import SUITE_EPISODE_COLUMNS
from cr_bench.io import atomic_path, atomic_write_text
from cr_bench.results.tables import (
    CHECKPOINT_COLUMNS,
    binned_curves,
    checkpoint_row,
    curve_table,
    improvement_matrix,
    leaderboard_markdown,
    markdown_table,
    summarize_agents,
)


def _episodes() -> pd.DataFrame:
    """Agent a: runs 0 and 1 on tracks 10 and 11; agent b: run 0 only."""
    rows = [
        ("a", 0, "standard", 10, 0.0, 1000, 0.1, False, None),
        ("a", 0, "standard", 11, 900.0, 1000, 1.0, True, 1000),
        ("a", 1, "standard", 10, 100.0, 1000, 0.2, False, None),
        ("a", 1, "standard", 11, 1000.0, 800, 1.0, True, 800),
        ("b", 0, "standard", 10, 50.0, 1000, 0.15, False, None),
        ("b", 0, "standard", 11, 50.0, 1000, 0.15, False, None),
    ]
    return pd.DataFrame(rows, columns=SUITE_EPISODE_COLUMNS)


def test_markdown_table_aligns_columns() -> None:
    assert markdown_table(["", "x"], [["a", 1], ["b", ""]], "lr") == ["| | x |", "|---|---:|", "| a | 1 |", "| b |  |"]
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [], "l")


def test_summarize_agents_hand_worked() -> None:
    """Agent a's 2 x 2 matrix [[0, 900], [100, 1000]]: mean 500, IQM 500, half the episodes solved."""
    runs = pd.DataFrame({"agent": ["a", "a"], "seed": [0, 1], "frames": [100, 300], "wall_seconds": [10.0, 20.0],
                         "machines": ["2 CPUs (x)", ""]})  # fmt: skip
    summary = summarize_agents(_episodes(), runs).set_index("agent")
    a, b = summary.loc["a"], summary.loc["b"]
    assert (a["mean"], a["median"], a["iqm"], a["success_rate"], a["runs"]) == (500.0, 500.0, 500.0, 0.5, 2)
    assert (a["iqm_ci_low"], a["iqm_ci_high"]) == (0.0, 1000.0)  # run 0 on track 10 only; run 1 on 11
    assert a["mean_length"] == 950.0
    assert (a["lap_rate"], a["tile_fraction"], a["lap_frames"]) == (0.5, pytest.approx(0.575), 900.0)
    assert (b["lap_rate"], b["tile_fraction"]) == (0.0, 0.15) and pd.isna(b["lap_frames"])
    # 400 frames in 30 s: the table's own frames over its wall time, not the mean of 10 and 15 frames/s
    assert (a["training_frames"], a["wall_seconds"], a["frames_per_s"]) == (200.0, 15.0, pytest.approx(400 / 30))
    assert a["machines"] == "2 CPUs (x); not recorded for 1 run"
    assert (b["mean"], b["std"], b["runs"]) == (50.0, 0.0, 1) and pd.isna(b["training_frames"])
    assert "mean_randomized" not in summary.columns


def test_improvement_matrix_and_leaderboard() -> None:
    """a beats b on track 10 in 1 of 2 pairs (0 < 50 < 100) and on track 11 in both: 0.75; b has
    one run, so the interval redraws the tracks (and a's runs: a's run 0 on track 10 alone gives 0) and
    says so."""
    episodes = _episodes()
    poi = improvement_matrix(episodes)
    assert list(poi.columns) == ["x", "y", "p", "ci_low", "ci_high", "ci_over"] and len(poi) == 2  # no agent vs itself
    pairs = poi.set_index(["x", "y"])
    assert tuple(pairs.loc[("a", "b")]) == (0.75, 0.0, 1.0, "tracks")
    assert tuple(pairs.loc[("b", "a")]) == (0.25, 0.0, 1.0, "tracks")
    text = leaderboard_markdown(summarize_agents(episodes, episodes.iloc[:0]), poi, "tiny", "cmd", episodes)
    lines = text.splitlines()
    assert lines[0] == "# tiny: leaderboard" and "track seeds 10..11 (2 held-out tracks per run)" in lines[2]
    untrained = " | - | - | - | - | - | - |"  # no randomized episodes, no training cost
    assert "| a | 2 | 500.0 ± 452.8 | 500.0 | 500.0 [0.0, 1000.0] | 50% | 50% | 57.5%" + untrained in lines
    before = leaderboard_markdown(
        summarize_agents(episodes[episodes.columns[:6]], episodes.iloc[:0]), poi, "t", "c", episodes
    )
    assert "| b | 1 | 50.0 ± 0.0 | 50.0 | 50.0 [50.0, 50.0]† | 0% | n/a | n/a |" in before  # evaluated before the laps
    assert any(line.startswith("† One run: its CI redraws the tracks") for line in lines)
    # The learning curves are training episodes, under each agent's training conditions: the
    # caption says so and where the held-out scores are, so they are not read as a ranking.
    caption = lines[lines.index("![learning curves](learning_curves.png)") + 2]
    assert "training episodes" in caption and "not held-out skill" in caption
    assert (
        "| | a | b |" in lines
        and "| a | - | 0.75 [0.00, 1.00]† |" in lines
        and "| b | 0.25 [0.00, 1.00]† | - |" in lines
    )


def test_checkpoint_row_hand_worked() -> None:
    row = checkpoint_row(np.array([0.0, 900.0, 100.0, 1000.0]), 2_000_000, 7200.0, "model.zip")
    assert list(row) == CHECKPOINT_COLUMNS
    assert row == {"frames": 2_000_000, "wall_hours": 2.0, "episodes": 4, "mean": 500.0, "std": 452.77,
                   "iqm": 500.0, "success_rate": 0.5, "model": "model.zip"}  # fmt: skip


def test_curve_table_hand_worked() -> None:
    """At 100 frames: seeds 0 and 1 on tracks 5 and 6, [[0, 10], [2, 20]] -> mean 8, CI (0, 20):
    seed 0 twice on track 5 twice, or seed 1 twice on track 6 twice, each 1/16 of the samples."""
    scores = pd.DataFrame(
        [("a", 0, 100, 5, 0.0), ("a", 0, 100, 6, 10.0), ("a", 1, 100, 5, 2.0), ("a", 1, 100, 6, 20.0)],
        columns=["agent", "seed", "frames", "track_seed", "return"],
    )
    table = curve_table(scores)
    assert table.values.tolist()[0][:7] == ["a", 100, 2, 8.0, 0.0, 20.0, "runs and tracks"]
    assert table[["lap_rate", "tile_fraction"]].isna().all(axis=None)  # scored before the lap metrics
    # With the lap metrics: 3 of 4 laps completed, tiles (1 + 1 + 1 + 0.6) / 4.
    laps = scores.assign(lap_completed=[1.0, 1.0, 1.0, 0.0], tile_fraction=[1.0, 1.0, 1.0, 0.6])
    assert curve_table(laps)[["lap_rate", "tile_fraction"]].values.tolist() == [[0.75, 0.9]]
    partly = laps.assign(tile_fraction=[1.0, np.nan, 1.0, 0.6])  # one episode predates them: n/a
    assert np.isnan(curve_table(partly)["tile_fraction"].iloc[0])


def test_binned_curves() -> None:
    """Two bins over 0..100 frames: run 0 has episodes in both, run 1 only in the second."""
    curves = [
        pd.DataFrame({"frames": [10, 40, 90], "true_return": [1.0, 3.0, 5.0]}),
        pd.DataFrame({"frames": [100], "true_return": [7.0]}),
    ]
    binned = binned_curves(curves, bins=2)
    assert binned is not None
    centres, per_run = binned
    assert centres.tolist() == [25.0, 75.0]
    assert per_run[0].tolist() == [2.0, 5.0] and np.isnan(per_run[1, 0]) and per_run[1, 1] == 7.0
    assert binned_curves([pd.DataFrame({"frames": [], "true_return": []})]) is None


def test_atomic_write_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    """A writer that fails midway leaves the previous file and no temporary file."""
    path = tmp_path / "summary.md"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_atomic_writers_of_one_path_do_not_share_a_temporary_file(tmp_path: Path) -> None:
    """Issue 27: the temporary name was fixed (summary.tmp.md), so a second writer of the same
    path wrote into the first one's file and the first one's rename then failed."""
    path = tmp_path / "summary.md"
    with atomic_path(path) as first:
        first.write_text("first")
        with atomic_path(path) as second:
            assert second != first and second.parent == first.parent == tmp_path
            assert first.suffix == second.suffix == ".md"  # libraries that add a missing suffix keep the name
            second.write_text("second")
        assert path.read_text() == "second" and first.read_text() == "first"
    assert path.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_atomic_write_syncs_the_file_before_renaming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renamed before its data reached the disk, a file may be empty after a power loss."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        real_fsync(fd)

    def replace(source: Any, target: Any) -> None:
        events.append(("replace", Path(target).name))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_text(tmp_path / "note.txt", "hello\n")
    assert (tmp_path / "note.txt").read_text() == "hello\n"
    (written,) = [name for kind, name in events if kind == "fsync" and name != tmp_path.name]
    assert events.index(("fsync", written)) < events.index(("replace", "note.txt"))
    assert written != "note.txt" and written.endswith(".txt")
    assert events[-1] == ("fsync", tmp_path.name)  # the folder, so the rename itself is durable


def test_one_episode_agents_get_no_interval_and_no_probability() -> None:
    """An agent with one episode (one run, one track) shows n/a, never a point as a CI; so does
    its P(improvement) against another single episode; a one-seed curve is marked."""
    rows = [
        ("a", 0, "standard", 10, 800.0, 1000, 0.9, False, None),
        ("b", 0, "standard", 10, 50.0, 1000, 0.1, False, None),
    ]
    episodes = pd.DataFrame(rows, columns=SUITE_EPISODE_COLUMNS)
    summary = summarize_agents(episodes, episodes.iloc[:0])
    poi = improvement_matrix(episodes).set_index(["x", "y"])
    assert pd.isna(poi.loc[("a", "b"), "p"]) and poi.loc[("a", "b"), "ci_over"] == "n/a"
    lines = leaderboard_markdown(summary, poi.reset_index(), "t", "c", episodes).splitlines()
    assert any(line.startswith("| a | 1 | 800.0 ± 0.0 | 800.0 | 800.0 n/a |") for line in lines), lines
    assert "| a | - | n/a |" in lines
    scores = pd.DataFrame({"agent": "a", "seed": 0, "frames": [100, 100, 200], "track_seed": [1, 2, 1],
                           "return": [1.0, 3.0, 5.0]})  # fmt: skip
    table = curve_table(scores, reps=50).set_index("frames")
    assert table.loc[100, "ci_over"] == "tracks" and table.loc[200, "ci_over"] == "n/a"
    assert pd.isna(table.loc[200, "ci_low"])


def test_report_rerenders_a_suite_written_before_honest_intervals(tmp_path: Path) -> None:
    """A suite summary.md with a one-run agent shown as [x, x] (as results/early had): report
    re-renders it from its episodes.csv with the interval marked, its cost columns kept, and
    redraws its score distributions with the bands of today's bootstrap."""
    from cr_bench.results.report import refresh_suite

    folder = tmp_path / "old"
    folder.mkdir()
    episodes = _episodes()[SUITE_EPISODE_COLUMNS[:6]]  # before the lap metrics
    episodes.to_csv(folder / "episodes.csv", index=False)
    pd.DataFrame({"agent": ["a", "b"], "training_frames": [200.0, None], "wall_seconds": [10.0, None],
                  "frames_per_s": [20.0, None]}).to_csv(folder / "summary.csv", index=False)  # fmt: skip
    (folder / "summary.md").write_text("# old: leaderboard\n\nProduced by `cr-bench compare --suite x.yaml`.\n"
                                       "| b | 1 | 50.0 ± 0.0 | 50.0 | 50.0 [50.0, 50.0] | 0% |\n")  # fmt: skip
    refresh_suite(folder)
    text = (folder / "summary.md").read_text()
    assert "Produced by `cr-bench compare --suite x.yaml`" in text and "[50.0, 50.0] |" not in text
    assert "| b | 1 | 50.0 ± 0.0 | 50.0 | 50.0 [50.0, 50.0]† | 0% | n/a | n/a |" in text
    assert "| a | 2 | 500.0 ± 452.8 | 500.0 | 500.0 [0.0, 1000.0] | 50% | n/a | n/a | - | - | 200 | 0.00 | 20 |" in text
    assert (folder / "score_distributions.png").stat().st_size > 0


def test_report_rerenders_a_curve_written_before_the_lap_metrics(tmp_path: Path) -> None:
    """`cr-bench report` died with a traceback on results/early: its curve.csv has no lap_rate
    or tile_fraction (scored before cr-bench measured them). They read as n/a. Its CI redrew the
    runs per track (``ci_over`` "runs" then) and cannot be redrawn (the per-track scores are
    gone): it is marked as such, not passed off as the bootstrap over runs and tracks."""
    from cr_bench.results.report import refresh_suite

    folder = tmp_path / "old"
    folder.mkdir()
    _episodes()[SUITE_EPISODE_COLUMNS[:6]].to_csv(folder / "episodes.csv", index=False)
    pd.DataFrame({"agent": ["a", "b"]}).to_csv(folder / "summary.csv", index=False)
    pd.DataFrame({"agent": ["a"], "frames": [100], "seeds": [2], "mean": [500.0], "ci_low": [450.0],
                  "ci_high": [550.0], "ci_over": ["runs"]}).to_csv(folder / "curve.csv", index=False)  # fmt: skip
    (folder / "summary.md").write_text(
        "# old: leaderboard\n\nProduced by `cr-bench compare`.\n\n## Score vs env frames\n\n"
        "Each run's checkpoint every 100 frames, deterministic policy, on 5 validation tracks "
        "(2000000..2000004, envpool); mean over seeds.\n"
    )
    refresh_suite(folder)
    text = (folder / "summary.md").read_text()
    assert "| a | 100 | 2 | 500.0 [450.0, 550.0]‡ | n/a | n/a |" in text and "\n‡ Written before" in text


def test_a_suite_s_curve_reads_the_same_from_compare_and_from_report(tmp_path: Path) -> None:
    """compare wrote summary.md's curve from unrounded means and curve.csv rounded to 2 places;
    report re-renders from curve.csv, so a mean of 524.2534 read 524.3, then 524.2. One table now."""
    from types import SimpleNamespace

    from cr_bench.results.report import refresh_suite
    from cr_bench.runner.compare import write_curve
    from cr_bench.spec.suite import CurveSettings

    folder = tmp_path / "suite"
    folder.mkdir()
    _episodes().to_csv(folder / "episodes.csv", index=False)
    pd.DataFrame({"agent": ["a", "b"]}).to_csv(folder / "summary.csv", index=False)
    (folder / "summary.md").write_text("# suite: leaderboard\n\nProduced by `cr-bench compare`.\n")
    jobs = [SimpleNamespace(run_dir=str(tmp_path / f"seed-{seed}"), name="a", seed=seed) for seed in (0, 1)]
    scores = pd.DataFrame({"frames": [100, 100], "track_seed": [2_000_000, 2_000_001],
                           "return": [524.2534, 524.2534], "tile_fraction": [0.5, 0.5],
                           "lap_completed": [0.0, 0.0]})  # fmt: skip
    write_curve(jobs, CurveSettings(every_frames=100, episodes=2), folder, lambda run, settings: scores)  # type: ignore[arg-type]
    written = (folder / "summary.md").read_text()
    refresh_suite(folder)
    section = written[written.index("## Score vs env frames") :]
    assert section in (folder / "summary.md").read_text()


def test_the_leaderboard_says_which_runs_refilled_their_replay_buffer(tmp_path: Path) -> None:
    """A dqn run resumed on a fresh machine trained on without its replay buffer (it does not
    travel): the table names the run and the frames, and report's re-rendering keeps it."""
    from cr_bench.results.report import refresh_suite

    episodes = _episodes()
    runs = pd.DataFrame({"agent": ["a", "a"], "seed": [0, 1], "frames": [100, 300], "wall_seconds": [10.0, 10.0],
                         "refills": ["", "200; 250"], "refill_frames": [40, 40]})  # fmt: skip
    summary = summarize_agents(episodes, runs)
    refilled = "seed 1 at 200 and 250 frames (each about 40 frames of random actions)"
    assert summary.set_index("agent").loc["a", "refills"] == refilled
    read_back = summarize_agents(episodes, runs.assign(refills=[None, 200.0]).drop(columns="refill_frames"))
    assert read_back.set_index("agent").loc["a", "refills"] == "seed 1 at 200 frames"  # as a CSV may give it back
    text = leaderboard_markdown(summary, improvement_matrix(episodes), "tiny", "cmd", episodes)
    assert "a: " + refilled in text and "counted in the run's frames" in text
    plain = leaderboard_markdown(summarize_agents(episodes, runs.drop(columns="refills")), improvement_matrix(episodes),
                                 "tiny", "cmd", episodes)  # fmt: skip
    assert "replay buffer" not in plain
    episodes.to_csv(tmp_path / "episodes.csv", index=False)
    summary.to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "summary.md").write_text(text)
    refresh_suite(tmp_path)
    assert "a: " + refilled in (tmp_path / "summary.md").read_text()


def test_the_compute_of_each_run_is_listed_with_the_total(tmp_path: Path) -> None:
    """The issue asks for wall hours per run: each run's frames, wall hours, frames/s, machine
    and replay refills, and the suite's total; report re-renders it from runs.csv."""
    from cr_bench.results.report import refresh_suite
    from cr_bench.results.tables import compute_markdown

    runs = pd.DataFrame({"agent": ["a", "a", "b"], "seed": [0, 1, 0], "frames": [1_000_000, 500_000, 100],
                         "wall_seconds": [3600.0, 7200.0, 3600.0], "machines": ["2 CPUs (x)", "", ""],
                         "refills": ["", "200000; 250000", "50"]})  # fmt: skip
    lines = compute_markdown(runs)
    assert lines[0] == "## Compute per run"
    assert "| a | 0 | 1,000,000 | 1.00 | 278 | 2 CPUs (x) | - |" in lines
    assert "| a | 1 | 500,000 | 2.00 | 69 | not recorded | 200,000 and 250,000 |" in lines
    assert any(
        line.startswith("Total: 1,500,100 env frames in 4.00 wall hours of training over 3 runs") for line in lines
    )
    assert compute_markdown(runs.iloc[:0]) == []  # baselines only: nothing trained
    episodes = _episodes()
    episodes.to_csv(tmp_path / "episodes.csv", index=False)
    summarize_agents(episodes, runs).to_csv(tmp_path / "summary.csv", index=False)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "summary.md").write_text("# t: leaderboard\n\nProduced by `cmd`.\n")
    refresh_suite(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| a | 1 | 500,000 | 2.00 | 69 | not recorded | 200,000 and 250,000 |" in text
    assert "| b | 0 | 100 | 1.00 | 0 | not recorded | 50 |" in text  # one refill reads back from the CSV as a number


def test_report_keeps_the_marks_of_a_curve_read_back_from_csv(tmp_path: Path) -> None:
    """curve.csv holds "n/a" where a one-seed point has no interval; read back, pandas makes it
    NaN, and the re-rendered summary lost the footnote saying why those points had none."""
    from cr_bench.results.report import refresh_suite

    _episodes().to_csv(tmp_path / "episodes.csv", index=False)
    pd.DataFrame({"agent": ["a", "b"]}).to_csv(tmp_path / "summary.csv", index=False)
    curve = pd.DataFrame({"agent": ["a", "a"], "frames": [100, 200], "seeds": [1, 2], "mean": [5.0, 6.0],
                          "ci_low": [np.nan, 4.0], "ci_high": [np.nan, 8.0], "ci_over": ["n/a", "runs and tracks"],
                          "lap_rate": [0.0, 0.0], "tile_fraction": [0.5, 0.5]})  # fmt: skip
    curve.to_csv(tmp_path / "curve.csv", index=False)
    (tmp_path / "summary.md").write_text(
        "# t: leaderboard\n\nProduced by `cmd`.\n\n## Score vs env frames\n\nEach run's checkpoint every 100 "
        "frames, deterministic policy, on 5 validation tracks (2000000..2000004, envpool); mean.\n"
    )
    refresh_suite(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| a | 100 | 1 | 5.0 n/a | 0% | 50.0% |" in text and "\nn/a: no interval" in text
    assert pd.read_csv(tmp_path / "curve.csv", keep_default_na=False)["ci_over"].tolist() == ["n/a", "runs and tracks"]


def test_report_gives_frames_per_second_as_the_table_s_own_ratio(tmp_path: Path) -> None:
    """A summary.csv written when frames/s was the mean of each run's ratio (12.5 for 100/10 and
    300/20) is re-rendered as the table's frames over its wall time: 200 / 15 -> 13."""
    from cr_bench.results.report import refresh_suite

    episodes = _episodes()
    episodes.to_csv(tmp_path / "episodes.csv", index=False)
    pd.DataFrame({"agent": ["a", "b"], "training_frames": [200.0, None], "wall_seconds": [15.0, None],
                  "frames_per_s": [12.5, None]}).to_csv(tmp_path / "summary.csv", index=False)  # fmt: skip
    (tmp_path / "summary.md").write_text("# t: leaderboard\n\nProduced by `cmd`.\n")
    refresh_suite(tmp_path)
    assert pd.read_csv(tmp_path / "summary.csv").set_index("agent").loc["a", "frames_per_s"] == pytest.approx(13.333)
    assert "| 200 | 0.00 | 13 |" in (tmp_path / "summary.md").read_text()
