"""cr-bench tune: search spaces, the study loop, storage, workers and outputs (tiny budgets)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from cr_bench import tuning
from cr_bench.agents import AGENTS, resolve_config
from cr_bench.envpool_backend import envpool_available
from cr_bench.errors import CrBenchError
from tests.conftest import run_cli

BACKEND = "envpool" if envpool_available() else "gymnasium"
TINY_BASE = {
    "n_envs": 1,
    "vec_env": "dummy",
    "env": {"backend": BACKEND},
    "algo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1},
    "eval": {"n_envs": 1},
}
SMALL_SPACE = {
    "replace": True,
    "params": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
        "clip_range": {"type": "categorical", "choices": [0.1, 0.2]},
    },
}


def _settings(tmp_path: Path, trials: int, **changes: Any) -> tuning.TuneSettings:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SMALL_SPACE))
    settings = tuning.TuneSettings(
        agent="ppo-beta",
        trials=trials,
        frames_per_trial=160,
        eval_episodes=1,
        evals_per_trial=1,
        study_name="tiny",
        results_dir=str(tmp_path / "results"),
        runs_dir=str(tmp_path / "runs"),
        eval_backend=BACKEND,
        space_file=str(space),
        base_config={"agent": "ppo-beta", **TINY_BASE},
        command="cr-bench tune ppo-beta --trials 3",
    )
    return dataclasses.replace(settings, **changes)


def _study(settings: tuning.TuneSettings) -> optuna.Study:
    return optuna.load_study(study_name=settings.study_name, storage=tuning.make_storage(settings))


@pytest.mark.parametrize("agent", list(AGENTS))
def test_every_sampled_point_is_a_valid_config(agent: str) -> None:
    """20 random points of each default space convert to configs that resolve (and keep the policy)."""
    space = tuning.load_space(agent)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    n_envs = resolve_config(agent).n_envs
    for _ in range(20):
        values = tuning.sample(study.ask(), space)
        config = resolve_config(agent, tuning.to_overrides(values, n_envs))
        assert config.policy == resolve_config(agent).policy  # unsearched parts are kept
        for name, value in values.items():
            section = config.env if name in tuning.ENV_PARAMS else None
            got = getattr(section, name) if section else config.algo[name]
            assert got == value or (name == "batch_size" and got == config.algo["n_steps"] * n_envs)


def test_space_files_narrow_replace_and_drop(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("params:\n  learning_rate: {type: float, low: 0.0001, high: 0.0002}\n  ent_coef: null\n")
    narrowed = tuning.load_space("ppo", path)
    assert narrowed["learning_rate"].high == 0.0002 and "ent_coef" not in narrowed and "n_epochs" in narrowed
    path.write_text("replace: true\nparams:\n  n_epochs: {type: int, low: 2, high: 4}\n")
    assert list(tuning.load_space("ppo", path)) == ["n_epochs"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("params:\n  learning_rat: {type: float, low: 0.1, high: 1}\n", "unknown parameter 'learning_rat'"),
        ("params:\n  gamma: {type: float, low: 1, high: 0.5}\n", "needs low <= high"),
        ("params:\n  gamma: {type: normal}\n", "type must be float, int or categorical"),
        ("params:\n  gamma: {type: categorical, choices: []}\n", "non-empty choices"),
        ("parameters: {}\n", "unknown key(s) parameters"),
    ],
)
def test_bad_space_files_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(CrBenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tuning.load_space("ppo", path)


def test_study_completes_and_writes_every_output(tmp_path: Path) -> None:
    """A 3-trial study finishes and writes trials.csv, best.yaml, summary.md and history.png."""
    settings = _settings(tmp_path, trials=3)
    tuning.tune(settings)
    out = settings.out_dir
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0] == "number,state,value,clip_range,learning_rate,frames,wall_seconds"
    assert len(rows) == 4 and all(",COMPLETE," in row for row in rows[1:])
    assert all(int(row.split(",")[-2]) >= 160 for row in rows[1:])
    summary = (out / "summary.md").read_text()
    assert "cr-bench tune ppo-beta --trials 3" in summary and "3 complete" in summary
    assert (out / "history.png").stat().st_size > 1000
    best = yaml.safe_load((out / "best.yaml").read_text())
    study = _study(settings)
    assert best["algo"]["learning_rate"] == study.best_params["learning_rate"]
    assert best["algo"]["clip_range"] == study.best_params["clip_range"]
    assert best["policy"]["features_extractor"] == "six_conv"  # unsearched policy settings are kept

    # best.yaml round-trips through train.
    run = tmp_path / "best-run"
    code, _, err = run_cli(
        ["train", "ppo-beta", "--config", str(out / "best.yaml"), "--frames", "80", "--out", str(run)]
    )
    assert code == 0, err
    trained = yaml.safe_load((run / "config.yaml").read_text())
    assert trained["algo"] == best["algo"] and trained["env"] == best["env"]

    # Running the same study again with a larger total continues it.
    tuning.tune(dataclasses.replace(settings, trials=4))
    assert len(_study(settings).trials) == 4


def test_interrupted_study_resumes_without_losing_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in trial 2 keeps trials 0-1; the next run finishes the study to 3 counted trials."""
    settings = _settings(tmp_path, trials=3)
    original = tuning.objective
    calls = {"n": 0}

    def interrupted_third(trial: optuna.Trial, *args: Any) -> float:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(trial, *args)

    monkeypatch.setattr(tuning, "objective", interrupted_third)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(settings)
    kept = [t for t in _study(settings).trials if t.state == TrialState.COMPLETE]
    assert [t.number for t in kept] == [0, 1]
    assert (settings.out_dir / "trials.csv").read_text().count("\n") == 3  # written on the way out

    monkeypatch.setattr(tuning, "objective", original)
    tuning.tune(settings)
    trials = _study(settings).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and {t.number for t in kept} <= {t.number for t in complete}
    assert trials[2].user_attrs.get("interrupted") and trials[2].state == TrialState.FAIL


