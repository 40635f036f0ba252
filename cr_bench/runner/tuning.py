"""``cr-bench tune``: Optuna hyperparameter search over train + evaluate.

The search space and settings are :mod:`cr_bench.spec.tune`'s, the Optuna study and trial
states :mod:`cr_bench.runner.study`'s, the outputs :mod:`cr_bench.results.tune_report`'s; this module runs
the trials. :func:`sample` turns a trial into raw values and :func:`to_overrides` turns raw values
into config overrides, so a stored trial rebuilds its run exactly. Each trial trains
for ``frames_per_trial`` env frames per seed, is evaluated periodically on validation
tracks (held out from training and from the default test tracks of ``cr-bench eval``),
reports to Optuna and may be pruned.

The study's value resists evaluation noise (rl-zoo3 issues #286, #469): pruning points
evaluate on ``eval_episodes`` validation tracks, the end of training on
``final_eval_episodes`` of them, and a trial's value is the mean of its last
``value_evals`` evaluations (the final one included), averaged over its seeds. Trial 0
is the base config itself (:func:`cr_bench.runner.study.enqueue_default`), so a study never reports a
config worse than the one it started from.

Running the same command again continues the study, and any number of workers on any
number of machines can share it. ``--trials N`` is the study's total.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import socket
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from filelock import FileLock
from optuna.trial import TrialState
from stable_baselines3.common.callbacks import BaseCallback

from cr_bench import progress
from cr_bench.agents.models import resolve_device, threads_per_job
from cr_bench.agents.registry import resolve_config
from cr_bench.agents.training import train
from cr_bench.errors import CrBenchError, mask_secrets, raised_by_library
from cr_bench.evaluation.episodes import episodes_at_once, evaluate
from cr_bench.results.tune_report import check_some_trial_ran, write_outputs
from cr_bench.runner.confirm import confirm
from cr_bench.runner.executor import run_tasks
from cr_bench.runner.study import (
    HEARTBEAT_SECONDS,
    best_text,
    counted,
    enqueue_default,
    expected_left,
    fail_dead_trials,
    finished_count,
    open_study,
    record_machine,
    retry_later,
)
from cr_bench.runner.task import Task
from cr_bench.spec.loader import to_dict
from cr_bench.spec.run import VALIDATION_TRACK_START, Backend, EvalConfig, RunConfig
from cr_bench.spec.tune import ALGO_PARAMS, ENV_PARAMS, ParamSpec, TuneSettings, default_params

# Errors that fail one trial without stopping the study (diverging or NaN training, a config
# the sampler made invalid), when a library raised them (raised_by_library) or they are
# CrBenchError; their message is kept in the trial's user attrs. Raised by our code, they
# are a bug and stop the study with a traceback.
TRIAL_ERRORS = (ValueError, RuntimeError, FloatingPointError, CrBenchError)


def sample(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Sample step: trial -> raw values, one per searched name."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            assert spec.choices is not None
            values[name] = trial.suggest_categorical(name, spec.choices)
        elif spec.type == "int":
            values[name] = trial.suggest_int(name, int(spec.low or 0), int(spec.high or 0), log=spec.log)
        else:
            values[name] = trial.suggest_float(name, float(spec.low or 0), float(spec.high or 0), log=spec.log)
    return values


def to_overrides(values: dict[str, Any], n_envs: int) -> dict[str, Any]:
    """Convert step: raw values -> RunConfig overrides (``algo`` and ``env`` sections).

    Fixes combinations the space allows but SB3 does not: a PPO batch larger than the
    rollout (``n_steps * n_envs``) is cut to the rollout.
    """
    algo = {name: value for name, value in values.items() if name in ALGO_PARAMS}
    env = {name: value for name, value in values.items() if name in ENV_PARAMS}
    if "n_steps" in algo and "batch_size" in algo:
        algo["batch_size"] = min(algo["batch_size"], algo["n_steps"] * n_envs)
    overrides: dict[str, Any] = {}
    if algo:
        overrides["algo"] = algo
    if env:
        overrides["env"] = env
    return overrides


class TrialEvaluation(BaseCallback):
    """Evaluates at ``settings.eval_steps()``, reports to Optuna and stops a pruned trial.

    The evaluation at the end of the budget is :meth:`final`, on more tracks. As in
    rl-zoo3, pruning sets a flag and returns False; the objective raises ``TrialPruned``
    only after training has closed its envs.
    """

    def __init__(self, trial: optuna.Trial, config: RunConfig, settings: TuneSettings, step_offset: int) -> None:
        super().__init__()
        self.trial, self.config, self.settings, self.step_offset = trial, config, settings, step_offset
        self.pending = settings.eval_steps()[:-1]  # the last one is final()
        self.default = bool(trial.user_attrs.get("default")) if trial is not None else False
        self.history: list[float] = []
        self.pruned = False
        self.last_beat = time.time()

    @property
    def last_value(self) -> float:
        return self.history[-1] if self.history else float("nan")

    def _on_step(self) -> bool:
        if time.time() - self.last_beat > HEARTBEAT_SECONDS:
            self.last_beat = time.time()
            self.trial.set_user_attr("heartbeat", self.last_beat)
        frames = int(self.model.frames_done)  # type: ignore[attr-defined]
        if not self.pending or frames < self.pending[0]:
            return True
        self.evaluate(self.pending.pop(0), self.settings.eval_episodes)
        return not self.pruned and math.isfinite(self.last_value)

    def final(self) -> float:
        """The evaluation at the end of the budget, on ``final_eval_episodes`` tracks."""
        return self.evaluate(self.settings.frames_per_trial, self.settings.final_eval_episodes)

    def value(self) -> float:
        """This seed's value: the mean of its last ``value_evals`` evaluations."""
        return float(np.mean(self.history[-self.settings.value_evals :]))

    def evaluate(self, step: int, episodes: int) -> float:
        """Evaluate now and report at the scheduled ``step`` (frames), the same in every trial:
        pruners compare trials only at equal steps, and the frames actually done drift."""
        backend = typing.cast(Backend, self.settings.eval_backend)  # resolved by TuneSettings
        settings = EvalConfig(
            episodes=episodes,
            track_seed_start=VALIDATION_TRACK_START,
            backend=backend,
            n_envs=episodes_at_once(backend, episodes, self.config.eval.n_envs),
        )
        results = evaluate(self.model, self.config.env, settings)
        self.history.append(float(np.mean([r.true_return for r in results])))
        if math.isfinite(self.last_value):
            self.trial.report(self.last_value, self.step_offset + step)
            # The base config always runs to the end: the study's yardstick.
            self.pruned = not self.default and self.trial.should_prune()
        return self.last_value


