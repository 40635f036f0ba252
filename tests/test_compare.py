"""cr-bench compare and report: suites, statistics, resumption, outputs (tiny budgets)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cr_bench.envs.baselines import BASELINE_ENV, make_baseline
from cr_bench.envs.wrappers import CAR_RACING_ACTIONS
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.episodes import EpisodeResult, evaluate, write_episodes
from cr_bench.results.report import build_report
from cr_bench.results.stats import bootstrap_ci, iqm, probability_of_improvement, score_matrix
from cr_bench.results.throughput import machine_text
from cr_bench.runner.compare import Job, compare_suite, seed_major, start_order
from cr_bench.spec.run import TEST_TRACK_START, EvalConfig, envpool_available
from cr_bench.spec.suite import load_suite
from tests.conftest import listing, run_cli, untrained_run
from tests.fake_env import TINY_ENV_ID

TINY_SET = {
    "n_envs": 1,
    "vec_env": "dummy",
    "env": {"backend": "gymnasium", "id": TINY_ENV_ID},
    "eval": {"n_envs": 1},
    "torch_threads": 1,
    "algo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1},
}
BACKEND = "gymnasium"  # TinyCarRacing runs on gymnasium


def _suite(tmp_path: Path, **changes: object) -> Path:
    data = {
        "name": "tiny",
        "frames": 120,
        "seeds": [0, 1],
        "agents": [{"name": "beta", "agent": "ppo-beta", "set": TINY_SET}],
        "eval": {"episodes": 2, "backend": BACKEND, "randomized": False, "n_envs": 1},
    }
    data.update(changes)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- Statistics against hand-worked matrices --------------------------------------------------
def test_probability_of_improvement_by_hand() -> None:
    """Per track: {1,4} vs 0 -> 1; {2,5} vs 2 -> (0.5 + 1)/2; {3,6} vs 10 -> 0; mean 7/12."""
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    y = np.array([[0.0, 2.0, 10.0]])
    assert probability_of_improvement(x, y) == pytest.approx(7 / 12)
    assert probability_of_improvement(y, x) == pytest.approx(5 / 12)  # P(X>Y) + P(Y>X) = 1
    with pytest.raises(ValueError):
        probability_of_improvement(x, np.zeros((1, 2)))


def test_bootstrap_by_hand() -> None:
    """One run: its tracks are redrawn. Two runs: bounds stay within the possible IQMs."""
    low, high = bootstrap_ci(np.array([[1.0, 2.0, 3.0, 4.0]]), reps=500)
    assert 1.0 <= low < 2.5 < high <= 4.0
    two = np.array([[0.0, 0.0, 0.0, 0.0], [8.0, 8.0, 8.0, 8.0]])
    # Whole runs redrawn: both run 0 (IQM 0), both run 1 (8) or one each (4), a quarter at each end.
    assert bootstrap_ci(two, reps=500, random_state=1) == (0.0, 8.0)


def test_score_matrix_needs_the_same_tracks() -> None:
    matrix = score_matrix(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1]), np.array([7, 8, 7, 8]))
    np.testing.assert_array_equal(matrix, [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="same tracks"):
        score_matrix(np.array([1.0, 2.0, 3.0]), np.array([0, 0, 1]), np.array([7, 8, 7]))
    with pytest.raises(ValueError, match="once on each"):  # a duplicated (run, track) would hide a cell
        score_matrix(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 0, 1]), np.array([7, 7, 8, 7]))


# -- Suites -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"frames": 0}, "frames >= 1"),
        ({"seeds": []}, "at least one seed"),
        ({"agents": [{"name": "x", "agent": "a2c"}]}, "unknown agent 'a2c'"),
        ({"agents": [{"name": "random", "agent": "ppo"}]}, "must be unique and not"),
        ({"agents": [{"name": "x", "agent": "ppo", "set": {"algo": {"gama": 1}}}]}, "unknown key"),
        ({"eval": {"backend": "envpool", "randomized": True}}, "randomized needs backend gymnasium"),
        ({"baselines": ["human"]}, "unknown baseline"),
        ({"colour": "red"}, "unknown key(s) colour"),
        # Issue 27: one held-out rule (spec.run.check_held_out). Each run's training seeds
        # (seed .. seed + n_envs - 1) never overlap its tracks, and the final eval, a test figure,
        # is not on the validation tracks (the curve may be: it chooses).
        ({"seeds": [1_000_000]}, "eval of beta seed 1000000: track seeds 1,000,000..1,000,001 overlap the"),
        (
            {"eval": {"episodes": 2, "track_seed_start": 1, "backend": BACKEND}},
            "eval of beta seed 1: track seeds 1..2 overlap the training seeds 1..1",
        ),
        (
            {"eval": {"episodes": 2, "track_seed_start": 2_000_000, "backend": BACKEND}},
            "track seeds 2,000,000..2,000,001 reach the validation tracks (2,000,000+), kept for choices",
        ),
        (
            {"curve": {"track_seed_start": 0, "episodes": 2, "backend": BACKEND}},
            "curve of beta seed 0: track seeds 0..1 overlap the training seeds 0..0",
        ),
        ({"curve": {"track_seed_start": -1, "backend": BACKEND}}, "track_seed_start >= 0"),
        ({"agents": [{"name": "beta", "agent": "ppo", "frames": 0}]}, "beta's frames must be between 1 and"),
        ({"eval": {"n_envs": 0}}, "eval.n_envs must be >= 1, got 0"),
        # Issue 27: duplicate seeds trained, then failed with a traceback; a name with a path
        # in it wrote runs and results outside --runs-dir and --results-dir.
        ({"seeds": [0, 0]}, "seeds list seed 0 twice"),
        ({"agents": [{"name": "beta", "agent": "ppo", "seeds": [2, 1, 2]}]}, "beta's seeds list seed 2 twice"),
        ({"name": "../../x"}, "name must be a plain folder name"),
        ({"name": "a/b"}, "name must be a plain folder name"),
        ({"name": ".."}, "name must be a plain folder name"),
        ({"name": ".hidden"}, "name must be a plain folder name"),
        ({"name": ""}, "name must be a plain folder name"),
        ({"agents": [{"name": "../beta", "agent": "ppo"}]}, "agent name must be a plain folder name"),
        ({"agents": [{"name": "", "agent": "ppo"}]}, "agent name must be a plain folder name"),
    ],
)
def test_malformed_suites_are_refused(tmp_path: Path, changes: dict, message: str) -> None:
    path = _suite(tmp_path, **changes)
    with pytest.raises(CrBenchError, match=re.escape(message)):
        load_suite(path)
    before = listing(tmp_path)
    code, _, err = run_cli(["compare", "--suite", str(path), "--results-dir", str(tmp_path / "results"),
                            "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert listing(tmp_path) == before


@pytest.mark.parametrize("start", [2_000_000, 1_000_000])
def test_a_curve_may_play_validation_or_test_tracks(tmp_path: Path, start: int) -> None:
    """A curve chooses (a checkpoint, a budget): validation tracks are its default and the test
    tracks are allowed too; only the training seeds are not."""
    curve = {"every_frames": 40, "episodes": 2, "track_seed_start": start, "backend": BACKEND}
    suite, _ = load_suite(_suite(tmp_path, curve=curve))
    assert suite.curve is not None and list(suite.curve.track_seeds) == [start, start + 1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_suite_on_a_device_this_machine_lacks_leaves_nothing(tmp_path: Path) -> None:
    """Issue 27: --device cuda trained into new run folders, then failed every task; now refused
    in one line before any folder exists."""
    path = _suite(tmp_path)
    before = listing(tmp_path)
    code, _, err = run_cli(["compare", "--suite", str(path), "--device", "cuda", "--results-dir",
                            str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "device cuda: this machine has no CUDA device" in err, err
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--track-seed-start", "2", "--episodes", "5"], "track seeds 2..6 overlap the training seeds 0..3"),
        (["--track-seed-start", "2000000"], "reach the validation tracks (2,000,000+)"),
        pytest.param(
            ["--device", "cuda"],
            "device cuda: this machine has no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device"),
        ),
    ],
)
def test_compare_runs_only_on_held_out_test_tracks(tmp_path: Path, argv: list[str], message: str) -> None:
    """Issue 27: `compare RUN_DIR... --track-seed-start S` evaluated runs on their own training
    tracks; refused in one line, as a suite's eval is, before anything is written."""
    run = untrained_run(tmp_path / "run", model=b"not played")
    before = listing(tmp_path)
    code, _, err = run_cli(["compare", str(run), "--results-dir", str(tmp_path / "results"), *argv])
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert listing(tmp_path) == before


