"""Score statistics: the interquartile mean and the episode summary."""

from __future__ import annotations

import numpy as np
import pytest

from cr_bench.stats import format_summary, iqm, summarize


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 2.5),  # cut 1 from each end: mean(2, 3)
        ([4.0, 1.0, 3.0, 2.0], 2.5),  # order does not matter
        ([0.0, 1.0, 2.0, 100.0], 1.5),
        ([100.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, -50.0], 1.5),  # n = 8: cut 2 from each end -> mean(0, 1, 2, 3)
        ([10.0, 1.0, 2.0, 3.0, 1000.0], 5.0),  # n = 5: cut int(1.25) = 1 -> mean(2, 3, 10)
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 70.0], 4.0),  # n = 7: cut 1 -> mean(2..6)
        ([7.0], 7.0),  # n < 4: nothing is cut
        ([1.0, 3.0], 2.0),
        ([1.0, 2.0, 6.0], 3.0),
        ([[1.0, 2.0], [3.0, 4.0]], 2.5),  # any shape is flattened
        ([1, 2, 3, 4], 2.5),  # integers work
    ],
)
def test_iqm_hand_worked(scores: list, expected: float) -> None:
    """iqm cuts int(0.25 n) sorted scores from each end and averages the rest."""
    result = iqm(np.array(scores))
    assert isinstance(result, float)
    assert result == pytest.approx(expected)


def test_iqm_ignores_outliers() -> None:
    """Extreme scores in the outer quarters do not move the IQM."""
    base = np.array([-1e9, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1e9])
    assert iqm(base) == pytest.approx(3.5)
    assert iqm(base * np.array([1e3, 1, 1, 1, 1, 1, 1, 1e3])) == pytest.approx(3.5)


def test_iqm_empty_raises() -> None:
    """The IQM of no scores is an error, not NaN."""
    with pytest.raises(ValueError):
        iqm(np.array([]))


def test_iqm_matches_scipy_trim_mean() -> None:
    """iqm equals scipy.stats.trim_mean(scores, 0.25, axis=None), rliable's definition, for many sizes."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in [*range(1, 18), 23, 100]:
        scores = rng.normal(size=n) * 100
        assert iqm(scores) == pytest.approx(stats.trim_mean(scores, 0.25, axis=None)), n


def test_summarize_fields() -> None:
    """summarize gives the episode count, mean, population std, median and IQM."""
    summary = summarize(np.array([1.0, 2.0, 3.0, 4.0, 10.0]))
    assert set(summary) == {"episodes", "mean", "std", "median", "iqm"}
    assert summary["episodes"] == 5 and isinstance(summary["episodes"], int)
    assert summary["mean"] == pytest.approx(4.0)
    assert summary["std"] == pytest.approx(np.sqrt(10.0))  # ddof = 0: (9 + 4 + 1 + 0 + 36) / 5
    assert summary["median"] == pytest.approx(3.0)
    assert summary["iqm"] == pytest.approx(3.0)  # mean(2, 3, 4)


def test_summarize_std_is_population() -> None:
    """The standard deviation uses ddof = 0, as numpy's default."""
    assert summarize(np.array([0.0, 2.0]))["std"] == pytest.approx(1.0)


def test_summarize_accepts_lists() -> None:
    """Plain sequences are accepted and give the same summary as arrays."""
    assert summarize([900.0, 850.0, 875.0]) == summarize(np.array([900.0, 850.0, 875.0]))


def test_format_summary() -> None:
    """The one-line summary shows mean ± std, median, IQM and the episode count."""
    line = format_summary(summarize(np.array([1.0, 2.0, 3.0, 4.0, 10.0])))
    assert line == "4.0 ± 3.2 (mean ± std), median 3.0, IQM 3.0 over 5 episodes"


def test_success_rate_counts_900_as_solved() -> None:
    from cr_bench.stats import success_rate

    assert success_rate(np.array([899.99, 900.0, 950.0, -30.0])) == 0.5
