"""``cr-bench tune``: Optuna hyperparameter search over train + evaluate.

A search space is data (:data:`SEARCH_SPACES`, narrowed or replaced by ``--space FILE``);
:func:`sample` turns a trial into raw values and :func:`to_overrides` turns raw values
into config overrides, so a stored trial rebuilds its run exactly. Each trial trains
for ``frames_per_trial`` env frames per seed, is evaluated periodically on validation
tracks (held out from training and from the default test tracks of ``cr-bench eval``),
reports to Optuna and may be pruned.

Studies live in persistent storage (an Optuna journal file under the results folder
by default, or any ``--storage`` URL such as PostgreSQL): running the same command again
continues the study, and any number of workers on any number of machines can share it.
``--trials N`` is the study's total.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import math
import multiprocessing
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from cr_bench.agents import get_agent, resolve_config
from cr_bench.config import RunConfig, from_dict, read_yaml, to_dict, write_yaml
from cr_bench.errors import CrBenchError
from cr_bench.evaluation import evaluate
from cr_bench.training import train

VALIDATION_TRACK_START = 2_000_000
"""Tuning evaluates on tracks 2,000,000+: neither training seeds nor eval's default 1,000,000+."""
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Errors that fail one trial (diverging or NaN training, a config the sampler made
# invalid) without stopping the study; their message is kept in the trial's user attrs.
TRIAL_ERRORS = (ValueError, RuntimeError, FloatingPointError, CrBenchError)


@dataclass
class ParamSpec:
    """One searched hyperparameter."""

    type: str
    """``float``, ``int`` or ``categorical``."""
    low: float | None = None
    """Lower bound (float and int)."""
    high: float | None = None
    """Upper bound (float and int)."""
    log: bool = False
    """Sample on a log scale (float and int)."""
    choices: list[Any] | None = None
    """Values to choose from (categorical)."""

    def check(self, name: str) -> None:
        if self.type == "categorical":
            if not self.choices:
                raise CrBenchError(f"space.{name}: categorical needs a non-empty choices list")
        elif self.type in ("float", "int"):
            if self.low is None or self.high is None or self.low > self.high:
                raise CrBenchError(f"space.{name}: {self.type} needs low <= high")
            if self.log and self.low <= 0:
                raise CrBenchError(f"space.{name}: log scale needs low > 0")
        else:
            raise CrBenchError(f"space.{name}: type must be float, int or categorical, got {self.type!r}")


# Where each searchable name goes in the RunConfig.
ALGO_PARAMS = {
    "learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range", "ent_coef",
    "vf_coef", "max_grad_norm", "buffer_size", "learning_starts", "target_update_interval",
    "exploration_fraction", "exploration_final_eps", "train_freq", "gradient_steps", "tau",
}  # fmt: skip
ENV_PARAMS = {"action_repeat", "frame_stack", "obs_size"}

_PPO_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True},
    "n_steps": {"type": "categorical", "choices": [64, 128, 256, 512]},
    "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
    "n_epochs": {"type": "int", "low": 3, "high": 10},
    "gamma": {"type": "categorical", "choices": [0.95, 0.98, 0.99, 0.995, 0.999]},
    "gae_lambda": {"type": "categorical", "choices": [0.8, 0.9, 0.95, 0.98]},
    "clip_range": {"type": "categorical", "choices": [0.1, 0.2, 0.3]},
    "ent_coef": {"type": "float", "low": 1e-8, "high": 1e-2, "log": True},
    "max_grad_norm": {"type": "categorical", "choices": [0.3, 0.5, 1.0, 2.0, 5.0]},
    "action_repeat": {"type": "categorical", "choices": [2, 4, 8]},
    "frame_stack": {"type": "categorical", "choices": [2, 3, 4]},
}
SEARCH_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    # The six-conv network needs the full 96x96 frame, so ppo-beta does not search obs_size.
    "ppo-beta": _PPO_SPACE,
    "ppo": {**_PPO_SPACE, "obs_size": {"type": "categorical", "choices": [64, 84, 96]}},
    "recurrent-ppo": {
        **_PPO_SPACE,
        "obs_size": {"type": "categorical", "choices": [64, 84, 96]},
        "frame_stack": {"type": "categorical", "choices": [1, 2]},
    },
    "dqn": {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        "gamma": {"type": "categorical", "choices": [0.95, 0.98, 0.99, 0.995]},
        "buffer_size": {"type": "categorical", "choices": [10_000, 50_000, 100_000]},
        "learning_starts": {"type": "categorical", "choices": [1_000, 5_000, 10_000]},
        "target_update_interval": {"type": "categorical", "choices": [500, 1_000, 5_000, 10_000]},
        "exploration_fraction": {"type": "float", "low": 0.05, "high": 0.5},
        "exploration_final_eps": {"type": "float", "low": 0.01, "high": 0.2},
        "train_freq": {"type": "categorical", "choices": [1, 4, 8]},
        "gradient_steps": {"type": "categorical", "choices": [1, 2, 4]},
        "action_repeat": {"type": "categorical", "choices": [2, 4, 8]},
        "frame_stack": {"type": "categorical", "choices": [2, 3, 4]},
        "obs_size": {"type": "categorical", "choices": [64, 84, 96]},
    },
}
SEARCH_SPACES["qrdqn"] = SEARCH_SPACES["dqn"]
"""Default search spaces per agent. Names not listed keep the agent's (or --config's) value."""


