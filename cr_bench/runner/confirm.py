"""``cr-bench tune --confirm K``: retrain a study's top K configs on fresh seeds, at the budget
users train at, and choose ``best.yaml`` from what they score there.

A trial's value comes from one short training (``--frames-per-trial``, 150k by default) on the
seeds every trial shares. A config that wins there is not proven on other seeds (rl-zoo3 #86,
#314) nor at 1M or 2M frames: a constant learning rate and a wide clip that learn fast early
can plateau or fall back. So each candidate (the top K complete trials, and the base config as
the yardstick) trains again on ``--confirm-seeds`` seeds no trial used, to
``--confirm-frames``, keeping a checkpoint every :meth:`~cr_bench.spec.tune.TuneSettings.confirm_every` frames; every
checkpoint is scored on the study's validation tracks (``final_eval_episodes`` of them). The
report (:mod:`cr_bench.results.tune_report`) gives each candidate's mean at the trial budget
and at the confirmation budget with their CIs, and ``best.yaml`` is the candidate with the best
mean at the confirmation budget once every candidate has all its seeds there.

The runs are compare's (:class:`cr_bench.runner.compare.Job`: train, or resume, then score the
new checkpoints) under ``RUNS_DIR/tune/STUDY/confirm/``, on the study's executor and workers;
each run's state is carried in ``RESULTS_DIR/tune/STUDY/carry/`` (:mod:`cr_bench.runner.carry`),
so the same command on a fresh clone continues where the confirmation stopped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from cr_bench import progress
from cr_bench.agents.models import threads_per_job
from cr_bench.agents.registry import resolve_config
from cr_bench.agents.rundir import RunDir
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.curves import SCORE_COLUMNS, scored_checkpoints
from cr_bench.io import write_dataframe
from cr_bench.runner.carry import restore_carry, save_carry
from cr_bench.runner.compare import Job, train_task
from cr_bench.runner.executor import run_tasks
from cr_bench.runner.study import counted
from cr_bench.runner.task import Task
from cr_bench.spec.run import VALIDATION_TRACK_START, RunConfig, resolve_backend
from cr_bench.spec.suite import CurveSettings
from cr_bench.spec.tune import TuneSettings

CONFIRM_COLUMNS = ["trial", "seed", *SCORE_COLUMNS]
"""``confirm.csv``: one row per candidate, seed, scored checkpoint and validation track."""


def candidates(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The top ``k`` complete trials by value (one per distinct config), then the base config's
    trial if it is not among them: the yardstick that says whether tuning beat the default."""
    complete = sorted(
        (t for t in counted(study) if t.state == TrialState.COMPLETE and "config" in t.user_attrs),
        key=lambda t: (-(t.value or 0.0), t.number),
    )
    chosen: list[FrozenTrial] = []
    for trial in complete:
        if len(chosen) < k and all(trial.user_attrs["config"] != c.user_attrs["config"] for c in chosen):
            chosen.append(trial)
    default = next((t for t in complete if t.user_attrs.get("default")), None)
    if default is not None and all(default.user_attrs["config"] != c.user_attrs["config"] for c in chosen):
        chosen.append(default)
    return chosen


def curve_settings(settings: TuneSettings) -> CurveSettings:
    """Where each kept checkpoint is scored: the study's final-evaluation validation tracks."""
    backend = resolve_backend(settings.eval_backend or settings.resolved_base().env.backend)
    return CurveSettings(settings.confirm_every(), settings.final_eval_episodes, VALIDATION_TRACK_START, backend)


def run_config(settings: TuneSettings, trial: FrozenTrial, seed: int, threads: int) -> RunConfig:
    """The confirmation run of ``trial``'s config on ``seed``, with ``threads`` torch threads
    (the worker's share) at most the base config's: a trial stored its own worker's share."""
    saved: dict[str, Any] = dict(trial.user_attrs["config"])
    overrides = {
        "frames": settings.confirm_frames,
        "seed": seed,
        "checkpoint_every_frames": settings.confirm_every(),
        "keep_checkpoints": True,
        "torch_threads": min(threads, settings.resolved_base().torch_threads),
    }
    return resolve_config(settings.agent, saved, overrides)


def jobs(settings: TuneSettings, study: optuna.Study) -> list[Job]:
    """One job per candidate and fresh seed, seed-major: a stopped confirmation has seen every
    candidate on as many seeds as it could."""
    root = Path(settings.runs_dir) / "tune" / settings.study_name / "confirm"
    threads = threads_per_job(os.cpu_count() or 1, settings.n_jobs)
    curve = curve_settings(settings)
    return [
        Job(
            f"trial-{trial.number}",
            seed,
            str(root / f"trial-{trial.number}" / f"seed-{seed}"),
            run_config(settings, trial, seed, threads),
            None,
            curve,
            command=settings.command or "cr-bench tune",
        )
        for seed in settings.confirm_seed_list()
        for trial in candidates(study, settings.confirm)
    ]