def test_an_agent_may_have_its_own_budget(tmp_path: Path) -> None:
    """An agent's ``frames`` replaces the suite's for its runs only."""
    agents = [{"name": "short", "agent": "ppo", "frames": 50}, {"name": "long", "agent": "ppo"}]
    _, configs = load_suite(_suite(tmp_path, agents=agents))
    assert (configs["short"].frames, configs["long"].frames) == (50, 120)


def test_shipped_suites_load() -> None:
    """benchmarks/smoke.yaml and standard.yaml are valid; standard has every agent and >= 3 seeds."""
    root = Path(__file__).parent.parent / "benchmarks"
    load_suite(root / "smoke.yaml")
    standard, configs = load_suite(root / "standard.yaml")
    assert len(standard.seeds) >= 3
    assert {c.agent for c in configs.values()} >= {"ppo", "ppo-gaussian", "dqn", "recurrent-ppo", "qrdqn"}


def test_baselines_drive_real_carracing_apart() -> None:
    """On a real CarRacing-v3 track the scripted driver collects tiles and the random policy does not."""
    backend = "envpool" if envpool_available() else "gymnasium"
    tracks = EvalConfig(episodes=1, track_seed_start=1_000_000, backend=backend)
    returns = {
        name: evaluate(make_baseline(name, CAR_RACING_ACTIONS, 0), BASELINE_ENV, tracks)[0]
        for name in ("scripted", "random")
    }
    assert returns["random"].true_return < 0 < returns["scripted"].true_return - 100
    assert returns["random"].tile_fraction < returns["scripted"].tile_fraction


