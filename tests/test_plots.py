"""Figures: what each plot draws, read back from the figure before it is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cr_bench.results import plots


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plots would save, kept open to read their lines and bands."""
    figures: list[Any] = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure))
    return figures


def _lines(figure: Any) -> dict[str, Any]:
    return {
        line.get_label(): line.get_color()
        for line in figure.axes[0].get_lines()
        if not line.get_label().startswith("_")
    }


def test_an_agent_keeps_its_colour_in_every_plot(drawn: list[Any], tmp_path: Path) -> None:
    """A suite's figures show different subsets of its agents (no baseline learns; a run in
    progress has a curve but no score yet): each agent is drawn in the colour the suite gives it."""
    colours = plots.agent_colours(["ppo", "dqn", "random"])
    assert len(set(colours.values())) == 3
    curve = np.array([[1.0, 2.0], [3.0, 4.0]])
    plots.plot_learning_curves({"dqn": (np.array([1.0, 2.0]), curve)}, tmp_path / "l.png", colours)
    plots.plot_score_distributions({"random": np.zeros((2, 3)), "dqn": np.ones((2, 3))}, tmp_path / "d.png", colours)
    table = pd.DataFrame({"agent": ["ppo", "dqn"], "frames": [1, 1], "mean": [1.0, 2.0], "ci_low": [0.0, 1.0],
                          "ci_high": [2.0, 3.0], "ci_over": ["runs and tracks", "runs and tracks"]})  # fmt: skip
    plots.plot_score_vs_frames(table, tmp_path / "s.png", colours)
    learning, distributions, frames = map(_lines, drawn)
    assert learning == {"dqn (2 runs: band spans the two)": colours["dqn"]}
    assert distributions == {"random": colours["random"], "dqn": colours["dqn"]}
    assert frames == {"ppo": colours["ppo"], "dqn": colours["dqn"]}


def test_score_distributions_have_the_band_the_runs_support(drawn: list[Any], tmp_path: Path) -> None:
    """Several runs: a band; one run: a band over its tracks, named as one; one episode: none."""
    scores = {
        "a": np.array([[0.0, 500.0], [100.0, 900.0]]),
        "b": np.array([[0.0, 500.0, 900.0]]),
        "c": np.array([[7.0]]),
    }
    plots.plot_score_distributions(scores, tmp_path / "d.png")
    (figure,) = drawn
    assert list(_lines(figure)) == ["a", "b (1 run: band over tracks)", "c (1 episode, no band)"]
    assert len(figure.axes[0].collections) == 2  # the bands of a and b


def test_score_vs_frames_names_the_points_with_one_run(drawn: list[Any], tmp_path: Path) -> None:
    """A curve whose later points have one seed (the other still training) said "1 run" for
    all of it, though its first points had two: the legend says where the band is over tracks."""
    several = plots.CI_OVER_RUNS
    table = pd.DataFrame({"agent": ["a", "a", "b", "c", "c", "d", "d"], "frames": [1, 2, 1, 1, 2, 1, 2],
                          "mean": [1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 2.0], "ci_low": [0.0] * 7, "ci_high": [3.0] * 7,
                          "ci_over": [several, "tracks", "tracks", several, several, "n/a", "runs"]})  # fmt: skip
    plots.plot_score_vs_frames(table, tmp_path / "s.png")
    (figure,) = drawn
    assert list(_lines(figure)) == ["a (1 run at 1 of 2 points: band over tracks there)",
                                    "b (1 run: band over tracks)", "c",
                                    "d (1 run at 1 of 2 points: no band there)"]  # fmt: skip


def test_learning_curves_mark_where_a_run_refilled_its_replay_buffer(drawn: list[Any], tmp_path: Path) -> None:
    """A dqn run resumed without its replay buffer plays random actions until it refills: its
    curve dips there. The plot marks each refill in the agent's colour, so the dip is explained."""
    colours = plots.agent_colours(["ppo", "dqn"])
    curve = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    frames = np.array([1.0, 2.0, 3.0])
    plots.plot_learning_curves({"ppo": (frames, curve), "dqn": (frames, curve)}, tmp_path / "l.png", colours,
                               refills={"dqn": [1.5, 2.5]})  # fmt: skip
    (figure,) = drawn
    marks = [line for line in figure.axes[0].get_lines() if list(line.get_xdata()) in ([1.5, 1.5], [2.5, 2.5])]
    assert len(marks) == 2 and {line.get_color() for line in marks} == {colours["dqn"]}
    assert "dqn: replay buffer refilled" in _lines(figure)


def test_learning_curves_say_what_their_band_is(drawn: list[Any], tmp_path: Path) -> None:
    """Redrawing two runs gives a band that is just their range, not a 95% interval: the legend
    says so, as it says that one run has none; the axis names what is plotted (training episodes,
    under each agent's training conditions), so it is not read as the held-out score."""
    frames = np.array([1.0, 2.0])
    curves = {"a": (frames, np.ones((3, 2))), "b": (frames, np.ones((2, 2))), "c": (frames, np.ones((1, 2)))}
    plots.plot_learning_curves(curves, tmp_path / "l.png")
    (figure,) = drawn
    assert list(_lines(figure)) == ["a", "b (2 runs: band spans the two)", "c (1 run, no band)"]
    assert "training" in figure.axes[0].get_ylabel() and "95%" in figure.axes[0].get_ylabel()