def trial_config(settings: TuneSettings, values: dict[str, Any]) -> RunConfig:
    """The run config of a trial with sampled ``values``."""
    overrides = to_overrides(values, settings.resolved_base().n_envs)
    return resolve_config(settings.agent, settings.base_config, overrides, {"frames": settings.frames_per_trial})


def trial_folder(settings: TuneSettings, number: int) -> Path:
    """``RUNS_DIR/tune/STUDY/trial-N``, or ``trial-N.2``, ``.3``... where an older study with the
    same name left that folder: a new trial never trains into another's runs."""
    root = Path(settings.runs_dir) / "tune" / settings.study_name
    folder, copy = root / f"trial-{number}", 1
    while folder.exists():
        copy += 1
        folder = root / f"trial-{number}.{copy}"
    folder.mkdir(parents=True)
    return folder


def objective(trial: optuna.Trial, settings: TuneSettings, space: dict[str, ParamSpec]) -> float:
    """Train the sampled config on each seed; value = mean over seeds of :meth:`TrialEvaluation.value`."""
    if trial.user_attrs.get("default"):  # names the base config cannot fix keep its values
        space = {name: spec for name, spec in space.items() if name in default_params(space, settings.resolved_base())}
    config = trial_config(settings, sample(trial, space))
    trial.set_user_attr("config", to_dict(config))
    folder = trial_folder(settings, trial.number)
    trial.set_user_attr("run_dir", str(folder))
    started = time.monotonic()
    values, frames = [], 0
    try:
        for k in range(settings.seeds_per_trial):
            config.seed = settings.seed + k
            callback = TrialEvaluation(trial, config, settings, step_offset=k * settings.frames_per_trial)
            run = train(config, folder / f"seed-{k}", command=settings.command, callbacks=[callback])
            frames += int(run.read_progress()["frames_done"])
            if callback.pruned:
                raise optuna.TrialPruned(f"pruned at {callback.last_value:.1f} after {frames} frames")
            callback.final()
            if not math.isfinite(callback.value()):
                raise FloatingPointError("evaluation return is not finite")
            values.append(callback.value())
            if callback.pruned and k + 1 < settings.seeds_per_trial:
                raise optuna.TrialPruned(f"pruned at {callback.last_value:.1f} after {frames} frames")
    finally:
        trial.set_user_attr("frames", frames)
        trial.set_user_attr("wall_seconds", round(time.monotonic() - started, 1))
    return float(np.mean(values))