def test_suite_runs_summarizes_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny suite writes every output; its summary agrees with episodes.csv; a rerun retrains nothing."""
    monkeypatch.setattr("cr_bench.runner.compare.BASELINE_ENV", dataclasses.replace(BASELINE_ENV, id=TINY_ENV_ID))
    path = _suite(tmp_path)
    results, runs = tmp_path / "results", tmp_path / "runs"
    compare_suite(path, 1, results, runs, "cr-bench compare --suite suite.yaml")
    out = results / "tiny"
    for name in ("episodes.csv", "summary.csv", "summary.md", "learning_curves.png", "score_distributions.png"):
        assert (out / name).is_file(), name
    episodes = pd.read_csv(out / "episodes.csv")
    assert list(episodes.columns) == ["agent", "seed", "condition", "track_seed", "return", "length",
                                      "tile_fraction", "lap_completed", "lap_frames"]  # fmt: skip
    assert set(episodes.agent) == {"beta", "random", "scripted"}
    # Every agent sees the same tracks.
    assert episodes.groupby("agent")["track_seed"].apply(lambda s: tuple(sorted(set(s)))).nunique() == 1

    summary = pd.read_csv(out / "summary.csv").set_index("agent")
    for agent, part in episodes.groupby("agent"):
        returns = part["return"].to_numpy()
        assert summary.loc[agent, "mean"] == pytest.approx(returns.mean(), abs=1e-3)
        assert summary.loc[agent, "std"] == pytest.approx(returns.std(), abs=1e-3)
        assert summary.loc[agent, "median"] == pytest.approx(np.median(returns), abs=1e-3)
        assert summary.loc[agent, "iqm"] == pytest.approx(iqm(returns), abs=1e-3)
        assert summary.loc[agent, "success_rate"] == pytest.approx((returns >= 900).mean())
        assert summary.loc[agent, "iqm_ci_low"] <= summary.loc[agent, "iqm"] + 1e-3
        assert summary.loc[agent, "lap_rate"] == pytest.approx(part["lap_completed"].mean())
        assert summary.loc[agent, "tile_fraction"] == pytest.approx(part["tile_fraction"].mean(), abs=1e-3)
    assert summary.loc["beta", "training_frames"] >= 120
    assert summary.loc["beta", "machines"] == machine_text()  # the compute: what the runs trained on
    assert "P(row > column)" in (out / "summary.md").read_text()
    assert f"| {machine_text()} |" in (out / "summary.md").read_text()
    # The compute of each run, kept beside the tables (report re-renders it from there).
    per_run = pd.read_csv(out / "runs.csv")
    assert list(per_run.columns) == ["agent", "seed", "frames", "wall_seconds", "machines", "refills"]
    assert (
        sorted(per_run.seed) == [0, 1] and (per_run.frames >= 120).all() and (per_run.machines == machine_text()).all()
    )
    assert "## Compute per run" in (out / "summary.md").read_text()

    # Interrupt one run (as if killed mid-training); the rerun resumes only that one.
    finished = runs / "compare" / "tiny" / "beta" / "seed-0"
    interrupted = runs / "compare" / "tiny" / "beta" / "seed-1"
    stamp = (finished / "model.zip").stat().st_mtime_ns
    progress = json.loads((interrupted / "progress.json").read_text())
    (interrupted / "progress.json").write_text(json.dumps({**progress, "frames_done": 60, "finished": False}))
    compare_suite(path, 1, results, runs, "again")
    assert (finished / "model.zip").stat().st_mtime_ns == stamp
    # command.txt says how to make the run again: the suite's command and which run it is
    assert (finished / "command.txt").read_text() == "cr-bench compare --suite suite.yaml (run beta seed 0)\n"
    assert (interrupted / "command.txt").read_text().splitlines()[-1] == "again (run beta seed 1, resumed)"

    # Existing runs compare too, with a person's episodes (cr-bench play --out) on the same
    # track, and report gathers everything into results/README.md.
    human = tmp_path / "human"
    write_episodes(human / "episodes.csv", [EpisodeResult(TEST_TRACK_START, 123.4, 1000, 1000)], BACKEND)
    (human / "command.txt").write_text("cr-bench play --out human\n")
    code, _, err = run_cli(["compare", str(finished), str(interrupted), "--results-dir", str(results),
                            "--episodes", "1", "--backend", BACKEND, "--human", str(human)])  # fmt: skip
    assert code == 0, err
    assert (results / "compare" / "summary.csv").is_file()
    joined = pd.read_csv(results / "compare" / "episodes.csv")
    assert joined[joined.agent == "human"][["seed", "track_seed", "return"]].values.tolist() == [
        [0, TEST_TRACK_START, 123.4]
    ]
    code, _, err = run_cli(["compare", str(finished), "--results-dir", str(results), "--episodes", "2",
                            "--backend", BACKEND, "--human", str(human)])  # fmt: skip
    assert code == 2 and "its tracks are not the comparison's" in err and len(err.splitlines()) == 1
    (human / "episodes.csv").write_text("seed,score\n1000000,5\n")
    code, _, err = run_cli(["compare", str(finished), "--results-dir", str(results), "--episodes", "1",
                            "--backend", BACKEND, "--human", str(human)])  # fmt: skip
    assert code == 2 and "lacks columns ['length', 'return', 'track_seed']" in err and len(err.splitlines()) == 1
    (human / "command.txt").write_text("cr-bench eval runs/x --out human\n")
    code, _, err = run_cli(["compare", str(finished), "--results-dir", str(results), "--episodes", "1",
                            "--backend", BACKEND, "--human", str(human)])  # fmt: skip
    assert code == 2 and "not written by cr-bench play" in err
    readme = build_report(results, "cr-bench report").read_text()
    assert "## tiny: leaderboard" in readme and "](tiny/learning_curves.png)" in readme
    assert "[tiny/runs.csv](tiny/runs.csv)" in readme  # every data file the suite wrote is linked
    assert "curve.csv" not in readme  # and none it did not (no curve section)


def test_randomized_colours_column(tmp_path: Path) -> None:
    """With randomized: true every agent is also evaluated with domain_randomize and both columns are shown."""
    path = _suite(
        tmp_path,
        seeds=[0],
        baselines=[],
        eval={"episodes": 1, "backend": "gymnasium", "randomized": True, "n_envs": 1},
    )
    compare_suite(path, 1, tmp_path / "results", tmp_path / "runs", "test")
    episodes = pd.read_csv(tmp_path / "results" / "tiny" / "episodes.csv")
    assert set(episodes.condition) == {"standard", "randomized"}
    summary = pd.read_csv(tmp_path / "results" / "tiny" / "summary.csv")
    assert {"iqm_randomized", "iqm_ci_low_randomized", "success_rate_randomized"} <= set(summary.columns)


def test_suite_curve_scores_every_checkpoint_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `curve` section keeps a checkpoint every N frames and scores each on the same tracks;
    a rerun plays nothing again."""
    curve = {"every_frames": 40, "episodes": 2, "track_seed_start": 2_000_000, "backend": BACKEND}
    agents = [
        {"name": "beta", "agent": "ppo", "set": TINY_SET},
        {"name": "one-seed", "agent": "ppo", "set": TINY_SET, "seeds": [1]},  # its own seeds
    ]
    suite = _suite(tmp_path, curve=curve, agents=agents, baselines=[])
    compare_suite(suite, 1, tmp_path / "results", tmp_path / "runs", "cr-bench compare --suite s.yaml")
    out = tmp_path / "results" / "tiny"
    table = pd.read_csv(out / "curve.csv")
    beta, one_seed = table[table.agent == "beta"], table[table.agent == "one-seed"]
    assert list(beta["frames"]) == [40, 80, 120] and set(beta["seeds"]) == {2}
    assert list(one_seed["frames"]) == [40, 80, 120] and set(one_seed["seeds"]) == {1}
    assert not (tmp_path / "runs" / "compare" / "tiny" / "one-seed" / "seed-0").exists()
    assert all(table["ci_low"] <= table["mean"]) and all(table["mean"] <= table["ci_high"])
    scores = pd.read_csv(tmp_path / "runs" / "compare" / "tiny" / "beta" / "seed-0" / f"curve-{BACKEND}-2000000-2.csv")
    assert sorted(set(scores["track_seed"])) == [2_000_000, 2_000_001] and len(scores) == 6
    assert "## Score vs env frames" in (out / "summary.md").read_text()
    assert (out / "score_vs_frames.png").stat().st_size > 1000
    readme = build_report(tmp_path / "results", "cr-bench report").read_text()
    links = re.findall(r"\]\(([^)#]+\.(?:png|csv|md))\)", readme)
    assert "tiny/score_vs_frames.png" in links
    assert all((tmp_path / "results" / link).is_file() for link in links), links

    import cr_bench.evaluation.curves

    def no_replay(*args: object, **kwargs: object) -> None:
        raise AssertionError("a scored checkpoint was played again")

    monkeypatch.setattr(cr_bench.evaluation.curves, "evaluate", no_replay)
    compare_suite(suite, 1, tmp_path / "results", tmp_path / "runs", "cr-bench compare --suite s.yaml")
    assert pd.read_csv(out / "curve.csv").equals(table)


