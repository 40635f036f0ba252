"""cr-bench tune: search spaces, the study loop, storage, workers and outputs (tiny budgets)."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import re
import socket
import time
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from cr_bench import progress
from cr_bench.agents.models import threads_per_job
from cr_bench.agents.registry import AGENTS, resolve_config
from cr_bench.errors import CrBenchError
from cr_bench.results import tune_report
from cr_bench.results.throughput import machine_text
from cr_bench.runner import pruner_replay, tuning
from cr_bench.runner import study as optuna_study
from cr_bench.spec import tune as spec_tune
from cr_bench.spec.commands import positive
from tests.conftest import listing, run_cli
from tests.fake_env import TINY_ENV_ID

BACKEND = "gymnasium"  # TinyCarRacing runs on gymnasium
TINY_BASE = {
    "n_envs": 1,
    "vec_env": "dummy",
    "env": {"backend": "gymnasium", "id": TINY_ENV_ID},
    "algo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1},
    "eval": {"n_envs": 1},
    "torch_threads": 1,
}
SMALL_SPACE = {
    "replace": True,
    "params": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
        "clip_range": {"type": "categorical", "choices": [0.1, 0.2]},
    },
}


def _settings(tmp_path: Path, trials: int, **changes: Any) -> spec_tune.TuneSettings:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SMALL_SPACE))
    settings = spec_tune.TuneSettings(
        agent="ppo-beta",
        trials=trials,
        frames_per_trial=160,
        eval_episodes=1,
        final_eval_episodes=1,
        evals_per_trial=1,
        value_evals=1,
        study_name="tiny",
        results_dir=str(tmp_path / "results"),
        runs_dir=str(tmp_path / "runs"),
        eval_backend=BACKEND,
        space_file=str(space),
        base_config={"agent": "ppo-beta", **TINY_BASE},
        command="cr-bench tune ppo-beta --trials 3",
        n_jobs=1,  # in this process: tests patch what a trial runs
    )
    return dataclasses.replace(settings, **changes)


def _study(settings: spec_tune.TuneSettings) -> optuna.Study:
    return optuna.load_study(study_name=settings.study_name, storage=optuna_study.make_storage(settings))


@pytest.mark.parametrize("agent", list(AGENTS))
def test_every_sampled_point_is_a_valid_config(agent: str) -> None:
    """20 random points of each default space convert to configs that resolve (and keep the policy)."""
    space = spec_tune.load_space(agent)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    n_envs = resolve_config(agent).n_envs
    for _ in range(20):
        values = tuning.sample(study.ask(), space)
        config = resolve_config(agent, tuning.to_overrides(values, n_envs))
        assert config.policy == resolve_config(agent).policy  # unsearched parts are kept
        for name, value in values.items():
            section = config.env if name in spec_tune.ENV_PARAMS else None
            got = getattr(section, name) if section else config.algo[name]
            assert got == value or (name == "batch_size" and got == config.algo["n_steps"] * n_envs)


def test_space_files_narrow_replace_and_drop(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("params:\n  learning_rate: {type: float, low: 0.0001, high: 0.0002}\n  ent_coef: null\n")
    narrowed = spec_tune.load_space("ppo", path)
    assert narrowed["learning_rate"].high == 0.0002 and "ent_coef" not in narrowed and "n_epochs" in narrowed
    path.write_text("replace: true\nparams:\n  n_epochs: {type: int, low: 2, high: 4}\n")
    assert list(spec_tune.load_space("ppo", path)) == ["n_epochs"]


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
        spec_tune.load_space("ppo", path)


def test_study_completes_and_writes_every_output(tmp_path: Path) -> None:
    """A 3-trial study finishes and writes trials.csv, best.yaml, summary.md and history.png."""
    settings = _settings(tmp_path, trials=3)
    tuning.tune(settings)
    out = settings.out_dir
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0] == "number,state,value,clip_range,learning_rate,frames,wall_seconds,default"
    assert len(rows) == 4 and all(",COMPLETE," in row for row in rows[1:])
    assert all(int(row.split(",")[-3]) >= 160 for row in rows[1:])
    summary = (out / "summary.md").read_text()
    assert "cr-bench tune ppo-beta --trials 3" in summary and "3 complete" in summary
    assert f"wall hours on {machine_text()}." in summary  # the study records the machine its workers ran on
    assert optuna_study.MACHINE_ATTR + machine_text() in _study(settings).user_attrs
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
            tuning.sample(trial, args[1])  # interrupted after sampling, during training
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
    assert optuna_study.interrupted(trials[2]) and trials[2].state == TrialState.FAIL
    assert trials[3].params == trials[2].params  # the interrupted trial ran again


def test_pruned_and_failed_trials_do_not_stop_the_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A diverging trial fails, a bad one is pruned, and the study still reaches its total."""
    settings = _settings(tmp_path, trials=3, pruner="none", evals_per_trial=2)  # a pruning point at 80 frames
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
    """--n-jobs 2 on one journal: 4 trials in all, each number and run directory once. Each
    worker trains on its share of the cores, but best.yaml keeps the base config's threads: it
    is for a training that has the machine to itself (a study's best.yaml said 1 on 2 cores)."""
    settings = _settings(tmp_path, trials=4)
    settings = dataclasses.replace(settings, base_config={**settings.base_config, "torch_threads": 2}, n_jobs=2)
    tuning.tune(settings)
    trials = _study(settings).trials
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.number for t in trials}) == 4
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers ran trials
    runs = sorted(p.name for p in (tmp_path / "runs" / "tune" / "tiny").iterdir())
    assert runs == [f"trial-{n}" for n in range(4)]
    share = threads_per_job(os.cpu_count() or 1, 2)
    assert {t.user_attrs["config"]["torch_threads"] for t in trials} == {share}
    assert yaml.safe_load((settings.out_dir / "best.yaml").read_text())["torch_threads"] == 2


