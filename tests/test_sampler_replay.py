"""cr-bench tune --replay-samplers: simulated studies against a surrogate of a recorded one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from cr_bench.runner import sampler_replay
from cr_bench.runner import study as optuna_study
from cr_bench.spec.tune import TuneSettings
from tests.conftest import run_cli
from tests.test_tuning import _settings

DISTRIBUTIONS = {
    "learning_rate": FloatDistribution(1e-4, 1e-3, log=True),
    "clip_range": CategoricalDistribution([0.1, 0.2]),
}


def _peaked_study(settings: TuneSettings) -> optuna.Study:
    """A recorded study whose value peaks at learning rate 3e-4, clip 0.2 (values up to 900)."""
    storage = optuna_study.make_storage(settings)  # the study's own journal, as tune keeps it
    study = optuna.create_study(direction="maximize", study_name=settings.study_name, storage=storage)
    rng = np.random.default_rng(0)
    for k in range(30):
        lr, clip = float(10 ** rng.uniform(-4, -3)), [0.1, 0.2][k % 2]
        value = 900.0 - 2000.0 * abs(np.log10(lr) - np.log10(3e-4)) - (0.0 if clip == 0.2 else 100.0)
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=value,
                params={"learning_rate": lr, "clip_range": clip},
                distributions=DISTRIBUTIONS,
                intermediate_values={settings.frames_per_trial: value},
                user_attrs={"default": k == 0},
            )
        )
    return study


def test_the_surrogate_is_exact_on_recorded_trials_and_scales_each_parameter(tmp_path: Path) -> None:
    settings = _settings(tmp_path, trials=12)
    study = _peaked_study(settings)
    surrogate = sampler_replay.surrogate_of(study, settings)
    for trial in study.trials[:5]:
        assert surrogate(trial.params) == pytest.approx(trial.value, abs=0.01)
    assert surrogate.encode({"learning_rate": 1e-4, "clip_range": 0.2}).tolist() == [1.0, 0.0]  # clip, then lr
    assert surrogate.encode({"learning_rate": 1e-3, "clip_range": 0.1}).tolist() == [0.0, 1.0]


def test_simulated_studies_start_from_the_base_config_and_run_the_asked_trials(tmp_path: Path) -> None:
    settings = _settings(tmp_path, trials=12)
    surrogate = sampler_replay.surrogate_of(_peaked_study(settings), settings)
    for workers in (1, 2):
        values = sampler_replay.simulate(surrogate, settings, "tpe", workers, seed=0)
        assert len(values) == 12
        base = {"learning_rate": settings.resolved_base().algo["learning_rate"], "clip_range": 0.1}
        assert values[0] == pytest.approx(surrogate(base))


def test_replay_samplers_writes_a_row_per_sampler_and_worker_count(tmp_path: Path) -> None:
    settings = _settings(tmp_path, trials=8)
    _peaked_study(settings)
    code, out, err = run_cli(
        ["tune", "ppo-beta", "--replay-samplers", "--study-name", "tiny", "--results-dir", settings.results_dir,
         "--trials", "8", "--frames-per-trial", "160", "--eval-episodes", "1", "--final-eval-episodes", "1",
         "--evals-per-trial", "1", "--value-evals", "1", "--eval-backend", "gymnasium",
         "--space", settings.space_file or ""]
    )  # fmt: skip
    assert code == 0, err
    rows = (settings.out_dir / "samplers.csv").read_text().splitlines()
    assert rows[0] == "sampler,workers,best,best_se,best_p10,top5"
    assert [row.split(",")[:2] for row in rows[1:]] == [["tpe", "1"], ["tpe", "2"], ["tpe", "4"], ["random", "1"]]
    assert all(float(row.split(",")[2]) <= 900.0 for row in rows[1:])  # never above the recorded best
    assert "| `tpe` | 2 |" in out and (settings.out_dir / "samplers.md").read_text() in out
