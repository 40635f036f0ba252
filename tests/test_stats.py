"""Score statistics: the interquartile mean and the episode summary."""

from __future__ import annotations

import numpy as np
import pytest

from cr_bench.results.stats import format_summary, iqm, summarize


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
    from cr_bench.results.stats import success_rate

    assert success_rate(np.array([899.99, 900.0, 950.0, -30.0])) == 0.5


# -- Statistics over (n_runs, n_tracks) matrices, checked against values worked out by hand -----
def test_score_matrix_arranges_runs_by_tracks() -> None:
    """Rows follow the sorted run ids, columns the sorted track seeds, whatever the episode order."""
    from cr_bench.results.stats import score_matrix

    returns = np.array([1.0, 2.0, 3.0, 4.0])
    matrix = score_matrix(returns, runs=np.array([7, 7, 3, 3]), tracks=np.array([10, 11, 11, 10]))
    assert matrix.tolist() == [[4.0, 3.0], [1.0, 2.0]]
    with pytest.raises(ValueError):  # run 3 lacks track 11
        score_matrix(np.array([1.0, 2.0, 3.0]), np.array([7, 7, 3]), np.array([10, 11, 10]))


def test_probability_of_improvement_hand_worked() -> None:
    """Per track: the share of (x run, y run) pairs with x > y, ties one half; then the mean over tracks."""
    from cr_bench.results.stats import probability_of_improvement

    # track 0: 1 > 0 -> 1; track 1: 5 = 5 -> 0.5; mean 0.75
    assert probability_of_improvement(np.array([[1.0, 5.0]]), np.array([[0.0, 5.0]])) == 0.75
    # two runs each: pairs (1, 2) (1, 2) (3, 2) (3, 2) -> 2 of 4 greater
    assert probability_of_improvement(np.array([[1.0], [3.0]]), np.array([[2.0], [2.0]])) == 0.5
    assert np.isnan(probability_of_improvement(np.array([[0.0]]), np.array([[1.0]])))  # one episode each: none
    with pytest.raises(ValueError):
        probability_of_improvement(np.array([[1.0, 2.0]]), np.array([[1.0]]))


def test_bootstrap_redraws_runs_and_tracks() -> None:
    """[[0, 1], [1, 0]]: the lowest mean 0 comes from run 0 twice and track 0 twice (1/4 x 1/4), or
    run 1 twice and track 1 twice: 1/8 of the samples, above the 2.5% tail; the highest 1 likewise."""
    from cr_bench.results.stats import bootstrap_ci

    assert bootstrap_ci(np.array([[0.0, 1.0], [1.0, 0.0]]), statistic=np.mean) == (0.0, 1.0)


def test_bootstrap_hand_worked_bounds() -> None:
    """[[0, 10], [2, 20]]: the lowest mean 0 (run 0 twice, track 0 twice) and the highest 20 (run 1
    twice, track 1 twice) each come in 1/16 of the samples, more than the 2.5% tails."""
    from cr_bench.results.stats import bootstrap_ci

    assert bootstrap_ci(np.array([[0.0, 10.0], [2.0, 20.0]]), statistic=np.mean) == (0.0, 20.0)


def test_bootstrap_is_reproducible() -> None:
    """The same random_state gives the same interval; the interval holds the point estimate."""
    from cr_bench.results.stats import bootstrap_ci

    scores = np.random.default_rng(1).normal(size=(5, 8)) * 100
    first = bootstrap_ci(scores, reps=300, random_state=3)
    assert first == bootstrap_ci(scores, reps=300, random_state=3)
    assert first[0] <= iqm(scores) <= first[1]
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([1.0, 2.0]))


def _two_seeds_apart() -> np.ndarray:
    """Two training runs on 50 tracks: one policy scores about 300 on every track, the other about 850."""
    noise = np.random.default_rng(0).normal(0.0, 20.0, size=(2, 50))
    return np.array([[300.0], [850.0]]) + noise