def test_each_finished_trial_is_announced_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker process leaves the "trial ended" line to its parent, which prints one per trial
    (a background study's log showed every trial twice); a worker in the command's own process
    (--n-jobs 1) prints it itself."""
    monkeypatch.setattr(progress, "_show_bars", True)  # run_worker(show_progress=False) turns it off
    settings = _settings(tmp_path, trials=1)
    tuning.run_worker(settings, show_progress=False)
    assert _study(settings).trials[0].state == TrialState.COMPLETE
    assert "ended" not in capsys.readouterr().out
    tuning.run_worker(dataclasses.replace(settings, trials=2))
    assert capsys.readouterr().out.count("trial 1 ended") == 1


def test_cli_tune_with_bad_input(tmp_path: Path) -> None:
    code, _, err = run_cli(["tune", "a2c"])
    assert code == 2 and "unknown agent" in err
    code, _, err = run_cli(["tune", "ppo", "--space", str(tmp_path / "missing.yaml"), "--trials", "1"])
    assert code == 2 and "config file not found" in err
    code, _, err = run_cli(["tune", "ppo", "--storage", "nosuchdb://x", "--trials", "1"])
    assert code == 2 and "cannot open storage" in err and err.count("\n") == 1


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed again when the block ends


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            ["--executor", "ray"],
            {"RAY_ADDRESS": "garbage"},
            "RAY_ADDRESS must be HOST:PORT or ray://HOST:PORT, got 'garbage'",
        ),
        (["--executor", "ray", "--ray-address", "nowhere"], {}, "--ray-address must be HOST:PORT"),
        (["--executor", "ray", "--ray-address", "{closed}"], {}, "cannot reach the Ray cluster at 127.0.0.1:"),
        (["--storage", "sqlite:///no/such/folder/study.db"], {}, "cannot open storage"),
    ],
)
def test_a_refused_start_leaves_no_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], environ: dict[str, str], message: str
) -> None:
    """Issue 27: `RAY_ADDRESS=garbage cr-bench tune ppo --trials 1 --executor ray` opened the study
    (journal.log, its queued trial 0) and wrote trials.csv and summary.md before the executor
    refused the address. Now the address, the cluster and the storage are checked first."""
    if "--executor" in argv:
        ray = pytest.importorskip("ray", reason="Ray is not installed (the cluster extra)")
        monkeypatch.setattr(ray, "is_initialized", lambda: False)  # a fresh driver, whatever ran before
    monkeypatch.chdir(tmp_path)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    argv = [arg.format(closed=_closed_port()) for arg in argv]
    code, out, err = run_cli(["tune", "ppo", "--trials", "1", *argv])
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in out + err
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("nodes", "base", "message"),
    [
        ([{"Alive": True, "Resources": {"CPU": 2.0}}] * 3, {}, "3-node cluster: workers on other machines"),
        ([{"Alive": True, "Resources": {"CPU": 2.0}}], {"device": "cuda"}, "no node of the Ray cluster has a GPU"),
    ],
)
def test_a_cluster_that_cannot_run_the_study_is_refused_before_it_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nodes: list[dict], base: dict, message: str
) -> None:
    """A cluster whose nodes cannot share the default journal, or without the GPU the config asks
    for, is refused before the study exists (the storage check came after it was opened)."""

    @contextlib.contextmanager
    def cluster(address: str | None) -> Iterator[Any]:
        yield types.SimpleNamespace(nodes=lambda: nodes, cluster_resources=lambda: {"CPU": 2.0})

    monkeypatch.setattr("cr_bench.runner.ray_executor.ray_session", cluster)
    settings = _settings(tmp_path, trials=1, executor="ray")
    settings = dataclasses.replace(settings, base_config={**settings.base_config, **base})
    before = listing(tmp_path)
    with pytest.raises(CrBenchError, match=re.escape(message)):
        tuning.tune(settings)
    assert listing(tmp_path) == before


POSTGRES_URL = os.environ.get("CR_BENCH_TEST_POSTGRES", "")


@pytest.mark.skipif(
    not POSTGRES_URL, reason="CR_BENCH_TEST_POSTGRES is not set: .ci/run installs and starts PostgreSQL"
)
def test_two_workers_share_a_postgresql_study(tmp_path: Path) -> None:
    """Two `cr-bench tune` workers on a real PostgreSQL server make exactly the asked trials."""
    name = f"pg-{os.getpid()}"
    settings = _settings(tmp_path, trials=4, storage=POSTGRES_URL, study_name=name)
    tuning.tune(dataclasses.replace(settings, n_jobs=2))
    study = optuna.load_study(study_name=name, storage=POSTGRES_URL)
    assert len(study.trials) == 4 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2


def test_evaluations_are_reported_at_scheduled_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports land on steps 250, 500, ... whatever frames were actually done, so pruners can compare trials."""

    class FakeTrial:
        def __init__(self) -> None:
            self.steps: list[int] = []
            self.user_attrs: dict[str, Any] = {}

        def report(self, value: float, step: int) -> None:
            self.steps.append(step)

        def should_prune(self) -> bool:
            return False

    class FakeModel:
        frames_done = 0

    from cr_bench.evaluation.episodes import EpisodeResult

    monkeypatch.setattr(tuning, "evaluate", lambda *args, **kwargs: [EpisodeResult(1, 10.0, 1000, 125)])
    trial = FakeTrial()
    config = resolve_config("ppo-beta", {"frames": 1000})
    settings = dataclasses.replace(_settings(tmp_path, trials=1), evals_per_trial=4, frames_per_trial=1000)
    callback = tuning.TrialEvaluation(trial, config, settings, step_offset=1000)  # type: ignore[arg-type]
    model = FakeModel()
    callback.model = model  # type: ignore[assignment]
    for frames in (0, 130, 262, 530, 600, 790, 1003):
        model.frames_done = frames
        callback._on_step()
    assert trial.steps == [1250, 1500, 1750]  # the end of the budget is the final evaluation's
    callback.final()
    assert trial.steps == [1250, 1500, 1750, 2000]


def test_trial_0_is_the_base_config(tmp_path: Path) -> None:
    """The study's first trial runs the base config unchanged, so the best is never worse."""
    settings = _settings(tmp_path, trials=2)
    tuning.tune(settings)
    first = _study(settings).trials[0]
    assert first.user_attrs["default"] and first.state == TrialState.COMPLETE
    base = resolve_config("ppo-beta", settings.base_config)
    assert first.params == {"learning_rate": base.algo["learning_rate"], "clip_range": base.algo["clip_range"]}
    assert first.user_attrs["config"]["algo"] == {**base.algo}
    assert "The base config (trial 0) scored" in (settings.out_dir / "summary.md").read_text()
    tuning.tune(dataclasses.replace(settings, trials=3))  # continuing does not queue it again
    assert sum(bool(t.user_attrs.get("default")) for t in _study(settings).trials) == 1


def test_default_values_outside_the_space_widen_it(tmp_path: Path) -> None:
    """A base value missing from a categorical space is added; a numeric range is stretched to it."""
    space = {
        "clip_range": spec_tune.ParamSpec("categorical", choices=[0.2, 0.3]),
        "n_epochs": spec_tune.ParamSpec("int", low=5, high=8),
        "learning_rate": spec_tune.ParamSpec("float", low=1e-4, high=3e-4, log=True),
    }
    config = resolve_config("ppo", {"algo": {"learning_rate": "lin_1e-3"}})
    defaults = spec_tune.default_params(space, config)
    assert defaults == {"clip_range": 0.1, "n_epochs": 4}  # a schedule string is not a float value
    widened = spec_tune.include_defaults(space, defaults)
    assert widened["clip_range"].choices == [0.2, 0.3, 0.1] and space["clip_range"].choices == [0.2, 0.3]
    assert (widened["n_epochs"].low, widened["n_epochs"].high) == (4, 8)


def test_trial_value_is_the_mean_of_the_last_evaluations(tmp_path: Path) -> None:
    settings = dataclasses.replace(_settings(tmp_path, trials=1), evals_per_trial=4, value_evals=2)
    callback = tuning.TrialEvaluation(None, resolve_config("ppo"), settings, 0)  # type: ignore[arg-type]
    callback.history = [-30.0, 100.0, 300.0, 500.0]
    assert callback.value() == 400.0


@pytest.mark.parametrize("pruner", typing.get_args(spec_tune.Pruner))
def test_every_pruner_builds(tmp_path: Path, pruner: str) -> None:
    """Every name --pruner accepts builds a pruner."""
    assert isinstance(optuna_study.make_pruner(_settings(tmp_path, 1, pruner=pruner)), optuna.pruners.BasePruner)


@pytest.mark.parametrize("sampler", typing.get_args(spec_tune.Sampler))
def test_every_sampler_builds(sampler: str) -> None:
    """Every name --sampler accepts builds a sampler (the choices and the factories are one list)."""
    assert isinstance(optuna_study.make_sampler(sampler, seed=0), optuna.samplers.BaseSampler)


def _open_together(settings: spec_tune.TuneSettings, barrier: Any, errors: Any) -> None:
    barrier.wait()
    try:
        optuna_study.open_study(settings)
    except Exception as error:  # reported to the test
        errors.put(f"{type(error).__name__}: {error}")


@pytest.mark.parametrize("storage", ["sqlite", "journal", "postgresql"])
def test_workers_started_at_the_same_instant_all_open_the_study(tmp_path: Path, storage: str) -> None:
    """Three workers released by one barrier on a new storage: none loses the creation race."""
    if storage == "postgresql" and not POSTGRES_URL:
        pytest.skip("CR_BENCH_TEST_POSTGRES is not set: .ci/run installs and starts PostgreSQL")
    url = {"sqlite": f"sqlite:///{tmp_path / 'new.db'}", "journal": "", "postgresql": POSTGRES_URL}[storage]
    settings = _settings(tmp_path, trials=1, storage=url, study_name=f"race-{os.getpid()}")
    context = multiprocessing.get_context("fork")
    barrier, errors = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_open_together, args=(settings, barrier, errors)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert errors.empty(), errors.get()
    assert settings.study_name in optuna.get_all_study_names(optuna_study.make_storage(settings))


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_storage_is_refused(tmp_path: Path, url: str) -> None:
    code, _, err = run_cli(["tune", "ppo", "--storage", url, "--trials", "1", "--results-dir", str(tmp_path)])
    assert code == 2 and "in memory" in err and err.count("\n") == 1


def test_new_trials_never_train_into_old_folders(tmp_path: Path) -> None:
    """An old study's trial-0 folder is left alone; the new trial 0 gets a folder of its own."""
    old = tmp_path / "runs" / "tune" / "tiny" / "trial-0" / "seed-0"
    old.mkdir(parents=True)
    (old / "config.yaml").write_text("agent: dqn\n")
    settings = _settings(tmp_path, trials=1)
    tuning.tune(settings)
    trial = _study(settings).trials[0]
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["run_dir"].endswith("trial-0.2")
    assert (old / "config.yaml").read_text() == "agent: dqn\n"


def test_a_study_whose_trials_all_failed_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 2 with the first reasons, and the last line's count matches summary.md."""

    def diverge(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("concentration1 is nan")

    monkeypatch.setattr(tuning, "train", diverge)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SMALL_SPACE))
    code, _, err = run_cli(
        ["tune", "ppo", "--trials", "2", "--space", str(space), "--results-dir", str(tmp_path / "results"),
         "--runs-dir", str(tmp_path / "runs"), "--study-name", "failing", "--n-jobs", "1"]
    )  # fmt: skip
    assert code == 2 and "all 2 trials failed" in err and "concentration1 is nan" in err
    summary = (tmp_path / "results" / "tune" / "failing" / "summary.md").read_text()
    assert "2 trials: 0 complete, 0 pruned, 2 failed" in summary