def load_space(agent: str, path: Path | None = None) -> dict[str, ParamSpec]:
    """The agent's search space, narrowed or replaced by a YAML file.

    The file holds ``params: {name: spec or null}`` and optionally ``replace: true``. By
    default its params override the agent's entries of the same name (``null`` drops a
    name, so it keeps the base config's value); with ``replace: true`` they are the whole
    space.
    """
    if agent not in SEARCH_SPACES:
        raise CrBenchError(f"no search space for agent {agent!r}; tunable: {', '.join(SEARCH_SPACES)}")
    raw: dict[str, Any] = dict(SEARCH_SPACES[agent])
    if path is not None:
        data = read_yaml(path)
        unknown = set(data) - {"params", "replace"}
        if unknown:
            raise CrBenchError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: params, replace")
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise CrBenchError(f"{path}: params must be a mapping of name -> spec")
        raw = dict(params) if data.get("replace", False) else {**raw, **params}
        raw = {name: spec for name, spec in raw.items() if spec is not None}
    space = {}
    for name, spec in raw.items():
        if name not in ALGO_PARAMS | ENV_PARAMS:
            known = ", ".join(sorted(ALGO_PARAMS | ENV_PARAMS))
            raise CrBenchError(f"space: unknown parameter {name!r}; searchable: {known}")
        space[name] = from_dict(ParamSpec, spec, f"space.{name}")
        space[name].check(name)
    return space


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


@dataclass
class TuneSettings:
    """Everything a tuning worker needs; plain data so it crosses process boundaries."""

    agent: str
    trials: int
    frames_per_trial: int
    eval_episodes: int = 5
    evals_per_trial: int = 4
    seeds_per_trial: int = 1
    seed: int = 0
    study_name: str = ""
    storage: str = ""
    results_dir: str = "results"
    runs_dir: str = "runs"
    sampler: str = "tpe"
    pruner: str = "median"
    eval_backend: str = "gymnasium"
    space_file: str | None = None
    base_config: dict[str, Any] = field(default_factory=dict)
    command: str = ""

    @property
    def out_dir(self) -> Path:
        return Path(self.results_dir) / "tune" / self.study_name


def make_storage(settings: TuneSettings) -> optuna.storages.BaseStorage:
    """The study's storage: the URL given, or a journal file under the results folder."""
    if settings.storage:
        try:
            return RDBStorage(settings.storage)
        except Exception as error:  # SQLAlchemy and DB drivers raise many types: all are a bad URL or server
            raise CrBenchError(f"cannot open storage {settings.storage!r}: {str(error).splitlines()[0]}") from None
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(settings.out_dir / "journal.log")))


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    }
    if name not in samplers:
        raise CrBenchError(f"unknown sampler {name!r}; known: {', '.join(samplers)}")
    return samplers[name]()


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    pruners = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    if name not in pruners:
        raise CrBenchError(f"unknown pruner {name!r}; known: {', '.join(pruners)}")
    return pruners[name]()


def open_study(settings: TuneSettings) -> optuna.Study:
    """Create the study, or load it to continue (same name, same storage)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=make_storage(settings),
        sampler=make_sampler(settings.sampler, settings.seed + os.getpid()),
        pruner=make_pruner(settings.pruner),
        direction="maximize",
        load_if_exists=True,
    )
    # Trial values are comparable only on one set of validation tracks.
    validation = {"eval_backend": settings.eval_backend, "eval_episodes": settings.eval_episodes}
    for key, value in validation.items():
        saved = study.user_attrs.get(key)
        if saved is None:
            study.set_user_attr(key, value)
        elif saved != value:
            raise CrBenchError(
                f"study {settings.study_name} was run with {key}={saved}, not {value}; keep it or start a new study"
            )
    return study


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward ``--trials``: finished ones (not Ctrl-C'd) and running ones."""
    count = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.RUNNING or (trial.state in FINISHED and not trial.user_attrs.get("interrupted")):
            count += 1
    return count