class _StochasticOnly:
    """A policy that acts only when asked for its stochastic action (pickled to eval workers)."""

    def predict(
        self, observation: np.ndarray, state: object = None, episode_start: object = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        if deterministic:
            raise AssertionError("asked for the deterministic action")
        return np.zeros((len(observation), 3), dtype=np.float32), None


def test_suite_eval_plays_the_action_the_suite_asks_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A suite's ``eval.deterministic: false`` reaches the evaluation of its runs (it was dropped:
    every run played its deterministic action whatever the suite said)."""
    from cr_bench.agents.registry import resolve_config
    from cr_bench.agents.rundir import RunDir
    from cr_bench.runner.compare import Job, evaluate_job, run_eval_file
    from cr_bench.spec.loader import to_dict, write_yaml

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    config = resolve_config("ppo", TINY_SET)
    write_yaml(run.config, to_dict(config))
    monkeypatch.setattr("cr_bench.runner.compare.load_model", lambda *args, **kwargs: _StochasticOnly())
    settings = EvalConfig(episodes=2, track_seed_start=TEST_TRACK_START, backend=BACKEND, n_envs=1, deterministic=False)
    job = Job("beta", 0, str(run.path), config, settings)
    stochastic = evaluate_job(job, "standard")
    assert list(pd.read_csv(stochastic)["track_seed"]) == [TEST_TRACK_START, TEST_TRACK_START + 1]
    # Deterministic play of the same tracks is cached apart: neither reuses the other's episodes.
    deterministic = dataclasses.replace(job, eval=dataclasses.replace(settings, deterministic=True))
    assert run_eval_file(deterministic, "standard") != stochastic


def test_a_suite_whose_budget_rises_scores_the_longer_trained_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raising a suite's ``frames`` resumes its runs; their test scores must be those of the
    resumed models (the cached scores of the shorter training were reported beside the new
    frame count)."""
    import cr_bench.runner.compare

    played: list[int] = []

    def counting_evaluate(model: object, *args: object, **kwargs: object) -> object:
        played.append(int(model.num_timesteps))  # type: ignore[attr-defined]
        return evaluate(model, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cr_bench.runner.compare, "evaluate", counting_evaluate)
    results, runs = tmp_path / "results", tmp_path / "runs"
    compare_suite(_suite(tmp_path, baselines=[], seeds=[0]), 1, results, runs, "first")
    assert len(played) == 1
    compare_suite(_suite(tmp_path, baselines=[], seeds=[0], frames=240), 1, results, runs, "raised")
    assert len(played) == 2 and played[1] > played[0]
    compare_suite(_suite(tmp_path, baselines=[], seeds=[0], frames=240), 1, results, runs, "again")
    assert len(played) == 2  # nothing new to score


