"""``cr-bench tune``: Optuna hyperparameter search over train + evaluate.

A search space is data (:data:`SEARCH_SPACES`, narrowed or replaced by ``--space FILE``);
:func:`sample` turns a trial into raw values and :func:`to_overrides` turns raw values
into config overrides, so a stored trial rebuilds its run exactly. Each trial trains
for ``frames_per_trial`` env frames per seed, is evaluated periodically on validation
tracks (held out from training and from the default test tracks of ``cr-bench eval``),
reports to Optuna and may be pruned.

The study's value resists evaluation noise (rl-zoo3 issues #286, #469): pruning points
evaluate on ``eval_episodes`` validation tracks, the end of training on
``final_eval_episodes`` of them, and a trial's value is the mean of its last
``value_evals`` evaluations (the final one included), averaged over its seeds. Trial 0
is the base config itself (:func:`enqueue_default`), so a study never reports a
config worse than the one it started from.

Studies live in persistent storage (an Optuna journal file under the results folder
by default, or any ``--storage`` URL such as PostgreSQL): running the same command again
continues the study, and any number of workers on any number of machines can share it.
``--trials N`` is the study's total.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import math
import multiprocessing
import os
import platform
import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from cr_bench.errors import CrBenchError, raised_by_library
from cr_bench.evaluation import episodes_at_once, evaluate
from cr_bench.io import atomic_write_text, write_csv
from cr_bench.plots import plot_optimization_history
from cr_bench.spec.agents import resolve_config
from cr_bench.spec.loader import to_dict, write_yaml
from cr_bench.spec.run import VALIDATION_TRACK_START, RunConfig
from cr_bench.spec.tune import ALGO_PARAMS, ENV_PARAMS, ParamSpec, TuneSettings, default_params
from cr_bench.tables import markdown_table
from cr_bench.training import train

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Errors that fail one trial without stopping the study (diverging or NaN training, a config
# the sampler made invalid), when a library raised them (raised_by_library) or they are
# CrBenchError; their message is kept in the trial's user attrs. Raised by our code, they
# are a bug and stop the study with a traceback.
TRIAL_ERRORS = (ValueError, RuntimeError, FloatingPointError, CrBenchError)


def interrupted(trial: FrozenTrial) -> bool:
    """Stopped by Ctrl-C or a killed worker: failed without an error of its own. It does not
    count toward ``--trials``; its parameters are queued again (:func:`retry_later`)."""
    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


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


IN_MEMORY_STORAGES = ("sqlite://", "sqlite:///:memory:")
# Errors of two workers creating the same tables or study at the same instant: retried.
_RACES = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, optuna.exceptions.DuplicatedStudyError)


_RACE_MESSAGES = ("already exists", "unique", "duplicate", "locked")


def _retry(make: Callable[[], Any], attempts: int = 8) -> Any:
    """``make()``, retried with a random back-off while it loses a creation race (another
    worker made the tables or the study first); any other error is raised at once."""
    for attempt in range(attempts):
        try:
            return make()
        except _RACES as error:
            race = isinstance(error, optuna.exceptions.DuplicatedStudyError) or any(
                text in str(error).lower() for text in _RACE_MESSAGES
            )
            if not race or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    raise AssertionError("unreachable")


def make_storage(settings: TuneSettings) -> optuna.storages.BaseStorage:
    """The study's storage: the URL given, or a journal file under the results folder."""
    if settings.storage:
        if settings.storage.split("?")[0] in IN_MEMORY_STORAGES:
            raise CrBenchError(
                f"--storage {settings.storage} is in memory, private to each process: use a file "
                "(sqlite:///study.db), a PostgreSQL URL, or no --storage for the default journal"
            )
        try:
            return _retry(lambda: RDBStorage(settings.storage))  # type: ignore[no-any-return]
        except Exception as error:  # SQLAlchemy and DB drivers raise many types: all are a bad URL or server
            raise CrBenchError(f"cannot open storage {settings.storage!r}: {str(error).splitlines()[0]}") from None
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(settings.out_dir / "journal.log")))


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` (one of :data:`cr_bench.spec.tune.Sampler`), seeded."""
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    }
    if name not in samplers:
        raise CrBenchError(f"unknown sampler {name!r}; known: {', '.join(samplers)}")
    return samplers[name]()


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    """Pruners over reports at env-frame steps: the first rung is one evaluation interval."""
    budget = settings.frames_per_trial * settings.seeds_per_trial
    first = max(1, settings.eval_steps()[0])
    pruners = {
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=first, max_resource=budget, reduction_factor=3
        ),
        "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    if settings.pruner not in pruners:
        raise CrBenchError(f"unknown pruner {settings.pruner!r}; known: {', '.join(pruners)}")
    return pruners[settings.pruner]()


def open_study(settings: TuneSettings) -> optuna.Study:
    """Create the study, or load it to continue (same name, same storage).

    Workers started at the same instant on a new storage race to create its tables and
    the study; the loser retries and loads what the winner made.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(settings)
    study: optuna.Study = _retry(
        lambda: optuna.create_study(
            study_name=settings.study_name,
            storage=storage,
            sampler=make_sampler(settings.sampler, settings.seed + os.getpid()),
            pruner=make_pruner(settings),
            direction="maximize",
            load_if_exists=True,
        )
    )
    # Trial values are comparable only for one agent, budget, set of validation tracks and value rule.
    validation = {
        "agent": settings.agent,
        "frames_per_trial": settings.frames_per_trial,
        "evals_per_trial": settings.evals_per_trial,
        "seeds_per_trial": settings.seeds_per_trial,
        "eval_backend": settings.eval_backend,
        "eval_episodes": settings.eval_episodes,
        "final_eval_episodes": settings.final_eval_episodes,
        "value_evals": settings.value_evals,
    }
    for key, value in validation.items():
        saved = study.user_attrs.get(key)
        if saved is None:
            study.set_user_attr(key, value)
        elif saved != value:
            raise CrBenchError(
                f"study {settings.study_name} was run with {key}={saved}, not {value}; keep it or start a new study"
            )
    return study


def enqueue_default(study: optuna.Study, settings: TuneSettings) -> None:
    """Queue the base config as the study's first trial (once), as rl-zoo3 users ask for."""
    if any(t.user_attrs.get("default") for t in study.get_trials(deepcopy=False)):
        return
    space = settings.space()
    study.enqueue_trial(default_params(space, settings.resolved_base()), user_attrs={"default": True})


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward ``--trials``: finished ones (not interrupted) and running ones."""
    return sum(
        1
        for trial in study.get_trials(deepcopy=False)
        if trial.state == TrialState.RUNNING or (trial.state in FINISHED and not interrupted(trial))
    )


def retry_later(study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> None:
    """Queue an interrupted trial's parameters again, so a resumed study loses nothing."""
    attrs = {"default": True} if trial.user_attrs.get("default") else {}
    study.enqueue_trial(dict(trial.params), user_attrs={**attrs, "retry_of": trial.number})


HEARTBEAT_SECONDS = 300
"""A running trial records a heartbeat (wall-clock time) this often."""
STALE_SECONDS = 1800
"""A trial of another host silent this long is taken for dead (its machine is gone)."""


def fail_dead_trials(study: optuna.Study) -> None:
    """Fail the RUNNING trials of dead workers, and queue their parameters again.

    A worker on this host is dead when its process is gone (kill -9, power loss); a worker
    on another host when its trial's heartbeat is older than :data:`STALE_SECONDS` (a
    study moved to a fresh machine through git, or a cluster node lost).
    """
    host, now = socket.gethostname(), time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") == host:
            dead = pid is not None and not _alive(int(pid))
        else:
            dead = now - float(trial.user_attrs.get("heartbeat", now)) > STALE_SECONDS
        if dead:
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except (RuntimeError, ValueError):
                continue  # another worker finished it first
            retry_later(study, trial)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        backend = str(self.settings.eval_backend)  # resolved by TuneSettings
        results = evaluate(
            self.model,
            self.config.env,
            episodes,
            VALIDATION_TRACK_START,
            backend=backend,
            n_envs=episodes_at_once(backend, episodes, self.config.eval.n_envs),
        )
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


def run_worker(settings: TuneSettings, progress: bool = True) -> None:
    """Run trials until the study holds ``settings.trials`` counted trials.

    Counting and starting a trial happen under a file lock, so workers on one machine
    never overshoot; workers on different machines (sharing a --storage URL) may each
    start one trial too many when they start at the same instant.
    """
    space = settings.space()
    study = open_study(settings)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=settings.trials, initial=_finished(study), unit="trial", disable=None if progress else True)
    try:
        while True:
            with _file_lock(settings.out_dir / ".ask.lock"):
                fail_dead_trials(study)
                if counted_trials(study) >= settings.trials:
                    break
                trial = study.ask()
                trial.set_user_attr("host", socket.gethostname())
                trial.set_user_attr("pid", os.getpid())
                trial.set_user_attr("heartbeat", time.time())
            _run_trial(study, trial, settings, space)
            bar.n = min(settings.trials, _finished(study))
            bar.set_postfix(best=_best_text(study), refresh=True)
    finally:
        bar.close()


def _run_trial(study: optuna.Study, trial: optuna.Trial, settings: TuneSettings, space: dict[str, ParamSpec]) -> None:
    """Run one trial and tell the study how it ended; only Ctrl-C and our own bugs propagate."""
    try:
        value = objective(trial, settings, space)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except TRIAL_ERRORS as error:
        trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
        study.tell(trial, state=TrialState.FAIL)
        if not (isinstance(error, CrBenchError) or raised_by_library(error)):
            raise  # a bug of ours: the study stops with its traceback
    except KeyboardInterrupt:
        study.tell(trial, state=TrialState.FAIL)
        retry_later(study, trial)
        raise
    else:
        study.tell(trial, value)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def counted(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials that count: every trial but the interrupted ones and those not yet run."""
    return [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING and not interrupted(t)]


def _finished(study: optuna.Study) -> int:
    return sum(1 for t in counted(study) if t.state in FINISHED)


def _best_text(study: optuna.Study) -> str:
    try:
        return f"{study.best_value:.1f}"
    except ValueError:
        return "-"


def _worker_entry(settings: TuneSettings) -> None:
    run_worker(settings, progress=False)


def tune(settings: TuneSettings) -> optuna.Study:
    """Run ``settings.n_jobs`` worker processes (or this process for 1), then write the outputs.

    :raises CrBenchError: when every finished trial failed (with the first errors).
    """
    n_jobs = settings.n_jobs
    settings.space()  # fail fast on a bad space
    study = open_study(settings)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(settings.out_dir / ".ask.lock"):
        enqueue_default(study, settings)
    try:
        if n_jobs == 1:
            run_worker(settings)
        else:
            # Workers share the cores: each trains with its share of torch threads.
            threads = max(1, (os.cpu_count() or 1) // n_jobs)
            settings = dataclasses.replace(settings, base_config={**settings.base_config, "torch_threads": threads})
            context = multiprocessing.get_context("forkserver")
            workers = [context.Process(target=_worker_entry, args=(settings,)) for _ in range(n_jobs)]
            for worker in workers:
                worker.start()
            try:
                with tqdm(total=settings.trials, unit="trial", disable=None) as bar:
                    while any(worker.is_alive() for worker in workers):
                        time.sleep(1)
                        bar.n = min(settings.trials, _finished(study))
                        bar.set_postfix(best=_best_text(study), refresh=True)
            finally:
                for worker in workers:  # on Ctrl-C they mark their trials interrupted and stop
                    worker.join(timeout=60)
            failed = [worker.exitcode for worker in workers if worker.exitcode]
            if failed:
                raise CrBenchError(f"{len(failed)} tuning worker(s) failed (exit codes {failed})")
    finally:
        write_outputs(study, settings)
    check_some_trial_ran(study)
    return study


def check_some_trial_ran(study: optuna.Study) -> None:
    """A study whose finished trials all failed is an error, with the first reasons."""
    trials = [t for t in counted(study) if t.state in FINISHED]
    if trials and all(t.state == TrialState.FAIL for t in trials):
        reasons = list(dict.fromkeys(t.user_attrs.get("error", "unknown") for t in trials))[:3]
        raise CrBenchError(f"all {len(trials)} trials failed; first errors: {' | '.join(reasons)}")


def write_outputs(study: optuna.Study, settings: TuneSettings) -> None:
    """trials.csv, best.yaml, summary.md, importances.csv and history.png in ``settings.out_dir``."""
    out = settings.out_dir
    out.mkdir(parents=True, exist_ok=True)
    trials = counted(study)
    names = sorted({name for t in trials for name in t.params})
    write_csv(
        out / "trials.csv",
        ["number", "state", "value", *names, "frames", "wall_seconds", "default"],
        (
            [t.number, t.state.name, "" if t.value is None else round(t.value, 3)]
            + [t.params.get(name, "") for name in names]
            + [
                t.user_attrs.get("frames", ""),
                t.user_attrs.get("wall_seconds", ""),
                bool(t.user_attrs.get("default")),
            ]
            for t in trials
        ),
    )
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -(t.value or 0.0))
    if complete:
        best = complete[0]
        config = dict(best.user_attrs["config"])
        config.pop("frames", None)  # the budget is the user's choice when training the best config
        write_yaml(out / "best.yaml", config)
    importances = _importances(study)
    if importances:
        write_csv(out / "importances.csv", ["parameter", "importance"], importances.items())
    atomic_write_text(out / "summary.md", _summary(settings, trials, complete, importances))
    if len(complete) >= 1:
        plot_optimization_history(study, out / "history.png")


def _wall_hours(trials: list[FrozenTrial]) -> float:
    """Wall hours during which some trial ran: the union of the trials' spans, so workers
    that overlap count once and days between sessions not at all."""
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials if t.datetime_start and t.datetime_complete)
    total, end = 0.0, None
    for start, complete in spans:
        if end is None or start > end:
            total += (complete - start).total_seconds()
            end = complete
        elif complete > end:
            total += (complete - end).total_seconds()
            end = complete
    return total / 3600


def _summary(
    settings: TuneSettings, trials: list[FrozenTrial], complete: list[FrozenTrial], importances: dict[str, float]
) -> str:
    states = {state.name: sum(1 for t in trials if t.state == state) for state in FINISHED}
    frames = sum(int(t.user_attrs.get("frames", 0)) for t in trials)
    lines = [
        f"# Tuning {settings.agent}: study `{settings.study_name}`",
        "",
        f"Produced by `{settings.command}`.",
        "",
        f"{len(trials)} trials: {states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} failed; "
        f"{frames:,} env frames in {_wall_hours(trials):.2f} wall hours on {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}). "
        f"Each trial trains up to {settings.frames_per_trial:,} env frames per seed on {settings.seeds_per_trial} "
        f"seed(s) with {settings.pruner} pruning and the {settings.sampler} sampler. It is evaluated "
        f"{settings.evals_per_trial} times on validation tracks (seeds {VALIDATION_TRACK_START:,}+, "
        f"{settings.eval_backend}): {settings.eval_episodes} tracks at each pruning point, "
        f"{settings.final_eval_episodes} at the end. Its value is the mean raw return of its last "
        f"{settings.value_evals} evaluations.",
        "",
    ]
    default = next((t for t in trials if t.user_attrs.get("default") and t.state == TrialState.COMPLETE), None)
    if default is not None:
        lines += [f"The base config (trial {default.number}) scored {default.value:.1f}.", ""]
    if complete:
        names = sorted(complete[0].params)
        rows = [[t.number, f"{t.value:.1f}", *(t.params.get(n, "") for n in names)] for t in complete[:5]]
        lines += ["## Best trials", "", *markdown_table(["trial", "value", *names], rows, "rr" + "l" * len(names))]
        lines += ["", f"`best.yaml` holds trial {complete[0].number}'s config: `cr-bench train {settings.agent} "
                  f"--config {settings.out_dir / 'best.yaml'} --frames N`.", ""]  # fmt: skip
        if importances:
            rows = [[name, f"{value:.3f}"] for name, value in importances.items()]
            lines += [
                "## Parameter importances (PED-ANOVA)",
                "",
                *markdown_table(["parameter", "importance"], rows, "lr"),
            ]
            lines.append("")
        lines += ["![optimisation history](history.png)", ""]
    return "\n".join(lines)


def _importances(study: optuna.Study) -> dict[str, float]:
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}  # too few or too uniform trials