def run_worker(settings: TuneSettings, show_progress: bool = True) -> None:
    """Run trials until the study holds ``settings.trials`` counted trials.

    Counting and starting a trial happen under a file lock, so workers on one machine
    never overshoot; workers on different machines (sharing a --storage URL) may each
    start one trial too many when they start at the same instant.
    """
    space = settings.space()
    study = open_study(settings)
    record_machine(study)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    if not show_progress:  # a worker process: the parent shows the bar and the best trial
        progress.quiet()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = progress.bar(settings.trials, "trial", initial=finished_count(study))
    try:
        while True:
            with FileLock(settings.out_dir / ".ask.lock"):
                fail_dead_trials(study)
                if len(counted(study)) >= settings.trials:  # running ones included
                    break
                trial = study.ask()
                trial.set_user_attr("host", socket.gethostname())
                trial.set_user_attr("pid", os.getpid())
                trial.set_user_attr("heartbeat", time.time())
            _run_trial(study, trial, settings, space)
            bar.n = min(settings.trials, finished_count(study))
            bar.set_postfix(best=best_text(study), refresh=True)
            if show_progress:  # else the parent says it, once for all its workers
                progress.say(f"  trial {trial.number} ended; study: {_left(study, settings)}")
    finally:
        bar.close()


def _run_trial(study: optuna.Study, trial: optuna.Trial, settings: TuneSettings, space: dict[str, ParamSpec]) -> None:
    """Run one trial and tell the study how it ended; only Ctrl-C and our own bugs propagate."""
    try:
        value = objective(trial, settings, space)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except TRIAL_ERRORS as error:
        trial.set_user_attr("error", mask_secrets(f"{type(error).__name__}: {error}")[:500])
        study.tell(trial, state=TrialState.FAIL)
        if not (isinstance(error, CrBenchError) or raised_by_library(error)):
            raise  # a bug of ours: the study stops with its traceback
    except KeyboardInterrupt:
        study.tell(trial, state=TrialState.FAIL)
        retry_later(study, trial)
        raise
    else:
        study.tell(trial, value)


def _left(study: optuna.Study, settings: TuneSettings) -> str:
    """The study's expected time left (:func:`cr_bench.runner.study.expected_left`)."""
    speeds = space_speeds(settings)
    fps = speeds[0] if speeds else None
    return expected_left(study, settings.trials, settings.n_jobs, fps, settings.frames_per_trial)