def carry_dir(settings: TuneSettings) -> Path:
    """Where the confirmation runs travel in git: ``RESULTS_DIR/tune/STUDY/carry/``."""
    return settings.out_dir / "carry"


def cost_text(settings: TuneSettings, study: optuna.Study) -> str:
    """What the confirmation still costs, printed before it starts: frames and expected time.

    A confirmation trains the configs its trials trained, so each run is priced at its own
    frames/s so far, else at its trial's in the study (both measured beside the study's
    workers), and only a run with neither at the bench's model (:func:`cr_bench.progress.shared_fps`),
    which put trial 17 of results/tune/ppo at 1.8x the speed it trained at.
    """
    trials = {f"trial-{trial.number}": trial for trial in candidates(study, settings.confirm)}
    left = [(job, job.config.frames - _frames_done(job)) for job in jobs(settings, study)]
    left = [(job, frames) for job, frames in left if frames > 0]
    head = (
        f"confirmation: {len(trials)} config(s) x {settings.confirm_seeds} fresh "
        f"seed(s) {settings.confirm_seed_list()} to {settings.confirm_frames:,} frames"
    )
    if not left:
        return f"{head}: every run is trained"
    workers = max(1, min(settings.n_jobs, len(left)))
    measured = [RunDir(Path(job.run_dir)).measured_fps() or _trial_fps(trials.get(job.name)) for job, _ in left]
    speeds = [fps or progress.shared_fps(job.config, workers) for (job, _), fps in zip(left, measured, strict=True)]
    when = "(speed not measured: cr-bench bench measures it)"
    if all(speeds):
        seconds = sum(frames / float(fps or 1) for (_, frames), fps in zip(left, speeds, strict=True))
        how = "each run at its measured frames/s (so far, else its trial's in the study, evaluations included)"
        if not all(measured):
            how += f", else {progress.sharing_text(workers)}"
        when = f"about {progress.duration(seconds / workers)} on {workers} worker(s), {how}"
    return f"{head}: {len(left)} run(s), {sum(frames for _, frames in left):,} frames left, {when}"


def _trial_fps(trial: FrozenTrial | None) -> float | None:
    """The frames/s ``trial`` trained and was scored at in the study (as a confirmation run's
    checkpoints are scored while it trains)."""
    if trial is None:
        return None
    frames, seconds = trial.user_attrs.get("frames"), trial.user_attrs.get("wall_seconds")
    return float(frames) / float(seconds) if frames and seconds else None


def _frames_done(job: Job) -> int:
    return int(RunDir(job.run_dir).read_progress()["frames_done"])


def confirm(settings: TuneSettings, study: optuna.Study) -> pd.DataFrame:
    """Train and score what the confirmation still lacks, write ``confirm.csv`` and return its rows.

    The study records the confirmation's rules (budget, seeds, candidates), so its report can
    tell a finished confirmation from one in progress.

    :raises CrBenchError: when the study has no complete trial to confirm.
    """
    todo = jobs(settings, study)
    if not todo:
        raise CrBenchError(f"study {settings.study_name} has no complete trial to confirm")
    study.set_user_attr(
        "confirmation",
        {
            "frames": settings.confirm_frames,
            "seeds": settings.confirm_seed_list(),
            "trials": [t.number for t in candidates(study, settings.confirm)],
            "trial_frames": settings.frames_per_trial,
            "every_frames": settings.confirm_every(),
            "episodes": settings.final_eval_episodes,
        },
    )
    carried = carry_dir(settings)
    for job in todo:
        restore_carry(carried / job.name / f"seed-{job.seed}", Path(job.run_dir))
    progress.say(cost_text(settings, study))

    def on_result(task: Task, value: Any) -> list[Task]:
        progress.say(f"  {task.label}: done")
        return []

    try:
        run_tasks([train_task(job) for job in todo], on_result, settings.executor, settings.n_jobs,
                  settings.ray_address)  # fmt: skip
    finally:  # however it ends (but kill -9): what finished travels, and its scores are written
        for job in todo:
            save_carry(Path(job.run_dir), carried / job.name / f"seed-{job.seed}", settings.confirm_every())
        rows = scores(todo)
        write_dataframe(settings.out_dir / "confirm.csv", rows)
    return rows


def scores(todo: list[Job]) -> pd.DataFrame:
    """The confirmation runs' scored checkpoints (as cached by their training tasks)."""
    tables = []
    for job in todo:
        assert job.curve is not None
        scored = scored_checkpoints(Path(job.run_dir), job.curve)
        if len(scored):
            tables.append(scored.assign(trial=int(job.name.removeprefix("trial-")), seed=job.seed))
    if not tables:
        return pd.DataFrame(columns=CONFIRM_COLUMNS)
    rows = pd.concat(tables, ignore_index=True)[CONFIRM_COLUMNS]
    return rows.sort_values(["trial", "seed", "frames", "track_seed"]).reset_index(drop=True)