def test_pruned_and_failed_trials_do_not_stop_the_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A diverging trial fails, a bad one is pruned, and the study still reaches its total."""
    settings = _settings(tmp_path, trials=3, pruner="none")
    original = tuning.train
    calls = {"n": 0}

    def flaky_train(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("Expected parameter concentration1 to satisfy the constraint GreaterThan(), got nan")
        return original(*args, **kwargs)

    monkeypatch.setattr(tuning, "train", flaky_train)
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: self.number == 1)
    tuning.tune(settings)
    states = [t.state for t in _study(settings).trials]
    assert states == [TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE]
    assert "nan" in _study(settings).trials[0].user_attrs["error"]
    csv_text = (settings.out_dir / "trials.csv").read_text()
    assert ",FAIL," in csv_text and ",PRUNED," in csv_text


def test_two_workers_make_exactly_the_asked_trials(tmp_path: Path) -> None:
    """--n-jobs 2 on one journal: 4 trials in all, each number and run directory once."""
    settings = _settings(tmp_path, trials=4)
    tuning.tune(settings, n_jobs=2)
    trials = _study(settings).trials
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.number for t in trials}) == 4
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers ran trials
    runs = sorted(p.name for p in (tmp_path / "runs" / "tune" / "tiny").iterdir())
    assert runs == [f"trial-{n}" for n in range(4)]


def test_cli_tune_with_bad_input(tmp_path: Path) -> None:
    code, _, err = run_cli(["tune", "a2c"])
    assert code == 2 and "unknown agent" in err
    code, _, err = run_cli(["tune", "ppo", "--space", str(tmp_path / "missing.yaml"), "--trials", "1"])
    assert code == 2 and "config file not found" in err
    code, _, err = run_cli(["tune", "ppo", "--storage", "nosuchdb://x", "--trials", "1"])
    assert code == 2 and "cannot open storage" in err and err.count("\n") == 1


POSTGRES_URL = os.environ.get("CR_BENCH_TEST_POSTGRES", "")


@pytest.mark.skipif(
    not POSTGRES_URL, reason="CR_BENCH_TEST_POSTGRES is not set: .ci/run installs and starts PostgreSQL"
)
def test_two_workers_share_a_postgresql_study(tmp_path: Path) -> None:
    """Two `cr-bench tune` workers on a real PostgreSQL server make exactly the asked trials."""
    name = f"pg-{os.getpid()}"
    settings = _settings(tmp_path, trials=4, storage=POSTGRES_URL, study_name=name)
    tuning.tune(settings, n_jobs=2)
    study = optuna.load_study(study_name=name, storage=POSTGRES_URL)
    assert len(study.trials) == 4 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2


def test_evaluations_are_reported_at_scheduled_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports land on steps 250, 500, ... whatever frames were actually done, so pruners can compare trials."""

    class FakeTrial:
        def __init__(self) -> None:
            self.steps: list[int] = []

        def report(self, value: float, step: int) -> None:
            self.steps.append(step)

        def should_prune(self) -> bool:
            return False

    class FakeModel:
        frames_done = 0

    from cr_bench.evaluation import EpisodeResult

    monkeypatch.setattr(tuning, "evaluate", lambda *args, **kwargs: [EpisodeResult(1, 10.0, 1000, 125)])
    trial = FakeTrial()
    config = resolve_config("ppo-beta", {"frames": 1000})
    settings = dataclasses.replace(_settings(tmp_path, trials=1), evals_per_trial=4)
    callback = tuning.TrialEvaluation(trial, config, settings, step_offset=1000)  # type: ignore[arg-type]
    model = FakeModel()
    callback.model = model  # type: ignore[assignment]
    for frames in (0, 130, 262, 530, 600, 790, 1003):
        model.frames_done = frames
        callback._on_step()
    assert trial.steps == [1250, 1500, 1750, 2000]