def space_speeds(settings: TuneSettings) -> tuple[float, float] | None:
    """Each worker's expected frames/s over the search space (:func:`cr_bench.progress.shared_fps`,
    ``n_jobs`` workers sharing the machine): at the space's mean cost per frame and at its
    costliest config. The configs are the grid of the :data:`~cr_bench.progress.COST_PARAMS` the space searches,
    the rest at the base config's values; the mean is over time per frame, as a study's wall
    time adds up. ``None`` when the table has no speed for them.
    """
    space = settings.space()
    axes = {name: _grid(space[name]) for name in progress.COST_PARAMS if name in space}
    seconds = []
    for combo in itertools.product(*axes.values()):
        fps = progress.shared_fps(trial_config(settings, dict(zip(axes, combo, strict=True))), settings.n_jobs)
        if not fps:
            return None
        seconds.append(1.0 / fps)
    return 1.0 / float(np.mean(seconds)), 1.0 / max(seconds)


def _grid(spec: ParamSpec) -> list[Any]:
    if spec.type == "categorical":
        return list(spec.choices or [])
    if spec.type == "int":
        return list(range(int(spec.low or 0), int(spec.high or 0) + 1))
    return [spec.low, spec.high]


def start_text(study: optuna.Study, settings: TuneSettings) -> str:
    """What ``tune`` prints before its trials: how many, and how long they should take.

    Before any trial has finished that is every trial to its full budget (an upper bound on
    the frames: pruning stops many early) at the space's mean cost per frame and at its
    costliest, each worker at its share of the machine; once trials have finished, what they
    measured (:func:`cr_bench.runner.study.expected_left`).
    """
    left = max(0, settings.trials - len(counted(study)))
    backend = settings.resolved_base().env.backend
    head = (
        f"study {settings.study_name}: {left} trial(s) to run, each training up to "
        f"{settings.frames_per_trial:,} frames on {backend} (pruning stops many early)"
    )
    speeds = space_speeds(settings)
    if finished_count(study) or not left or speeds is None:
        return f"{head}; study: {_left(study, settings)}"
    frames = left * settings.frames_per_trial
    mean, costliest = (progress.duration(frames / fps / settings.n_jobs) for fps in speeds)
    return (
        f"{head}; if none were pruned, {frames:,} frames: about {mean} at the search space's mean cost per "
        f"frame ({speeds[0]:,.0f} frames/s a worker), {costliest} at its costliest ({speeds[1]:,.0f}); "
        f"{progress.sharing_text(settings.n_jobs)}; cr-bench bench remeasures"
    )


def _worker_task(settings: TuneSettings) -> int:
    """A tuning worker as an executor task: trials until the study has its count."""
    run_worker(settings, show_progress=False)
    return settings.trials


def _run_workers(settings: TuneSettings, study: optuna.Study) -> None:
    """``settings.n_jobs`` tuning workers as tasks (:mod:`cr_bench.runner.executor`), on local
    processes or Ray, each with its share of the CPUs as torch threads; a bar counts the trials."""
    session: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if settings.executor == "ray":
        from cr_bench.runner.ray_executor import ray_session

        session = ray_session(settings.ray_address)  # one session: the executor's reuses it
    with session:
        if settings.executor == "ray":
            settings = _for_ray(settings)
        else:  # workers share the cores: each trains with its share of torch threads
            threads = threads_per_job(os.cpu_count() or 1, settings.n_jobs)
            settings = dataclasses.replace(settings, base_config={**settings.base_config, "torch_threads": threads})
        threads = int(settings.base_config.get("torch_threads", 1))
        tasks = [Task(_worker_task, (settings,), f"tuning worker {i}", cpus=threads) for i in range(settings.n_jobs)]
        with progress.bar(settings.trials, "trial") as bar:

            def tick() -> None:
                finished = finished_count(study)
                if finished != bar.n:
                    bar.n = min(settings.trials, finished)
                    bar.set_postfix(best=best_text(study), refresh=True)
                    progress.say(f"  {finished} trial(s) ended; study: {_left(study, settings)}")

            run_tasks(tasks, lambda task, value: [], settings.executor, settings.n_jobs, settings.ray_address, tick)


