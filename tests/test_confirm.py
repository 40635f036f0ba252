"""cr-bench tune --confirm: the top configs retrained on fresh seeds at their own budget."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from cr_bench.agents.rundir import RunDir
from cr_bench.errors import CrBenchError
from cr_bench.results.tune_report import Confirmation
from cr_bench.runner import compare, confirm, tuning
from cr_bench.spec.tune import TuneSettings
from tests.conftest import run_cli
from tests.test_tuning import _settings, _study


def _confirming(tmp_path: Path, trials: int = 2) -> TuneSettings:
    """A tiny study that confirms its best config and the base config on 2 fresh seeds, at
    twice the trial budget (a rollout is 128 frames: checkpoints land on both budgets)."""
    return _settings(tmp_path, trials=trials, frames_per_trial=128, confirm=1, confirm_seeds=2, confirm_frames=256)


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a confirmed tiny study (runs/ and results/), made once for this module."""
    root = tmp_path_factory.mktemp("confirmed")
    tuning.tune(_confirming(root))
    return root


def test_confirmation_retrains_the_top_configs_on_fresh_seeds_and_chooses_best_yaml(confirmed: Path) -> None:
    settings = _confirming(confirmed)
    study, out = _study(settings), settings.out_dir
    rules = study.user_attrs["confirmation"]
    best_trial = max((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value or 0.0)
    base = next(t for t in study.trials if t.user_attrs.get("default"))
    assert rules["trials"][0] == best_trial.number and base.number in rules["trials"]
    # Fresh seeds: the trials trained on env seed 0 (seed 0, one env).
    assert rules["seeds"] == [1, 2] and rules["every_frames"] == 128
    scores = pd.read_csv(out / "confirm.csv")
    assert list(scores.columns) == confirm.CONFIRM_COLUMNS
    runs = scores.groupby(["trial", "seed"])["frames"].apply(sorted)
    assert len(runs) == 2 * len(rules["trials"]) and all(frames == [128, 256] for frames in runs)
    for number in rules["trials"]:  # each run trained on its own seed, to the confirmation budget
        for seed in rules["seeds"]:
            run = confirmed / f"runs/tune/tiny/confirm/trial-{number}/seed-{seed}"
            config = yaml.safe_load((run / "config.yaml").read_text())
            assert config["seed"] == seed and config["frames"] == 256
            assert (out / "carry" / f"trial-{number}" / f"seed-{seed}" / "model.zip").is_file()
    winner = scores[scores.frames == 256].groupby("trial")["return"].mean().idxmax()
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["algo"] == study.trials[winner].user_attrs["config"]["algo"]
    summary = (out / "summary.md").read_text()
    assert "## Confirmation on fresh seeds" in summary and f"`best.yaml` is trial {winner}'s config" in summary
    assert "at 128 frames" in summary and "at 256 frames" in summary
    assert (out / "confirm.png").stat().st_size > 1000


def test_a_confirmation_continues_on_a_fresh_clone_without_training_again(
    confirmed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(confirmed / "results", tmp_path / "results")  # a fresh machine: only results/ travelled
    settings = _confirming(tmp_path)
    before = pd.read_csv(settings.out_dir / "confirm.csv")

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished confirmation run trained again")

    monkeypatch.setattr(compare, "train", no_training)
    monkeypatch.setattr(compare, "resume", no_training)
    capsys.readouterr()
    tuning.tune(settings)
    pd.testing.assert_frame_equal(pd.read_csv(settings.out_dir / "confirm.csv"), before)
    said = capsys.readouterr().out
    assert "every run is trained" in said
    assert "then the confirmation" not in said  # no trial left: no estimate from the search space


def test_an_interrupted_confirmation_keeps_what_finished_and_best_yaml_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _confirming(tmp_path, trials=1)  # the base config alone, on 2 seeds
    calls: list[str] = []
    real = compare.train_job

    def stop_on_second(job: compare.Job) -> None:
        calls.append(job.run_dir)
        if job.eval is None and len(calls) == 2:
            raise KeyboardInterrupt
        real(job)

    monkeypatch.setattr(compare, "train_job", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(settings)
    study = _study(settings)
    scores = pd.read_csv(settings.out_dir / "confirm.csv")
    assert len(scores.groupby(["trial", "seed"])) == 1  # the first run finished and was scored
    summary = (settings.out_dir / "summary.md").read_text()
    assert "In progress" in summary
    best = max((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value or 0.0)
    assert yaml.safe_load((settings.out_dir / "best.yaml").read_text())["algo"] == best.user_attrs["config"]["algo"]
    monkeypatch.setattr(compare, "train_job", real)
    tuning.tune(settings)  # the same command finishes it
    assert Confirmation.read(_study(settings), settings.out_dir).finished()  # type: ignore[union-attr]


def _trial(number: int, value: float, lr: float, default: bool = False) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        params={"learning_rate": lr},
        distributions={"learning_rate": FloatDistribution(1e-5, 1e-2)},
        value=value,
        user_attrs={"config": {"algo": {"learning_rate": lr}}, **({"default": True} if default else {})},
    )
    trial.number = number
    return trial


def test_candidates_are_distinct_configs_then_the_base_config() -> None:
    study = optuna.create_study(direction="maximize")
    for trial in [_trial(0, 300.0, 1e-3, default=True), _trial(1, 800.0, 1e-4), _trial(2, 790.0, 1e-4),
                  _trial(3, 700.0, 3e-4)]:  # fmt: skip
        study.add_trial(trial)
    assert [t.number for t in confirm.candidates(study, 2)] == [1, 3, 0]  # trial 2 repeats trial 1's config
    assert [t.number for t in confirm.candidates(study, 9)] == [1, 3, 0]


def _report(tmp_path: Path, rows: list[tuple[int, int, int, int, float]], seeds: list[int]) -> Confirmation:
    study = optuna.create_study(direction="maximize")
    for trial in [_trial(0, 300.0, 1e-3, default=True), _trial(1, 800.0, 1e-4)]:
        study.add_trial(trial)
    study.set_user_attr(
        "confirmation",
        {"frames": 200, "seeds": seeds, "trials": [1, 0], "trial_frames": 100, "every_frames": 100, "episodes": 2},
    )
    pd.DataFrame(rows, columns=confirm.CONFIRM_COLUMNS[:5]).to_csv(tmp_path / "confirm.csv", index=False)  # no laps
    result = Confirmation.read(study, tmp_path)
    assert result is not None
    return result


def test_the_report_chooses_by_the_confirmation_budget_and_shows_unsupported_cis(tmp_path: Path) -> None:
    # Trial 1 wins at the trial budget but falls back by 200 frames; the base config wins there.
    rows = [(1, 5, 100, t, 900.0 + t) for t in (0, 1)] + [(1, 5, 200, t, 500.0 + t) for t in (0, 1)]
    rows += [(0, 5, 100, t, 300.0 + t) for t in (0, 1)] + [(0, 5, 200, t, 850.0 + t) for t in (0, 1)]
    report = _report(tmp_path, rows, seeds=[5])
    assert report.finished() and report.winner() == 0
    text = "\n".join(report.markdown(list(_study_trials()), []))
    assert "Tuning did not beat the base config at 200 frames" in text
    assert "]†" in text  # one seed: the CI redraws tracks, and says so


def test_when_the_base_config_wins_the_report_says_whether_the_best_tuned_config_is_apart(tmp_path: Path) -> None:
    # Two seeds: the base config leads trial 1 by a point at 200 frames, well inside the spread.
    rows = [(n, s, f, t, v) for n, v in ((0, 800.0), (1, 799.0)) for s in (5, 6) for f in (100, 200)
            for t, v in ((0, v - 40.0 + s), (1, v + 40.0 - s))]  # fmt: skip
    close = "\n".join(_report(tmp_path, rows, seeds=[5, 6]).markdown(list(_study_trials()), []))
    assert "Tuning did not beat the base config at 200 frames" in close
    assert "The best tuned config, trial 1, is below it and their CIs overlap, so these seeds do not" in close
    # One seed each, far apart: the CIs (over tracks, marked) do not overlap.
    rows = [(0, 5, f, t, 850.0 + t) for f in (100, 200) for t in (0, 1)]
    rows += [(1, 5, f, t, 500.0 + t) for f in (100, 200) for t in (0, 1)]
    far = "\n".join(_report(tmp_path, rows, seeds=[5]).markdown(list(_study_trials()), []))
    assert "The best tuned config, trial 1, is below it and their CIs do not overlap." in far


def test_a_confirmation_missing_a_seed_is_in_progress(tmp_path: Path) -> None:
    rows = [(n, 5, 200, 0, 700.0) for n in (0, 1)] + [(1, 6, 200, 0, 800.0)]
    report = _report(tmp_path, rows, seeds=[5, 6])
    assert not report.finished() and report.winner() is None
    assert "In progress" in "\n".join(report.markdown(list(_study_trials()), []))


def _study_trials() -> list[optuna.trial.FrozenTrial]:
    return [_trial(0, 300.0, 1e-3, default=True), _trial(1, 800.0, 1e-4)]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--confirm", "2", "--confirm-frames", "1000001"], "share no checkpoint grid"),
        (["--confirm", "-1"], "--confirm: must be >= 0"),
        (["--confirm", "2", "--confirm-seeds", "0"], "--confirm-seeds: must be >= 1"),
    ],
)
def test_bad_confirmation_flags_are_one_line_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    code, _, err = run_cli(["tune", "ppo", "--results-dir", str(tmp_path), *flags])
    assert code == 2 and re.match(r"cr-bench( tune)?: error: ", err) and message in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_the_confirmation_seeds_follow_every_trials_env_seeds(tmp_path: Path) -> None:
    settings = dataclasses.replace(_settings(tmp_path, trials=1), seeds_per_trial=2, confirm_seeds=3)
    assert settings.confirm_seed_list() == [2, 3, 4]  # trials: seeds 0 and 1, one env each
    with pytest.raises(CrBenchError, match="multiple of 150,000"):
        TuneSettings(agent="ppo", confirm=1, confirm_frames=1_000_001)


def test_a_confirmation_trains_with_the_base_configs_threads_not_a_trials_share(tmp_path: Path) -> None:
    # A study run with 2 workers on 2 cores stores torch_threads 1 (its worker's share) in each
    # trial's config; confirmed alone (--n-jobs 1), the run gets the base config's 2 threads.
    settings = _confirming(tmp_path, trials=1)
    settings = dataclasses.replace(settings, base_config={**settings.base_config, "torch_threads": 2})
    trial = _trial(1, 800.0, 1e-4)
    trial.user_attrs["config"]["torch_threads"] = 1
    assert confirm.run_config(settings, trial, seed=5, threads=2).torch_threads == 2
    assert confirm.run_config(settings, trial, seed=5, threads=1).torch_threads == 1  # 2 workers: 1 each


def test_the_confirmations_cost_is_each_runs_measured_speed_not_the_bench_model(tmp_path: Path) -> None:
    # A confirmation trains the very configs its trials trained, so a run is priced at its
    # trial's frames/s in the study, and a started run at its own. The bench's work model put
    # trial 17 of results/tune/ppo at 1.8x the speed its confirmation ran at (1.6 h announced).
    settings = _confirming(tmp_path, trials=1)  # the top 1 and the base, 2 seeds, 256 frames each
    study = optuna.create_study(direction="maximize")
    best, base = _trial(1, 800.0, 1e-4), _trial(0, 300.0, 1e-3, default=True)
    best.user_attrs.update(frames=128, wall_seconds=100.0)  # 1.28 frames/s in the study
    base.user_attrs.update(frames=128, wall_seconds=50.0)  # 2.56 frames/s
    for trial in [base, best]:
        study.add_trial(trial)
    text = confirm.cost_text(settings, study)
    assert "1,024 frames left, about 10 min" in text  # 2 x (256 / 1.28 + 256 / 2.56) s
    assert "measured" in text
    started = next(job for job in confirm.jobs(settings, study) if job.name == "trial-1")
    Path(started.run_dir).mkdir(parents=True)
    RunDir(Path(started.run_dir)).write_progress(128, 1280.0, finished=False)  # 0.1 frames/s so far
    assert "896 frames left, about 28 min" in confirm.cost_text(settings, study)  # 1280 + 200 + 2 x 100 s