def test_silent_trials_of_another_host_are_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study carried to a fresh machine (through git) retries the trial its old machine was running."""
    settings = _settings(tmp_path, trials=1)
    study = optuna_study.open_study(settings)
    space = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-3, log=True)}
    trial = study.ask(space)
    trial.set_user_attr("host", "old-machine")
    trial.set_user_attr("pid", 1)
    trial.set_user_attr("heartbeat", 1000.0)  # long ago
    fresh = study.ask()
    fresh.set_user_attr("host", "other-machine")
    fresh.set_user_attr("pid", 1)
    fresh.set_user_attr("heartbeat", time.time())  # alive elsewhere: left alone
    optuna_study.fail_dead_trials(study)
    trials = study.get_trials()
    assert optuna_study.interrupted(trials[0]) and trials[1].state == TrialState.RUNNING
    assert trials[2].state == TrialState.WAITING
    assert study.ask(space).params == trials[0].params  # the retry runs the same config


def test_a_bug_of_ours_stops_the_study_but_a_library_error_fails_one_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ValueError from torch (a diverged policy) fails its trial and the study goes on; one
    raised by cr-bench code is a bug: the study stops with it, the trial marked failed."""
    import torch

    def diverged(*args: Any, **kwargs: Any) -> None:
        torch.distributions.Beta(torch.tensor([float("nan")]), torch.tensor([1.0]), validate_args=True)

    monkeypatch.setattr(tuning, "train", diverged)
    settings = _settings(tmp_path, trials=2)
    with pytest.raises(CrBenchError, match="failed"):
        tuning.tune(settings)
    errors = [t.user_attrs["error"] for t in _study(settings).trials]
    assert len(errors) == 2 and all(e.startswith("ValueError") for e in errors)

    def buggy(*args: Any, **kwargs: Any) -> None:
        positive(-1)  # a ValueError raised in cr_bench's own code

    monkeypatch.setattr(tuning, "train", buggy)
    bug = _settings(tmp_path, trials=2, study_name="bug")
    with pytest.raises(ValueError, match="must be >= 1, got -1"):
        tuning.tune(bug)
    (trial,) = _study(bug).trials
    assert trial.state == optuna.trial.TrialState.FAIL