def test_ci_covers_the_spread_between_seeds() -> None:
    """A run's policy plays every track, so its scores move together: the agent's CI must reach
    each seed's own IQM. Redrawing the runs separately for each track (rliable's stratified
    bootstrap, made for runs trained per task) mixed the two seeds on every sample and gave an
    interval around 575 that neither seed is in."""
    from cr_bench.results.stats import supported_ci

    scores = _two_seeds_apart()
    low, high, over = supported_ci(scores)
    assert over == "runs and tracks"
    assert low <= iqm(scores[0]) and iqm(scores[1]) <= high


def test_improvement_ci_covers_the_spread_between_seeds() -> None:
    """X's seeds straddle Y's (one loses on every track, one wins on every track): P(X > Y) is
    1/2, and its CI must reach both a seed that never wins and one that always does."""
    from cr_bench.results.stats import improvement_ci, probability_of_improvement

    x = _two_seeds_apart()
    y = np.full((2, 50), 575.0)
    assert probability_of_improvement(x, y) == 0.5
    low, high, over = improvement_ci(x, y)
    assert over == "runs and tracks" and low == 0.0 and high == 1.0


def test_profile_band_covers_the_spread_between_seeds() -> None:
    """Half the episodes above 575 come from one seed: the band at 575 reaches 0 and 1."""
    from cr_bench.results.stats import profile_band

    profile, low, high, over = profile_band(_two_seeds_apart(), np.array([575.0]))
    assert over == "runs and tracks" and profile.tolist() == [0.5]
    assert low.tolist() == [0.0] and high.tolist() == [1.0]


def test_episodes_ci_is_the_bootstrap_over_episodes() -> None:
    """One run's episodes: each episode is a run of a single track."""
    from cr_bench.results.stats import bootstrap_ci, episodes_ci

    returns = np.array([0.0, 10.0, 20.0, 30.0, 900.0])
    assert episodes_ci(returns) == bootstrap_ci(returns[:, None])
    assert episodes_ci(np.full(6, 7.0)) == (7.0, 7.0)


def test_summarize_scores_hand_worked() -> None:
    """[[0, 900], [100, 1000]]: mean 500, deviations 500, 400, 400, 500 -> std sqrt(205000);
    IQM cuts one from each end -> mean(100, 900) = 500; two episodes of four reach 900."""
    from cr_bench.results.stats import summarize_scores

    summary = summarize_scores(np.array([[0.0, 900.0], [100.0, 1000.0]]))
    assert summary["episodes"] == 4
    assert summary["mean"] == 500.0 and summary["median"] == 500.0 and summary["iqm"] == 500.0
    assert summary["std"] == pytest.approx(np.sqrt(205_000.0))
    assert summary["success_rate"] == 0.5
    # IQM of the redrawn 2 x 2 matrix: lowest run 0 twice, track 0 twice (all 0: 1/16 of the samples) -> 0,
    # highest run 1 twice, track 1 twice -> 1000
    assert summary["iqm_ci_low"] == 0.0 and summary["iqm_ci_high"] == 1000.0


def test_bootstrap_band_hand_worked() -> None:
    """Point 0 holds 1 and 3: the mean 2, redrawn means 1, 2 or 3 (1/4 each at the ends).
    Point 1 holds only run 0's 2 (run 1 has no episode there): always 2."""
    from cr_bench.results.stats import bootstrap_band

    mean, low, high = bootstrap_band(np.array([[1.0, 2.0], [3.0, np.nan]]))
    assert mean.tolist() == [2.0, 2.0]
    assert low.tolist() == [1.0, 2.0] and high.tolist() == [3.0, 2.0]


def test_performance_profile_hand_worked() -> None:
    """The fraction of episodes strictly above each threshold."""
    from cr_bench.results.stats import performance_profile

    returns = np.array([0.0, 500.0, 950.0, 1000.0])
    assert performance_profile(returns, np.array([-1.0, 0.0, 500.0, 999.0, 1000.0])).tolist() == [
        1.0,
        0.75,
        0.5,
        0.25,
        0.0,
    ]