def fail_dead_trials(study: optuna.Study) -> None:
    """Mark RUNNING trials of workers that died on this host (kill -9, power loss) as failed."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") == host and pid is not None and not _alive(int(pid)):
            study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TrialEvaluation(BaseCallback):
    """Evaluates every ``every`` frames, reports to Optuna and stops a pruned trial.

    As in rl-zoo3, pruning sets a flag and returns False; the objective raises
    ``TrialPruned`` only after training has closed its envs.
    """

    def __init__(self, trial: optuna.Trial, config: RunConfig, settings: TuneSettings, step_offset: int) -> None:
        super().__init__()
        self.trial, self.config, self.settings, self.step_offset = trial, config, settings, step_offset
        self.every = max(1, config.frames // settings.evals_per_trial)
        self.next_eval = self.every
        self.last_value = float("nan")
        self.pruned = False

    def _on_step(self) -> bool:
        if int(self.model.frames_done) < self.next_eval:  # type: ignore[attr-defined]
            return True
        self.evaluate(self.next_eval)
        self.next_eval += self.every
        return not self.pruned and math.isfinite(self.last_value)

    def evaluate(self, step: int) -> float:
        """Evaluate now and report at the scheduled ``step`` (frames), the same in every trial:
        pruners compare trials only at equal steps, and the frames actually done drift."""
        results = evaluate(
            self.model,
            self.config.env,
            self.settings.eval_episodes,
            VALIDATION_TRACK_START,
            backend=self.settings.eval_backend,
            n_envs=self.config.eval.n_envs,
        )
        self.last_value = float(np.mean([r.true_return for r in results]))
        if math.isfinite(self.last_value):
            self.trial.report(self.last_value, self.step_offset + step)
            self.pruned = self.trial.should_prune()
        return self.last_value


def objective(trial: optuna.Trial, settings: TuneSettings, space: dict[str, ParamSpec]) -> float:
    """Train the sampled config on each seed; value = mean final validation return over seeds."""
    values = sample(trial, space)
    base_n_envs = resolve_config(settings.agent, settings.base_config).n_envs
    overrides = to_overrides(values, base_n_envs)
    config = resolve_config(settings.agent, settings.base_config, overrides, {"frames": settings.frames_per_trial})
    trial.set_user_attr("config", to_dict(config))
    started = time.monotonic()
    returns, frames = [], 0
    try:
        for k in range(settings.seeds_per_trial):
            config.seed = settings.seed + k
            run_dir = Path(settings.runs_dir) / "tune" / settings.study_name / f"trial-{trial.number}" / f"seed-{k}"
            callback = TrialEvaluation(trial, config, settings, step_offset=k * settings.frames_per_trial)
            run = train(config, run_dir, command=settings.command, callbacks=[callback])
            frames += int(run.read_progress()["frames_done"])
            if callback.pruned:
                raise optuna.TrialPruned(f"pruned at {callback.last_value:.1f} after {frames} frames")
            if callback.next_eval - callback.every < settings.frames_per_trial:  # no eval at the very end yet
                callback.evaluate(settings.frames_per_trial)
            if not math.isfinite(callback.last_value):
                raise FloatingPointError("evaluation return is not finite")
            returns.append(callback.last_value)
    finally:
        trial.set_user_attr("frames", frames)
        trial.set_user_attr("wall_seconds", round(time.monotonic() - started, 1))
    return float(np.mean(returns))


def run_worker(settings: TuneSettings, progress: bool = True) -> None:
    """Run trials until the study holds ``settings.trials`` counted trials.

    Counting and starting a trial happen under a file lock, so workers on one machine
    never overshoot; workers on different machines (sharing a --storage URL) may each
    start one trial too many when they start at the same instant.
    """
    space = load_space(settings.agent, Path(settings.space_file) if settings.space_file else None)
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
            _run_trial(study, trial, settings, space)
            bar.n = min(settings.trials, _finished(study))
            bar.set_postfix(best=_best_text(study), refresh=True)
    finally:
        bar.close()


def _run_trial(study: optuna.Study, trial: optuna.Trial, settings: TuneSettings, space: dict[str, ParamSpec]) -> None:
    """Run one trial and tell the study how it ended; only Ctrl-C propagates."""
    try:
        value = objective(trial, settings, space)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except TRIAL_ERRORS as error:
        trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
        study.tell(trial, state=TrialState.FAIL)
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
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


def _finished(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if not t.user_attrs.get("interrupted"))


def _best_text(study: optuna.Study) -> str:
    try:
        return f"{study.best_value:.1f}"
    except ValueError:
        return "-"


def _worker_entry(settings: TuneSettings) -> None:
    run_worker(settings, progress=False)


def tune(settings: TuneSettings, n_jobs: int = 1) -> optuna.Study:
    """Run ``n_jobs`` worker processes (or this process for 1), then write the outputs."""
    get_agent(settings.agent)
    check_seeds(settings)
    load_space(settings.agent, Path(settings.space_file) if settings.space_file else None)  # fail fast
    study = open_study(settings)
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
    return study


def write_outputs(study: optuna.Study, settings: TuneSettings) -> None:
    """trials.csv, best.yaml, summary.md and history.png in ``settings.out_dir``."""
    out = settings.out_dir
    out.mkdir(parents=True, exist_ok=True)
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("interrupted")]
    names = sorted({name for t in trials for name in t.params})
    with (out / "trials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "state", "value", *names, "frames", "wall_seconds"])
        for t in trials:
            writer.writerow(
                [t.number, t.state.name, "" if t.value is None else round(t.value, 3)]
                + [t.params.get(name, "") for name in names]
                + [t.user_attrs.get("frames", ""), t.user_attrs.get("wall_seconds", "")]
            )
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -(t.value or 0.0))
    if complete:
        best = complete[0]
        config = dict(best.user_attrs["config"])
        config.pop("frames", None)  # the budget is the user's choice when training the best config
        write_yaml(out / "best.yaml", config)
    (out / "summary.md").write_text(_summary(study, settings, trials, complete))
    if len(complete) >= 1:
        _plot_history(study, out / "history.png")


def _summary(
    study: optuna.Study, settings: TuneSettings, trials: list[FrozenTrial], complete: list[FrozenTrial]
) -> str:
    states = {state.name: sum(1 for t in trials if t.state == state) for state in FINISHED}
    lines = [
        f"# Tuning {settings.agent}: study `{settings.study_name}`",
        "",
        f"Produced by `{settings.command}`.",
        "",
        f"{len(trials)} trials: {states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} failed. "
        f"Each trains {settings.frames_per_trial:,} env frames per seed on {settings.seeds_per_trial} seed(s); "
        f"its value is the mean raw return over {settings.eval_episodes} validation tracks "
        f"(seeds {VALIDATION_TRACK_START:,}+, {settings.eval_backend}).",
        "",
    ]
    if complete:
        names = sorted(complete[0].params)
        lines += ["## Best trials", "", "| trial | value | " + " | ".join(names) + " |"]
        lines.append("|---:|---:|" + "---|" * len(names))
        for t in complete[:5]:
            lines.append(
                f"| {t.number} | {t.value:.1f} | " + " | ".join(str(t.params.get(n, "")) for n in names) + " |"
            )
        lines += ["", f"`best.yaml` holds trial {complete[0].number}'s config: `cr-bench train {settings.agent} "
                  f"--config {settings.out_dir / 'best.yaml'} --frames N`.", ""]  # fmt: skip
        importances = _importances(study)
        if importances:
            lines += ["## Parameter importances (PED-ANOVA)", "", "| parameter | importance |", "|---|---:|"]
            lines += [f"| {name} | {value:.3f} |" for name, value in importances.items()]
            lines.append("")
        lines += ["![optimisation history](history.png)", ""]
    return "\n".join(lines)


def _importances(study: optuna.Study) -> dict[str, float]:
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}  # too few or too uniform trials


def _plot_history(study: optuna.Study, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    axes = plot_optimization_history(study)
    axes.set_ylabel("mean raw return (validation tracks)")
    figure = plt.gcf()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def base_config(agent: str, base_file: Path | None) -> dict[str, Any]:
    """The --config mapping every trial starts from (the agent's defaults apply below it).

    Everything not searched is kept from it, policy settings included.
    """
    data = read_yaml(base_file) if base_file else {}
    data.pop("frames", None)
    data.setdefault("agent", agent)
    resolve_config(agent, data)  # validate now, not in the first trial
    return data


def check_seeds(settings: TuneSettings) -> None:
    """Training seeds must stay below the validation tracks."""
    n_envs = resolve_config(settings.agent, settings.base_config).n_envs
    if settings.seed + settings.seeds_per_trial + n_envs > VALIDATION_TRACK_START:
        raise CrBenchError(f"training seeds must stay below the validation tracks ({VALIDATION_TRACK_START:,})")