def _recorded_study(settings: spec_tune.TuneSettings) -> optuna.Study:
    """A finished study: the base config, one strong trial, weak ones, and one pruned at step 2."""
    steps = settings.eval_steps()
    study = optuna.create_study(direction="maximize")

    def add(values: list[float], default: bool = False, pruned: bool = False) -> None:
        value = None if pruned else float(np.mean(values[-settings.value_evals :]))
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
                value=value,
                params={},
                distributions={},
                intermediate_values=dict(zip(steps, values, strict=False)),
                user_attrs={"default": default},
            )
        )

    add([100, 200, 300, 300], default=True)
    add([500, 700, 850, 900])
    for k in range(8):
        add([-50.0 + k, -40, -30, -20])
    add([400, 600], pruned=True)
    return study


def test_replayed_pruners_cost_fewer_frames_than_none_and_keep_the_base_config(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 10, frames_per_trial=400, evals_per_trial=4, value_evals=2)
    study = _recorded_study(settings)
    results, trials = pruner_replay.replay_pruners(study, settings, orders=5)
    by_name = {r.pruner: r for r in results}
    assert set(by_name) == set(typing.get_args(spec_tune.Pruner))
    assert by_name["none"].frames == 11 * 400 and by_name["none"].finished == 11 and by_name["none"].kept_best == 1
    assert by_name["none"].best == 875.0
    for name in ("hyperband", "halving", "median"):
        assert by_name[name].frames < by_name["none"].frames, name
        assert 1 <= by_name[name].finished < 11, name  # the base config always finishes
    resampled, _ = pruner_replay.replay_pruners(study, settings, orders=5, resample=True)
    assert all(r.shortfall >= 0 for r in resampled) and resampled[-1].pruner == "none"
    assert resampled[-1].shortfall == 0 and resampled[-1].kept_best == 1
    # The pruned trial's missing evaluations carry its last one forward; its value follows the rule.
    pruned = next(c for c in trials if not c.finished)
    assert pruned.values == (400, 600, 600, 600) and pruned.value == 600