def test_a_ci_is_only_what_the_data_supports() -> None:
    """Several runs: over runs; one run on several tracks: over its tracks (marked); one
    episode: none (NaN), never a zero-width interval; all-equal scores: the one value."""
    from cr_bench.results.stats import summarize_scores, supported_ci

    runs = np.array([[0.0, 900.0], [100.0, 1000.0]])
    assert supported_ci(runs, np.mean, reps=200)[2] == "runs and tracks"
    low, high, over = supported_ci(np.array([[0.0, 500.0, 1000.0]]), np.mean, reps=200)
    assert over == "tracks" and low < 500.0 < high
    low, high, over = supported_ci(np.array([[692.0]]))
    assert over == "n/a" and np.isnan(low) and np.isnan(high)
    assert supported_ci(np.full((3, 4), 7.0), reps=50) == (7.0, 7.0, "runs and tracks")
    one = summarize_scores(np.array([[692.0]]))
    assert one["mean"] == 692.0 and np.isnan(one["iqm_ci_low"]) and one["ci_over"] == "n/a"


def test_probability_of_improvement_needs_more_than_one_episode_each() -> None:
    from cr_bench.results.stats import probability_of_improvement

    assert np.isnan(probability_of_improvement(np.array([[5.0]]), np.array([[3.0]])))
    assert probability_of_improvement(np.array([[5.0, 1.0]]), np.array([[3.0, 3.0]])) == 0.5  # one run, two tracks
    assert probability_of_improvement(np.array([[5.0], [1.0]]), np.array([[3.0]])) == 0.5  # two runs, one track


def test_one_run_has_no_band() -> None:
    from cr_bench.results.stats import bootstrap_band

    mean, low, high = bootstrap_band(np.array([[1.0, 2.0]]))
    assert mean.tolist() == [1.0, 2.0] and np.isnan(low).all() and np.isnan(high).all()


def test_improvement_ci_is_only_what_the_data_supports() -> None:
    """P(X > Y)'s interval: over runs when both agents have several, over tracks (marked) when
    one has a single run, none for one track of single runs; all-equal scores: the one value."""
    from cr_bench.results.stats import improvement_ci, probability_of_improvement

    x, y = np.array([[0.0, 900.0], [100.0, 1000.0]]), np.array([[50.0, 50.0], [60.0, 950.0]])
    low, high, over = improvement_ci(x, y, reps=500)
    assert over == "runs and tracks" and low <= probability_of_improvement(x, y) <= high and low < high
    # One run of y: track 10 gives 0, 1/2 or 1 as x's runs are redrawn (0 < 50 < 100), track 11 always 1;
    # x's run 0 twice and track 10 twice (1/16 of the samples) gives 0.
    assert improvement_ci(x, y[:1], reps=500) == (0.0, 1.0, "tracks")
    low, high, over = improvement_ci(x[:1, :1], y[:1, :1])
    assert over == "n/a" and np.isnan(low) and np.isnan(high)
    assert improvement_ci(x[:, :1], y[:, :1], reps=200)[2] == "runs and tracks"  # one track, several runs each
    assert improvement_ci(x[:1, :1], y[:, :1])[2] == "n/a"  # one run on one track: nothing to redraw
    assert improvement_ci(np.full((3, 4), 5.0), np.full((2, 4), 5.0), reps=50) == (
        0.5,
        0.5,
        "runs and tracks",
    )  # all ties
    with pytest.raises(ValueError, match="same tracks"):
        improvement_ci(x, np.zeros((2, 3)))


def test_profile_band_is_only_what_the_data_supports() -> None:
    """A score distribution's band: over runs and tracks, over tracks for one run
    (marked), none for one episode; a threshold no redraw can move has a zero-width band."""
    from cr_bench.results.stats import profile_band

    taus = np.array([-1.0, 50.0, 2000.0])
    profile, low, high, over = profile_band(np.array([[0.0, 100.0], [100.0, 0.0]]), taus, reps=300)
    assert over == "runs and tracks" and profile.tolist() == [1.0, 0.5, 0.0]
    assert low.tolist() == [1.0, 0.0, 0.0] and high.tolist() == [1.0, 1.0, 0.0]
    profile, low, high, over = profile_band(np.array([[0.0, 100.0, 200.0]]), taus, reps=300)
    assert over == "tracks" and profile[1] == pytest.approx(2 / 3) and low[1] < profile[1] < high[1]
    profile, low, high, over = profile_band(np.array([[7.0]]), taus)
    assert over == "n/a" and profile.tolist() == [1.0, 0.0, 0.0] and np.isnan(low).all() and np.isnan(high).all()