def test_a_suite_trains_every_agents_first_seed_before_any_second(tmp_path: Path) -> None:
    """A long suite stopped part-way has every agent on its first seeds, not one agent on all."""
    agents = [
        {"name": "a", "agent": "ppo", "set": TINY_SET},
        {"name": "b", "agent": "ppo", "set": TINY_SET, "seeds": [5]},
    ]
    suite, _ = load_suite(_suite(tmp_path, agents=agents, seeds=[0, 1, 2]))
    order = [(entry.name, seed) for entry, seed in seed_major(suite)]
    assert order == [("a", 0), ("b", 5), ("a", 1), ("a", 2)]


def test_within_a_seed_the_run_with_most_training_left_starts_first(tmp_path: Path) -> None:
    """A suite resumed near its end had one slow run train alone for hours while the other
    worker idled, because runs started in the suite's agent order. Within a seed, the run with
    the most training time left (frames left at its agent's measured frames/s) now starts
    first; seed-major order still holds, and a finished run comes last."""
    agents = [{"name": "fast", "agent": "ppo", "set": TINY_SET}, {"name": "slow", "agent": "ppo", "set": TINY_SET}]
    suite, configs = load_suite(_suite(tmp_path, agents=agents, seeds=[0, 1], frames=1000))
    jobs = [Job(entry.name, seed, str(tmp_path / entry.name / f"seed-{seed}"), configs[entry.name], None)
            for entry, seed in seed_major(suite)]  # fmt: skip
    trained = {("fast", 0): (1000, 10.0), ("slow", 0): (100, 10.0), ("fast", 1): (100, 1.0)}
    for (name, seed), (frames, seconds) in trained.items():
        run = tmp_path / name / f"seed-{seed}"
        run.mkdir(parents=True)
        progress = {"frames_done": frames, "wall_seconds": seconds, "finished": frames >= 1000}
        (run / "progress.json").write_text(json.dumps(progress))
    # fast: 1,100 frames in 11 s (100/s); slow: 100 in 10 s (10/s). Seed 0: slow has 900 frames
    # left (90 s), fast is done; seed 1: slow has 1,000 (100 s), fast 900 (9 s).
    order = [(job.name, job.seed) for job in start_order(suite, jobs)]
    assert order == [("slow", 0), ("fast", 0), ("slow", 1), ("fast", 1)]