def test_replay_never_prunes_the_base_config_nor_at_the_final_step(tmp_path: Path) -> None:
    """As in a study (TrialEvaluation, objective): the base config runs to the end however
    weak, and a trial that reached its last evaluation finishes however it ends."""
    settings = _settings(tmp_path, 10, frames_per_trial=400, evals_per_trial=4, value_evals=2)
    steps = settings.eval_steps()
    strong = [pruner_replay.Curve(k, (800.0, 800.0, 800.0, 800.0), 800.0, True, False) for k in range(6)]
    late_drop = pruner_replay.Curve(6, (900.0, 900.0, 900.0, -100.0), 400.0, True, False)
    weak_default = pruner_replay.Curve(7, (10.0, 10.0, 10.0, 10.0), 10.0, True, True)
    for pruner in ("median", "halving"):
        _, finished = pruner_replay.replay(settings, pruner, steps, [*strong, late_drop, weak_default], 0)
        assert weak_default in finished and late_drop in finished, pruner
        lone_weak = dataclasses.replace(weak_default, default=False)
        _, finished = pruner_replay.replay(settings, pruner, steps, [*strong, lone_weak], 0)
        assert lone_weak not in finished, pruner  # the same curve is pruned when it is not the base config


def test_replayed_pruners_repeat(tmp_path: Path) -> None:
    """Hyperband hashes the study name into its brackets: a replay names its studies."""
    settings = _settings(tmp_path, 10, frames_per_trial=400, evals_per_trial=4, value_evals=2)
    study = _recorded_study(settings)
    assert pruner_replay.replay_pruners(study, settings, orders=8) == pruner_replay.replay_pruners(study, settings, 8)


