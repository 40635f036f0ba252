"""The Optuna side of ``cr-bench tune``: storage, sampler, pruner, the study, and trial states.

Trial states change only through Optuna's public API (``study.tell``, ``enqueue_trial``).
A trial stopped by Ctrl-C or a dead worker is failed and its parameters queued again
(:func:`retry_later`), so it does not count toward ``--trials`` (:func:`interrupted`);
trial 0 is the base config (:func:`enqueue_default`).

Studies live in persistent storage (an Optuna journal file under the results folder by
default, or any ``--storage`` URL such as PostgreSQL); workers started at the same instant
on a new storage race to create it, and the loser retries (:func:`open_study`).
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from cr_bench import progress
from cr_bench.errors import CrBenchError
from cr_bench.results.throughput import machine_text
from cr_bench.spec.tune import DEFAULT_PRUNER, TuneSettings, default_params

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def interrupted(trial: FrozenTrial) -> bool:
    """Stopped by Ctrl-C or a killed worker: failed without an error of its own. It does not
    count toward ``--trials``; its parameters are queued again (:func:`retry_later`)."""
    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


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
        # constant_liar: parallel workers (--n-jobs, Ray, a shared database) see each other's
        # running trials as bad results and sample elsewhere; alone it changes nothing.
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    }
    if name not in samplers:
        raise CrBenchError(f"unknown sampler {name!r}; known: {', '.join(samplers)}")
    return samplers[name]()


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    """Pruners over reports at env-frame steps: the first rung is one evaluation interval
    (``settings.pruner``, which :func:`open_study` resolves)."""
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
            direction="maximize",
            load_if_exists=True,
        )
    )
    if settings.pruner is None:  # a study continues with its own pruner; a new one takes the default
        settings.pruner = study.user_attrs.get("pruner", DEFAULT_PRUNER)
    _check_same_rules(study, settings, record=True)
    study.pruner = make_pruner(settings)
    return study


def open_existing_study(settings: TuneSettings) -> tuple[optuna.Study, TuneSettings]:
    """Load a study to read it (nothing is created), and ``settings`` under the study's own
    rules (budget, evaluations, value rule, pruner): a replay reads a study as it was run,
    whatever today's defaults. The agent must be the study's."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    where = settings.storage or str(settings.out_dir)
    if not settings.storage and not (settings.out_dir / "journal.log").exists():
        raise CrBenchError(f"no study {settings.study_name} in {where}: run cr-bench tune first")
    try:
        study = optuna.load_study(study_name=settings.study_name, storage=make_storage(settings))
    except KeyError:
        raise CrBenchError(f"no study {settings.study_name} in {where}: run cr-bench tune first") from None
    saved = {key: study.user_attrs[key] for key in _rules(settings) if key in study.user_attrs}
    _check_same_rules(study, settings, record=False, pruner=False, keys={"agent"})
    return study, dataclasses.replace(settings, **{key: value for key, value in saved.items() if key != "agent"})


def _rules(settings: TuneSettings, pruner: bool = True) -> dict[str, Any]:
    """What makes a study's trial values comparable, as the study records it."""
    rules = {
        "agent": settings.agent,
        "frames_per_trial": settings.frames_per_trial,
        "evals_per_trial": settings.evals_per_trial,
        "seeds_per_trial": settings.seeds_per_trial,
        "eval_backend": settings.eval_backend,
        "eval_episodes": settings.eval_episodes,
        "final_eval_episodes": settings.final_eval_episodes,
        "value_evals": settings.value_evals,
    }
    if pruner:
        rules["pruner"] = settings.pruner
    return rules


def _check_same_rules(
    study: optuna.Study, settings: TuneSettings, record: bool, pruner: bool = True, keys: set[str] | None = None
) -> None:
    """Trial values are comparable only for one agent, budget, set of validation tracks and
    value rule, and pruning decisions only under one pruner (pruners keep their rungs in the
    trials under the same names, at different steps): a study keeps the ones it was started
    with (``record``: save them if new; ``pruner``: check the pruner too; ``keys``: check only these)."""
    validation = _rules(settings, pruner)
    for key, value in validation.items():
        if keys is not None and key not in keys:
            continue
        saved = study.user_attrs.get(key)
        if saved is None:
            if record:
                study.set_user_attr(key, value)
        elif saved != value:
            keep = "" if key == "agent" else f" ({'--' + key.replace('_', '-')} {saved})"
            raise CrBenchError(
                f"study {settings.study_name} was run with {key}={saved}, not {value}; keep it{keep} "
                "or start a new study (--study-name)"
            )


MACHINE_ATTR = "ran on: "
"""A study's user attr per kind of machine its workers ran on (+ its CPUs and model): one key
each, so workers on different machines never overwrite each other (hostnames may repeat)."""


def record_machine(study: optuna.Study) -> None:
    """Record in the study what this machine is (once per kind of machine)."""
    key = MACHINE_ATTR + machine_text()
    if key not in study.user_attrs:
        study.set_user_attr(key, True)


def enqueue_default(study: optuna.Study, settings: TuneSettings) -> None:
    """Queue the base config as the study's first trial (once), as rl-zoo3 users ask for."""
    if any(t.user_attrs.get("default") for t in study.get_trials(deepcopy=False)):
        return
    space = settings.space()
    study.enqueue_trial(default_params(space, settings.resolved_base()), user_attrs={"default": True})


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


def counted(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials that count: every trial but the interrupted ones and those not yet run."""
    return [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING and not interrupted(t)]


def finished_count(study: optuna.Study) -> int:
    """Counted trials that have ended (complete, pruned or failed)."""
    return sum(1 for t in counted(study) if t.state in FINISHED)


def best_text(study: optuna.Study) -> str:
    try:
        return f"{study.best_value:.1f}"
    except ValueError:
        return "-"


def expected_left(study: optuna.Study, trials: int, workers: int, fps: float | None, frames_per_trial: int) -> str:
    """How long the study's remaining trials should take (and the whole study), kept current as
    trials finish: from the finished trials' own frames and wall seconds (pruning included) once there are any,
    else from ``fps`` (each worker's expected frames/s over the search space) and the full
    ``frames_per_trial``.

    >>> expected_left(optuna.create_study(), 10, 2, 500.0, 300_000)
    'about 50 min left if none is pruned (estimated)'
    """
    finished = [t for t in counted(study) if t.state in FINISHED and t.user_attrs.get("wall_seconds")]
    left = max(0, trials - finished_count(study))
    if finished:
        frames = sum(float(t.user_attrs.get("frames", 0)) for t in finished)
        seconds = sum(float(t.user_attrs["wall_seconds"]) for t in finished)
        each = seconds / len(finished) / max(1, workers)  # wall seconds a trial adds to the study
        return (
            f"about {progress.duration(left * each)} left, {progress.duration(trials * each)} for the whole "
            f"study (measured on {len(finished)} trial(s), {frames / seconds:,.0f} frames/s a worker)"
        )
    if not fps:
        return f"{left} trial(s) left"
    seconds = left * frames_per_trial / fps / max(1, workers)
    return f"about {progress.duration(seconds)} left if none is pruned (estimated)"