def test_a_carried_suite_continues_on_a_fresh_machine(tmp_path: Path) -> None:
    """With carry: true, a suite's runs travel in results/<suite>/carry (no logs); the same
    command with an empty runs/ (a fresh clone) retrains nothing and replays no evaluation."""
    curve = {"every_frames": 40, "episodes": 1, "track_seed_start": 2_000_000, "backend": BACKEND}
    suite = _suite(tmp_path, seeds=[0], baselines=[], curve=curve, carry=True)
    results = tmp_path / "results"
    compare_suite(suite, 1, results, tmp_path / "runs", "first")
    carried = results / "tiny" / "carry" / "beta" / "seed-0"
    assert (carried / "model.zip").is_file() and not (carried / "tb").exists()
    assert not (carried / "checkpoints").exists()  # every checkpoint is scored: its score travels instead
    fresh = tmp_path / "fresh-runs"
    compare_suite(suite, 1, results, fresh, "again")
    run = fresh / "compare" / "tiny" / "beta" / "seed-0"
    assert (run / "command.txt").read_text().splitlines() == ["first (run beta seed 0)"]  # not trained again
    assert not (run / "tb").exists()  # no training ran here
    first = pd.read_csv(tmp_path / "runs" / "compare" / "tiny" / "beta" / "seed-0" / f"curve-{BACKEND}-2000000-1.csv")
    pd.testing.assert_frame_equal(pd.read_csv(run / f"curve-{BACKEND}-2000000-1.csv"), first)