def test_a_study_keeps_its_pruner(tmp_path: Path) -> None:
    """Pruners keep their rungs in the trials under the same names at different steps: a
    study continued with another pruner is refused (replaying pruners on it is not)."""
    optuna_study.open_study(_settings(tmp_path, 1, pruner="hyperband"))
    with pytest.raises(CrBenchError, match=r"pruner=hyperband, not halving; keep it \(--pruner hyperband\)"):
        optuna_study.open_study(_settings(tmp_path, 1, pruner="halving"))
    replayed, rules = optuna_study.open_existing_study(_settings(tmp_path, 1, pruner="halving", frames_per_trial=320))
    assert replayed.user_attrs["pruner"] == rules.pruner == "hyperband"  # read under its own rules
    assert rules.frames_per_trial == 160
    with pytest.raises(CrBenchError, match="was run with agent=ppo-v1, not ppo-gaussian"):
        optuna_study.open_existing_study(_settings(tmp_path, 1, agent="ppo-gaussian", base_config={}))
    # Without --pruner, a study continues with its own; a new study takes the default.
    continued = _settings(tmp_path, 1, pruner=None)
    assert isinstance(optuna_study.open_study(continued).pruner, optuna.pruners.HyperbandPruner)
    assert continued.pruner == "hyperband"
    new = _settings(tmp_path, 1, pruner=None, study_name="new")
    assert isinstance(optuna_study.open_study(new).pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert new.pruner == spec_tune.DEFAULT_PRUNER == "halving"


def test_a_shorter_budget_is_read_from_the_curves_cut_at_its_step(tmp_path: Path) -> None:
    """A fast starter leads at 200 frames and a late bloomer at 400: cut at 200, the replay
    ranks the fast starter first and the study's best out of its top 1; each budget costs
    what halving lets its cut curves train, less than the study's own budget."""
    settings = _settings(tmp_path, 10, frames_per_trial=400, evals_per_trial=4, value_evals=2)
    study = _recorded_study(settings)
    for values in ([880, 890, 500, 500], [100, 150, 900, 950]):  # value 500, then 925: the study's best
        curve = dict(zip(settings.eval_steps(), values, strict=True))
        value = float(np.mean(values[-2:]))
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}, intermediate_values=curve))
    rows, complete = pruner_replay.replay_budgets(study, settings, orders=5, top=1)
    assert complete == 12 and [(r.frames_per_trial, r.evals) for r in rows] == [(200, 2), (300, 3), (400, 4)]
    short, full = rows[0], rows[-1]
    assert short.pick == 11 and short.pick_value == 500 and not short.best_in_top  # the fast starter
    assert full.pick == 12 and full.pick_value == 925 and full.best_in_top and full.spearman == pytest.approx(1)
    assert short.frames < rows[1].frames <= full.frames
    text = pruner_replay.write_budgets(study, settings, orders=5, top=1)
    assert "| 200 | 2 |" in text and "11 (500.0)" in text and (settings.out_dir / "budgets.csv").exists()