def _check_cluster(settings: TuneSettings, ray: Any) -> None:
    """Refuse a Ray cluster that cannot run the study: one whose nodes cannot share its storage,
    or one without a GPU for a base config on ``cuda``.

    :raises CrBenchError: naming what the cluster lacks.
    """
    from cr_bench.runner.ray_executor import check_storage_reachable, node_capacity

    alive = [node for node in ray.nodes() if node.get("Alive")]
    via_client = (settings.ray_address or os.environ.get("RAY_ADDRESS") or "").startswith("ray://")
    check_storage_reachable(settings.storage, len(alive), through_client=via_client)
    if settings.resolved_base().device == "cuda" and node_capacity(ray)[1] == 0:
        raise CrBenchError("device cuda: no node of the Ray cluster has a GPU; use --device auto or cpu")


def _for_ray(settings: TuneSettings) -> TuneSettings:
    """The settings of Ray workers (on a cluster :func:`_check_cluster` accepted): each worker's
    share of the cluster's CPUs as torch threads, and every path absolute (a task's working
    directory is not the driver's)."""
    from cr_bench.runner.ray_executor import absolute_sqlite, node_capacity, ray_session

    with ray_session(settings.ray_address) as ray:
        cpus, _ = node_capacity(ray)
        total = int(ray.cluster_resources().get("CPU", 1))
    return dataclasses.replace(
        settings,
        base_config={**settings.base_config, "torch_threads": min(cpus, threads_per_job(total, settings.n_jobs))},
        runs_dir=str(Path(settings.runs_dir).resolve()),
        results_dir=str(Path(settings.results_dir).resolve()),
        storage=absolute_sqlite(settings.storage),
        space_file=settings.space_file and str(Path(settings.space_file).resolve()),
    )


def tune(settings: TuneSettings) -> optuna.Study:
    """Run ``settings.n_jobs`` worker processes (or this process for 1), then write the outputs.

    A start that cannot run is refused before the study is opened, so it leaves no study behind
    (no journal, trials.csv or summary.md): a bad space, a device this machine lacks, a Ray
    address that is missing, malformed or unreachable, a cluster without the storage or GPU the
    study needs. A storage that cannot be opened fails in :func:`~cr_bench.runner.study.open_study`.

    :raises CrBenchError: for a refused start, or when every finished trial failed (with the first errors).
    """
    settings.space()  # fail fast on a bad space
    if settings.executor == "local":
        resolve_device(settings.resolved_base().device)
        return _run_study(settings)
    from cr_bench.runner.ray_executor import ray_session

    with ray_session(settings.ray_address) as ray:  # one session: the workers' and the executor's reuse it
        _check_cluster(settings, ray)
        return _run_study(settings)


def _run_study(settings: TuneSettings) -> optuna.Study:
    """Open (or continue) the study, run its trials, then write the outputs."""
    n_jobs = settings.n_jobs
    study = open_study(settings)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(settings.out_dir / ".ask.lock"):
        enqueue_default(study, settings)
    progress.say(start_text(study, settings))
    if settings.confirm and finished_count(study) < settings.trials:  # else the confirmation prices itself
        runs = (settings.confirm + 1) * settings.confirm_seeds
        speeds = space_speeds(settings)
        when = "speed not measured on this machine yet: cr-bench bench measures it"
        if speeds is not None:
            seconds = runs * settings.confirm_frames / speeds[0] / n_jobs
            when = f"about {progress.duration(seconds)} at the search space's mean cost per frame"
        progress.say(
            f"then the confirmation: up to {settings.confirm} config(s) and the base config x "
            f"{settings.confirm_seeds} fresh seed(s), {runs * settings.confirm_frames:,} frames at most; {when}; "
            f"{progress.sharing_text(n_jobs)}"
        )
    try:
        if settings.executor == "local" and n_jobs == 1:
            with progress.library_logs_above_bars():
                run_worker(settings)
        else:
            _run_workers(settings, study)
    finally:
        write_outputs(study, settings)
    check_some_trial_ran(study)
    if settings.confirm:
        try:
            confirm(settings, study)
        finally:
            write_outputs(study, settings)
    return study