def test_a_suite_plays_its_baselines_before_training_and_carries_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every table needs the baselines: they play as the suite's first tasks, so a suite stopped
    (here: its one training fails) has them, carried for the next machine."""
    monkeypatch.setattr("cr_bench.runner.compare.BASELINE_ENV", dataclasses.replace(BASELINE_ENV, id=TINY_ENV_ID))

    def fails(job: object) -> None:
        raise CrBenchError("the training failed")

    monkeypatch.setattr("cr_bench.runner.compare.train_job", fails)
    suite = _suite(tmp_path, seeds=[0, 1], baselines=["random", "scripted"], carry=True)
    with pytest.raises(CrBenchError, match="2 task"):
        compare_suite(suite, 1, tmp_path / "results", tmp_path / "runs", "first")
    carried = tmp_path / "results" / "tiny" / "carry" / "baselines"
    played = sorted(str(path.relative_to(carried)) for path in carried.rglob("*.csv"))
    table = "gymnasium-standard-1000000-2.csv"
    assert played == [f"random/seed-0/{table}", f"random/seed-1/{table}", f"scripted/seed-0/{table}"]


def test_a_carried_suite_without_a_curve_carries_no_checkpoint(tmp_path: Path) -> None:
    """No curve scores a checkpoint and a run resumes from its model: results/tuned carried every
    run's 7 MB checkpoint at 200k frames for nothing."""
    agents = [{"name": "beta", "agent": "ppo-beta",
               "set": {**TINY_SET, "checkpoint_every_frames": 32, "keep_checkpoints": True}}]  # fmt: skip
    suite = _suite(tmp_path, seeds=[0], baselines=[], agents=agents, carry=True)
    results, runs = tmp_path / "results", tmp_path / "runs"
    compare_suite(suite, 1, results, runs, "first")
    assert list((runs / "compare" / "tiny" / "beta" / "seed-0" / "checkpoints").glob("*.zip"))  # kept in runs/
    carried = results / "tiny" / "carry" / "beta" / "seed-0"
    assert (carried / "model.zip").is_file() and not (carried / "checkpoints").exists()


def test_report_puts_the_standard_leaderboard_first_beside_the_literature(tmp_path: Path) -> None:
    """results/README.md leads with the standard suite, then the literature's figures and what
    differs from them, then the other suites."""
    for name in ("aaa", "standard"):
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame({"agent": ["x"] * 2, "seed": [0, 1], "condition": "standard", "track_seed": [1, 1],
                      "return": [1.0, 2.0], "length": 1000}).to_csv(folder / "episodes.csv", index=False)  # fmt: skip
        pd.DataFrame({"agent": ["x"]}).to_csv(folder / "summary.csv", index=False)
        (folder / "summary.md").write_text(f"# {name}: leaderboard\n\nProduced by `cr-bench compare`.\n")
    text = build_report(tmp_path, "cr-bench report").read_text()
    standard, literature, other = (text.index(s) for s in ("## standard: leaderboard", "What differs", "## aaa:"))
    assert standard < literature < other