def test_budgets_replay_a_value_rule_longer_than_the_cut_and_refuse_what_has_no_earlier_budget(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, 10, frames_per_trial=400, evals_per_trial=4, value_evals=3)
    rows, _ = pruner_replay.replay_budgets(_recorded_study(settings), settings, orders=2)
    assert rows[0].evals == 2 and rows[0].pick == 1  # at 2 evaluations the value is the mean of both
    once = _settings(tmp_path, 10, frames_per_trial=400, evals_per_trial=1, value_evals=1)
    with pytest.raises(CrBenchError, match="evaluates its trials once"):
        pruner_replay.replay_budgets(_recorded_study(once), once)
    with pytest.raises(CrBenchError, match="one seed per trial"):
        pruner_replay.replay_budgets(_recorded_study(settings), dataclasses.replace(settings, seeds_per_trial=2))


def _study_with_configs(settings: spec_tune.TuneSettings, rates: list[float]) -> optuna.Study:
    """A study as ``tune`` records it (agent, trials' configs): trial k trained learning rate rates[k]
    on a worker's one thread and scored k; the last one failed before it recorded a config."""
    study = optuna_study.open_study(settings)
    for k, rate in enumerate(rates):
        config = resolve_config(settings.agent, settings.base_config, {"algo": {"learning_rate": rate}})
        attrs = {"config": {**dataclasses.asdict(config), "frames": 160, "torch_threads": 1}}
        study.add_trial(optuna.trial.create_trial(value=float(k), user_attrs=attrs))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"error": "bad"}))
    return study


def test_any_trial_exports_as_a_config_in_best_yamls_form(tmp_path: Path) -> None:
    """--export-trial N writes trial N's config beside best.yaml, as best.yaml writes the best
    one (no budget, the base config's threads), so a suite or a training takes it from the
    study instead of copying its values by hand."""
    settings = _settings(tmp_path, trials=3, base_config={"agent": "ppo-beta", **TINY_BASE, "torch_threads": 2})
    study = _study_with_configs(settings, [3e-4, 5e-4])
    tune_report.write_outputs(study, settings)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(settings.base_config))
    args = ["tune", "ppo-beta", "--study-name", "tiny", "--results-dir", settings.results_dir, "--config", str(base)]
    code, out, err = run_cli([*args, "--export-trial", "1"])
    assert code == 0, err
    exported = settings.out_dir / "trial-1.yaml"
    assert str(exported) in out and "cr-bench train ppo-v1 --config" in out
    config = yaml.safe_load(exported.read_text())
    assert config == yaml.safe_load((settings.out_dir / "best.yaml").read_text())  # trial 1 is the best
    assert config["algo"]["learning_rate"] == 5e-4 and config["torch_threads"] == 2 and "frames" not in config
    code, _, err = run_cli([*args, "--export-trial", "0"])
    assert code == 0, err
    assert yaml.safe_load((settings.out_dir / "trial-0.yaml").read_text())["algo"]["learning_rate"] == 3e-4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--export-trial", "7"], "study tiny has no trial 7 (its trials are 0..2)"),
        (["--export-trial", "2"], "trial 2 of study tiny recorded no config (FAIL)"),
        (["--export-trial", "1", "--replay-budgets"], "--export-trial and --replay-budgets each run no trial"),
    ],
)
def test_a_trial_that_cannot_be_exported_is_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    settings = _settings(tmp_path, trials=3)
    _study_with_configs(settings, [3e-4, 5e-4])
    code, _, err = run_cli(["tune", "ppo-beta", "--study-name", "tiny", "--results-dir", settings.results_dir, *extra])
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not list(settings.out_dir.glob("trial-*.yaml"))


@pytest.mark.parametrize("flag", ["--replay-pruners", "--replay-budgets"])
def test_a_replay_needs_a_study(tmp_path: Path, flag: str) -> None:
    code, _, err = run_cli(["tune", "ppo", flag, "--results-dir", str(tmp_path)])
    assert code == 2 and "no study ppo" in err and err.count("\n") == 1


def test_a_storage_password_is_never_printed(tmp_path: Path) -> None:
    """A storage URL's password is masked in the error line (and in the command cr-bench saves)."""
    url = "postgresql://tune:s3cret-pw@127.0.0.1:9/optuna"  # nothing listens on port 9
    code, out, err = run_cli(["tune", "ppo", "--trials", "1", "--storage", url, "--results-dir", str(tmp_path)])
    assert code == 2 and err.startswith("cr-bench: error:") and len(err.splitlines()) == 1, err
    assert "s3cret-pw" not in out + err and "tune:***@127.0.0.1" in err


def test_a_device_this_machine_lacks_is_refused_before_the_study_starts(tmp_path: Path) -> None:
    """--device cuda on a machine without CUDA: one line, exit 2, and no study (no failed trial
    counts toward --trials)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    code, _, err = run_cli(["tune", "ppo", "--trials", "2", "--device", "cuda", "--results-dir", str(tmp_path)])
    assert code == 2 and "no CUDA device" in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.rglob("journal.log"))


def test_the_study_says_how_long_it_has_left_from_its_own_trials() -> None:
    """Before a trial ends: the model's estimate at the full budget per trial, as an upper
    bound; after: each finished trial's measured wall time (pruned ones count as they ran)."""
    from cr_bench.runner.study import expected_left

    study = optuna.create_study(direction="maximize")
    assert expected_left(study, 4, 1, 1000.0, 300_000) == "about 20 min left if none is pruned (estimated)"
    for wall, frames in ((600.0, 300_000), (120.0, 60_000)):
        study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"wall_seconds": wall, "frames": frames}))
    # 2 left at the mean of 360 s each, on 2 workers: 6 min; 360,000 frames in 720 s.
    assert (
        expected_left(study, 4, 2, 1000.0, 300_000)
        == "about 6 min left, 12 min for the whole study (measured on 2 trial(s), 500 frames/s a worker)"
    )


@pytest.mark.skipif(
    not POSTGRES_URL, reason="CR_BENCH_TEST_POSTGRES is not set: .ci/run installs and starts PostgreSQL"
)
def test_a_storage_password_is_kept_nowhere(tmp_path: Path) -> None:
    """A study on a PostgreSQL URL with a password: the password is in no file the study
    writes (summary.md's command, a trial run's command.txt) nor in the study's own records."""
    space, base = tmp_path / "space.yaml", tmp_path / "base.yaml"
    space.write_text(yaml.safe_dump(SMALL_SPACE))
    base.write_text(yaml.safe_dump({"agent": "ppo", **TINY_BASE}))
    name = f"secret-{os.getpid()}"
    code, out, err = run_cli(["tune", "ppo", "--trials", "1", "--frames-per-trial", "160", "--evals-per-trial", "1",
                              "--value-evals", "1", "--eval-episodes", "1", "--final-eval-episodes", "1",
                              "--space", str(space), "--config", str(base), "--storage", POSTGRES_URL,
                              "--study-name", name, "--results-dir", str(tmp_path / "results"),
                              "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert code == 0, err
    password = POSTGRES_URL.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    written = [
        p.read_text() for p in tmp_path.rglob("*") if p.is_file() and p.suffix in {".md", ".txt", ".csv", ".yaml"}
    ]
    assert written and all(f":{password}@" not in text for text in [*written, out, err])
    assert ":***@" in (tmp_path / "results" / "tune" / name / "summary.md").read_text()
    study = optuna.load_study(study_name=name, storage=POSTGRES_URL)
    assert f":{password}@" not in repr([study.user_attrs, *(t.user_attrs for t in study.trials)])


def test_the_start_estimate_costs_the_search_space_on_shared_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 29: the estimate priced every trial as the base config (repeat 8, 4 epochs) trained
    alone; a study samples repeat 4 and up to 6 epochs, on 2 workers sharing 2 cores. The table:
    pipeline 0.5 ms a frame, the default 1 ms, two trainings at once 1.2x one (each 0.6x)."""
    from tests.test_progress import _throughput

    _throughput(tmp_path, work=13 / 8, parallel=1.2)
    monkeypatch.chdir(tmp_path)
    settings = spec_tune.TuneSettings(agent="ppo", trials=10)
    assert settings.n_jobs == 2 and settings.resolved_base().env.backend == "envpool"

    def worker_fps(repeat: int, epochs: int) -> float:
        return 0.6 * 1000 / (0.5 + 0.5 * ((1 + 3 * epochs) / repeat) / (13 / 8))

    speeds = [worker_fps(repeat, epochs) for repeat in (4, 8) for epochs in range(3, 7)]
    mean = 1 / float(np.mean([1 / fps for fps in speeds]))
    assert tuning.space_speeds(settings) == pytest.approx((mean, worker_fps(4, 6)))
    text = tuning.start_text(optuna.create_study(), settings)
    frames = 10 * settings.frames_per_trial
    assert f"if none were pruned, {frames:,} frames: about {progress.duration(frames / mean / 2)}" in text
    assert f"at its costliest ({worker_fps(4, 6):,.0f})" in text and "each at 0.60x one training alone" in text
