"""``cr-bench compare``: train (or reuse) agents over seeds, evaluate all on the same tracks,
and write the tables and plots people cite.

A suite (YAML in ``benchmarks/``) names agents, training seeds, a frame budget and the
evaluation tracks. Runs live in ``runs/compare/<suite>/<agent>/seed-<s>/``: a finished run
is reused, an interrupted one resumed, so an interrupted comparison continues where it
stopped. Every agent, and the two baselines, is evaluated on the same track seeds, once
with the standard colours and once with ``domain_randomize=True``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cr_bench import progress
from cr_bench.agents.init_from import check_compatible, find_start
from cr_bench.agents.models import load_model, resolve_device, set_torch_threads, threads_per_job
from cr_bench.agents.rundir import RunDir
from cr_bench.agents.training import refill_frames, resume, train
from cr_bench.envs.baselines import BASELINE_ENV, make_baseline
from cr_bench.envs.wrappers import CAR_RACING_ACTIONS
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.curves import ScoreAsTheyLand, score_checkpoints, scored_checkpoints
from cr_bench.evaluation.episodes import (
    CONDITIONS,
    EPISODE_COLUMNS,
    SCORE_COLUMNS,
    SUITE_EPISODE_COLUMNS,
    episode_table_text,
    episodes_at_once,
    evaluate,
)
from cr_bench.io import atomic_write_text, write_dataframe
from cr_bench.results.plots import (
    agent_colours,
    plot_learning_curves,
    plot_score_distributions,
    plot_score_vs_frames,
)
from cr_bench.results.tables import (
    IN_PROGRESS_HEADING,
    RUN_COLUMNS,
    binned_curves,
    curve_markdown,
    curve_table,
    improvement_matrix,
    leaderboard_markdown,
    refill_points,
    standard_matrices,
    summarize_agents,
)
from cr_bench.runner.carry import carry_folder, restore_baselines, restore_carry, save_baselines, save_carry
from cr_bench.runner.executor import run_tasks
from cr_bench.runner.task import Task
from cr_bench.spec.loader import read_yaml
from cr_bench.spec.run import Device, EnvConfig, EvalConfig, RunConfig, check_held_out
from cr_bench.spec.suite import CurveSettings, Suite, SuiteAgent, load_suite


# -- Jobs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """Train (or finish) one run, then evaluate it under every condition."""

    name: str
    seed: int
    run_dir: str
    config: RunConfig
    eval: EvalConfig | None
    """The test evaluation (None: none; tune's confirmation scores validation tracks only)."""
    curve: CurveSettings | None = None
    init_from: str | None = None
    """The model a new run starts from (:mod:`cr_bench.agents.init_from`; None: from scratch)."""
    command: str = "cr-bench compare"
    """The command that trains the run (a suite's or a study's): the run's command.txt names it
    and the run, so a model published from the run says how to make it again."""


def eval_file(folder: Path, settings: EvalConfig, condition: str, frames: int | None = None) -> Path:
    """Where the episodes of one evaluation setting are cached (stochastic play has its own
    file); a trained model's (``frames`` it trained) apart from the same run's earlier models."""
    key = f"{settings.backend}-{condition}-{settings.track_seed_start}-{settings.episodes}"
    if not settings.deterministic:
        key += "-stochastic"
    if frames is not None:
        key += f"-at-{frames}"
    return folder / f"{key}.csv"


def is_cached(path: Path) -> bool:
    """Whether ``path`` holds an evaluation with every column of today's episode tables (one
    written before the lap metrics is played again)."""
    if not path.is_file():
        return False
    with path.open() as table:
        return set(EPISODE_COLUMNS) <= set(table.readline().strip().split(","))


def run_eval_file(job: Job, condition: str) -> Path:
    """Where the episodes of the run's model as it is now are cached: a run trained further
    (a suite's budget raised) is scored again, never reported with its shorter training's scores."""
    run = RunDir(job.run_dir)
    assert job.eval is not None, "a run without a test evaluation has no episodes file"
    return eval_file(run.eval_dir, job.eval, condition, frames=int(run.read_progress()["frames_done"]))


def needs_training(job: Job) -> bool:
    """Whether the run has frames left to train."""
    return int(RunDir(job.run_dir).read_progress()["frames_done"]) < job.config.frames


def train_job(job: Job) -> None:
    """Train or resume the run unless finished, then score its checkpoints if the suite asks."""
    run = RunDir(job.run_dir)
    set_torch_threads(job.config.torch_threads)
    if needs_training(job):
        scorer = [] if job.curve is None else [ScoreAsTheyLand(run.path, job.curve)]
        which = f"{job.command} (run {job.name} seed {job.seed}"
        try:
            if run.model.is_file():
                resume(run.path, job.config.frames, f"{which}, resumed)", job.config.torch_threads, scorer)
            else:  # new, or stopped before its first checkpoint (train starts that again)
                config = dataclasses.replace(job.config, seed=job.seed)
                train(config, run.path, command=f"{which})", callbacks=scorer, init_from=job.init_from)
            for callback in scorer:
                callback.wait()
        except BaseException:  # Ctrl-C or the driver's stop, during the training or the wait
            for callback in scorer:
                callback.stop()
            raise
    if job.curve is not None:
        score_checkpoints(run.path, job.curve)  # cached in the run: only what is left plays


def _train_in(folder: str, job: Job) -> None:
    """A training task: :func:`train_job` in ``folder`` (the run, or its copy on a Ray node)."""
    train_job(dataclasses.replace(job, run_dir=folder))


def _evaluate_in(folder: str, job: Job, condition: str) -> str:
    """An evaluation task: the episodes (CSV text) of the model in ``folder`` under ``condition``."""
    run = RunDir(folder)
    assert job.eval is not None, "evaluation tasks are made for runs with a test evaluation"
    set_torch_threads(job.config.torch_threads)
    model = load_model(run.read_config(), str(run.model), device=job.config.device)
    saved_env = run.read_config().env  # the pipeline the model was trained with
    env = dataclasses.replace(saved_env, domain_randomize=CONDITIONS[condition])
    return episode_table_text(evaluate(model, env, job.eval), EPISODE_COLUMNS)


def evaluate_job(job: Job, condition: str) -> Path:
    """Evaluate the trained run under ``condition`` here unless cached; the episodes' file."""
    path = run_eval_file(job, condition)
    if not is_cached(path):
        _keep_episodes(path, _evaluate_in(job.run_dir, job, condition))
    return path


def _keep_episodes(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def conditions(settings: EvalConfig) -> list[str]:
    """The evaluation conditions: standard colours, and randomized ones if asked."""
    return ["standard", "randomized"] if settings.randomized else ["standard"]


def train_task(job: Job) -> Task:
    """The task that trains (or resumes) ``job``'s run and scores its new checkpoints."""
    return Task(
        _train_in,
        (job,),
        f"{job.name} seed {job.seed}: train",
        cpus=job.config.torch_threads,
        gpu=job.config.device == "cuda",
        folder=job.run_dir,
        returns_folder=True,
    )


def _evaluation_tasks(job: Job) -> list[Task]:
    """The evaluations the trained run still lacks, one task each."""
    if job.eval is None:
        return []
    return [
        Task(
            _evaluate_in,
            (job, condition),
            f"{job.name} seed {job.seed}: evaluate ({condition})",
            cpus=evaluation_cpus(job.eval),
            gpu=job.config.device == "cuda",
            folder=job.run_dir,
            ships=("model.zip", "config.yaml"),
        )
        for condition in conditions(job.eval)
        if not is_cached(run_eval_file(job, condition))
    ]


def evaluation_cpus(settings: EvalConfig) -> int:
    """The CPUs an evaluation task asks for: its worker processes on gymnasium, 1 on EnvPool."""
    return (
        episodes_at_once(settings.backend, settings.episodes, settings.n_envs) if settings.backend == "gymnasium" else 1
    )


def baseline_runs(suite: Suite) -> list[tuple[str, int]]:
    """The baselines' (name, seed) runs: the random policy once per suite seed, the scripted
    driver (deterministic) once."""
    return [(name, seed) for name in suite.baselines for seed in (suite.seeds if name == "random" else suite.seeds[:1])]


def baseline_file(root: Path, name: str, seed: int, settings: EvalConfig, condition: str) -> Path:
    """Where a baseline's episodes under ``condition`` are cached (``root``: the suite's runs)."""
    return eval_file(root / "baselines" / name / f"seed-{seed}", settings, condition)


def _evaluate_baseline(name: str, seed: int, condition: str, settings: EvalConfig, env: EnvConfig) -> str:
    """A baseline's episodes (CSV text) under ``condition``, on ``env`` (the driver's
    :data:`~cr_bench.envs.baselines.BASELINE_ENV`, which a task on another process cannot see changed)."""
    env = dataclasses.replace(env, domain_randomize=CONDITIONS[condition])
    policy = make_baseline(name, copy.deepcopy(CAR_RACING_ACTIONS), seed)  # a copy: RandomPolicy seeds it
    return episode_table_text(evaluate(policy, env, settings), EPISODE_COLUMNS)


def _baseline_tasks(suite: Suite, root: Path) -> list[Task]:
    """The baselines' evaluations not cached yet, one task each."""
    return [
        Task(_evaluate_baseline, (name, seed, condition, suite.eval, BASELINE_ENV),
             f"{name} seed {seed}: evaluate ({condition})", cpus=evaluation_cpus(suite.eval))
        for name, seed in baseline_runs(suite)
        for condition in conditions(suite.eval)
        if not is_cached(baseline_file(root, name, seed, suite.eval, condition))
    ]  # fmt: skip


def _run_jobs(
    jobs: list[Job],
    workers: int,
    executor: str = "local",
    ray_address: str | None = None,
    baselines: tuple[Suite, Path] | None = None,
) -> None:
    """Evaluate the ``baselines`` (a suite's, cached under its runs' root) first, since every
    table needs them; train the runs that need it and evaluate what is not evaluated yet,
    through :func:`cr_bench.runner.executor.run_tasks` (``workers`` processes here, or Ray
    tasks): a run's evaluations, its training's follow-ups, start before the trainings not yet
    started."""
    first = [] if baselines is None else _baseline_tasks(*baselines)
    for job in jobs:  # training also scores a curve's new checkpoints
        first += [train_task(job)] if needs_training(job) or job.curve is not None else _evaluation_tasks(job)
    bar = progress.bar(len(first), "task")  # the workers show none: their bars would share the lines

    def on_result(task: Task, value: Any) -> list[Task]:
        bar.update(1)
        progress.say(f"  {task.label}: done")
        if task.fn is _evaluate_baseline:
            assert baselines is not None, "baseline tasks are made for a suite's baselines"
            name, seed, condition, settings, _ = task.args
            _keep_episodes(baseline_file(baselines[1], name, seed, settings, condition), value)
            return []
        job: Job = task.args[0]
        if task.fn is _evaluate_in:
            _keep_episodes(run_eval_file(job, task.args[1]), value)
            return []
        follow = _evaluation_tasks(job)
        bar.total += len(follow)
        return follow

    try:
        run_tasks(first, on_result, executor, workers, ray_address)
    finally:
        bar.close()


# -- Suites and run directories ------------------------------------------------------------
def compare_suite(
    path: Path,
    workers: int = 1,
    results_dir: Path = Path("results"),
    runs_dir: Path = Path("runs"),
    command: str = "",
    device: Device | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    report_only: bool = False,
) -> Path:
    """Run what is missing of the suite at ``path``, then write its tables and plots.

    ``device`` (auto, cpu or cuda) replaces every agent's ``device`` for training and evaluation.
    ``executor`` ``ray`` runs the trainings and evaluations as tasks on the Ray cluster at
    ``ray_address`` (:mod:`cr_bench.runner.ray_executor`); ``local`` runs ``workers`` processes here.
    ``report_only`` trains and scores nothing: the tables hold the runs finished and evaluated
    so far, the curve the checkpoints scored so far, and the summary names the runs in progress.
    """
    suite, configs = load_suite(path)
    if device is not None:
        configs = {name: dataclasses.replace(config, device=device) for name, config in configs.items()}
    check_devices(configs.values(), executor)
    root = runs_dir / "compare" / suite.name
    # Parallel jobs share the cores: oversubscribed torch threads spin and slow every job.
    threads = threads_per_job(os.cpu_count() or 1, workers)
    jobs = [
        Job(
            entry.name,
            seed,
            str(root / entry.name / f"seed-{seed}"),
            dataclasses.replace(configs[entry.name], torch_threads=min(threads, configs[entry.name].torch_threads)),
            suite.eval,
            suite.curve,
            entry.start(path, seed),
            command or "cr-bench compare",
        )
        for entry, seed in seed_major(suite)
    ]
    if executor == "ray" and any(job.init_from for job in jobs):
        raise CrBenchError("init_from reads the runs it starts from on this machine: use --executor local")
    budgets = " or ".join(f"{frames:,}" for frames in sorted({job.config.frames for job in jobs}))
    print(f"suite {suite.name}: {len(jobs)} runs of {budgets} frames, {workers} worker(s)")
    carried = carry_folder(results_dir, suite.name)
    if suite.carry:
        restore_baselines(carried, root)
        restored = [job for job in jobs if restore_carry(carried / job.name / f"seed-{job.seed}", Path(job.run_dir))]
        if restored:
            progress.say(f"  {len(restored)} run(s) continue from {carried}")
    if report_only:
        return _report_in_progress(jobs, suite, root, results_dir / suite.name, command)
    _announce(jobs, workers)
    try:
        _run_jobs(start_order(suite, jobs), workers, executor, ray_address, baselines=(suite, root))
    finally:
        if suite.carry:  # however compare ends (but kill -9): the next machine continues from here
            every = suite.curve.every_frames if suite.curve else None
            for job in jobs:
                save_carry(Path(job.run_dir), carried / job.name / f"seed-{job.seed}", every)
            save_baselines(root, carried)
    episodes = _gather(jobs, suite, root)
    colours = suite_colours(suite)
    summary = write_outputs(episodes, _run_info(jobs), results_dir / suite.name, suite.name, command, colours)
    if suite.curve is not None:
        write_curve(jobs, suite.curve, results_dir / suite.name, colours=colours)
    return summary


def suite_colours(suite: Suite) -> dict[str, Any]:
    """Each of a suite's agents and baselines in its colour, the same in every figure and at every stage."""
    return agent_colours([*(entry.name for entry in suite.agents), *suite.baselines])


def _report_in_progress(jobs: list[Job], suite: Suite, root: Path, out_dir: Path, command: str) -> Path:
    """The tables of the runs finished and evaluated, the curve of the checkpoints scored, and
    the runs still in progress (``compare --report-only``); nothing trains or plays but the
    baselines, whose episodes a table needs."""
    done = [
        job
        for job in jobs
        if (RunDir(job.run_dir).progress.is_file() and not needs_training(job)
            and all(is_cached(run_eval_file(job, condition)) for condition in conditions(suite.eval)))
    ]  # fmt: skip
    colours = suite_colours(suite)
    # The runs in the tables were trained and evaluated by the command that continues the suite.
    trained_by = shlex.join(word for word in shlex.split(command) if word != "--report-only")
    if done or suite.baselines:
        summary = write_outputs(_gather(done, suite, root), _run_info(done), out_dir, suite.name, trained_by, colours)
    else:  # nothing to rank yet
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = out_dir / "summary.md"
        atomic_write_text(summary, f"# {suite.name}: in progress\n\nProduced by `{trained_by}`.\n")
    if suite.curve is not None:
        started = [job for job in jobs if RunDir(job.run_dir).progress.is_file()]
        write_curve(started, suite.curve, out_dir, scores_of=scored_checkpoints, colours=colours)
    if len(done) == len(jobs):  # the suite is finished: its report says nothing of progress
        return summary
    lines = ["", IN_PROGRESS_HEADING, "",
             f"Written by `{command}` while the suite runs: the tables above hold the {len(done)} of {len(jobs)} "
             "runs finished and evaluated; the curve holds every checkpoint scored so far.", ""]  # fmt: skip
    for job in jobs:
        if job not in done:
            frames = int(RunDir(job.run_dir).read_progress()["frames_done"])
            state = f"{frames:,} of {job.config.frames:,} frames" if frames else "not started"
            if frames and not needs_training(job):
                state = f"trained ({frames:,} frames), test evaluation pending"
            lines.append(f"- {job.name} seed {job.seed}: {state}")
    atomic_write_text(summary, summary.read_text() + "\n".join(lines) + "\n")
    return summary


def check_devices(configs: Iterable[RunConfig], executor: str) -> None:
    """Refuse, before any run trains, a device this machine lacks (local workers; on Ray the
    executor refuses a GPU no node has before it submits a task).

    :raises CrBenchError: naming the device.
    """
    if executor == "local":
        for config in configs:
            resolve_device(config.device)


def seed_major(suite: Suite) -> list[tuple[SuiteAgent, int]]:
    """The suite's (agent, seed) runs, every agent's first seed before any agent's second: a
    suite stopped part-way has compared every agent on as many seeds as it could."""
    runs = [(rank, index, entry, seed) for index, entry in enumerate(suite.agents)
            for rank, seed in enumerate(entry.seeds or suite.seeds)]  # fmt: skip
    return [(entry, seed) for _, _, entry, seed in sorted(runs, key=lambda run: run[:2])]


def start_order(suite: Suite, jobs: list[Job]) -> list[Job]:
    """The order ``jobs`` (made in :func:`seed_major` order) start in: seed-major, and within a
    seed the run with the most training time left first (longest processing time first), so a
    suite resumed near its end does not have one long run train alone while the other workers
    idle. Time left is the run's frames left at its agent's measured frames/s
    (:func:`_measured_fps`), else at the bench's model; a run with neither counts as longest."""
    rank = {(entry.name, seed): i for entry in suite.agents for i, seed in enumerate(entry.seeds or suite.seeds)}
    measured = {name: _measured_fps([RunDir(Path(job.run_dir)) for job in jobs if job.name == name])
                for name in {job.name for job in jobs}}  # fmt: skip

    def seconds_left(job: Job) -> float:
        left = _frames_left(job)
        fps = measured[job.name] or progress.training_fps(job.config)
        return 0.0 if not left else left / fps if fps else math.inf

    return sorted(jobs, key=lambda job: (rank[(job.name, job.seed)], -seconds_left(job)))


def _frames_left(job: Job) -> int:
    """The env frames ``job`` has still to train; a run yet to start from another's model
    (``init_from``) has that model's frames done."""
    done = int(RunDir(job.run_dir).read_progress()["frames_done"])
    if job.init_from is not None and not done:
        done = find_start(job.init_from).frames
    return max(0, job.config.frames - done)


def _announce(jobs: list[Job], workers: int) -> None:
    """How long the training still to do takes, each agent's and in all. A run is not split
    between workers: an agent's runs left train on min(workers, runs left) workers at their
    summed frames/s, or, when its longest run alone takes longer, that run on one worker; the
    suite takes at least its longest run. A worker's frames/s is what the agent's started runs
    have trained at so far, else the bench's model shared among the workers
    (:func:`cr_bench.progress.shared_fps`; it has none for off-policy or recurrent agents). Both
    are speeds of workers sharing the cores, so a run left to train alone at the end is priced
    high: an upper bound there.
    A run to start from another's model is checked first: one that cannot is refused here."""
    for job in jobs:
        if job.init_from is not None and not RunDir(job.run_dir).read_progress()["frames_done"]:
            check_compatible(find_start(job.init_from), job.config)
    todo = [(job, _frames_left(job)) for job in jobs]
    workers = max(1, min(workers, sum(1 for _, frames in todo if frames)))  # runs still to train
    runs_left: dict[str, list[int]] = {}  # each suite agent: frames left of each run still to train
    worker_fps: dict[str, float | None] = {}  # each suite agent: a worker's expected frames/s
    for job, frames in todo:
        if frames:
            runs_left.setdefault(job.name, []).append(frames)
        worker_fps.setdefault(job.name, progress.shared_fps(job.config, workers))
    worker_seconds, longest, known = 0.0, 0.0, True
    measured_any = False
    for name, runs in runs_left.items():
        parallel = min(workers, len(runs))
        fps, source = worker_fps[name], ""
        measured = _measured_fps([RunDir(Path(job.run_dir)) for job in jobs if job.name == name])
        if measured:
            fps, measured_any = measured, True
            source = f"at its runs' {measured:,.0f} frames/s so far, shared as they were then"
        frames = sum(runs)
        if not fps:
            progress.say(f"  training {name}: {progress.estimate(frames, None)}")
            known = False
            continue
        if max(runs) / fps > frames / (fps * parallel):
            where = f" {source}" if source else f", {progress.TABLE_SOURCE}"
            source = f"its longest of {len(runs)} runs left, on one worker{where}"
            progress.say(f"  training {name}: {progress.estimate(max(runs), fps, source=source)}")
        else:
            source = source and f"{parallel} worker(s) {source}"
            progress.say(f"  training {name}: {progress.estimate(frames, fps * parallel, source=source)}")
        worker_seconds += frames / fps
        longest = max(longest, max(runs) / fps)
    if runs_left and known:
        how = progress.sharing_text(workers)
        if measured_any:
            how = f"{workers} worker(s); measured speeds where an agent's runs have trained"
        seconds = max(worker_seconds / workers, longest)
        progress.say(f"  training in all: about {progress.duration(seconds)} ({how})")


def _measured_fps(runs: list[RunDir]) -> float | None:
    """The frames/s a set of runs (one agent's seeds) have trained at so far, together."""
    done = [run.read_progress() for run in runs if run.measured_fps()]
    if not done:
        return None
    return sum(int(d["frames_done"]) for d in done) / sum(float(d["wall_seconds"]) for d in done)


def write_curve(
    jobs: list[Job],
    settings: CurveSettings,
    out_dir: Path,
    scores_of: Callable[[Path, CurveSettings], pd.DataFrame] = score_checkpoints,
    colours: Mapping[str, Any] | None = None,
) -> None:
    """curve.csv and score_vs_frames.png, and a section in summary.md: score vs env frames
    (``scores_of`` a run: its checkpoints scored, those not yet scored played by default;
    ``colours``: agent -> colour, default the agents in order)."""
    scores = pd.concat(
        [scores_of(Path(job.run_dir), settings).assign(agent=job.name, seed=job.seed) for job in jobs],
        ignore_index=True,
    )
    table = curve_table(scores).round(2)  # summary.md shows curve.csv's figures, as report re-renders them
    write_dataframe(out_dir / "curve.csv", table)
    plot_score_vs_frames(table, out_dir / "score_vs_frames.png", colours)
    summary = out_dir / "summary.md"
    atomic_write_text(summary, summary.read_text() + "\n" + "\n".join(curve_markdown(table, settings)))


def compare_runs(
    run_dirs: list[Path],
    settings: EvalConfig,
    out_dir: Path,
    baselines: list[str],
    command: str = "",
    device: Device = "auto",
    humans: list[Path] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> Path:
    """Compare existing runs, named by agent, evaluating what is missing (on ``device``).

    Runs of one agent and seed can appear only once: give runs of different agents or seeds.
    ``humans`` are ``cr-bench play --out`` folders: each joins as agent ``human``, seed i.
    """
    played = [_human_episodes(folder, settings) for folder in humans or []]
    jobs: list[Job] = []
    for path in run_dirs:
        run = RunDir(path)
        config = run.read_config()
        run.require_model()
        if not run.read_progress()["finished"]:
            raise CrBenchError(f"run {path} is not finished; finish it with cr-bench train --resume")
        if any(job.name == config.agent and job.seed == config.seed for job in jobs):
            raise CrBenchError(f"two runs of {config.agent} with seed {config.seed}; compare one of them")
        check_held_out(config.training_seeds, settings.track_seeds, f"comparing {path}")
        jobs.append(Job(config.agent, config.seed, str(path), dataclasses.replace(config, device=device), settings))
    check_devices([job.config for job in jobs], executor)
    suite = Suite(name=out_dir.name, frames=0, seeds=sorted({j.seed for j in jobs}), agents=[], eval=settings)
    suite.baselines = baselines
    _run_jobs(jobs, 1, executor, ray_address, baselines=(suite, out_dir))
    episodes = _gather(jobs, suite, out_dir)
    for seed, table in enumerate(played):
        episodes = pd.concat([episodes, table.assign(agent=HUMAN, seed=seed, condition="standard")], ignore_index=True)
    return write_outputs(episodes[SUITE_EPISODE_COLUMNS], _run_info(jobs), out_dir, out_dir.name, command)


HUMAN = "human"
"""Agent name of the episodes a person drove (``cr-bench play``)."""


def _human_episodes(folder: Path, settings: EvalConfig) -> pd.DataFrame:
    """The episodes of a ``cr-bench play --out`` folder, checked to be the comparison's tracks.

    :raises CrBenchError: if the folder holds no episodes, or other tracks or another backend.
    """
    try:
        played = (folder / "command.txt").read_text().startswith("cr-bench play")
        table = pd.read_csv(folder / "episodes.csv")
        backend = read_yaml(folder / "summary.yaml").get("backend")
    except (OSError, ValueError) as error:
        raise CrBenchError(f"--human {folder}: no episodes of cr-bench play ({error})".splitlines()[0]) from None
    if not played:
        raise CrBenchError(f"--human {folder}: not written by cr-bench play --out (see its command.txt)")
    if not set(SCORE_COLUMNS) <= set(table.columns):
        raise CrBenchError(
            f"--human {folder}: episodes.csv lacks columns {sorted(set(SCORE_COLUMNS) - set(table.columns))}"
        )
    if backend != settings.backend:
        raise CrBenchError(f"--human {folder}: played on {backend}, the comparison evaluates on {settings.backend}")
    wanted = list(settings.track_seeds)
    if sorted(table["track_seed"].tolist()) != wanted:
        raise CrBenchError(
            f"--human {folder}: its tracks are not the comparison's {wanted[0]}..{wanted[-1]}; play those "
            f"(cr-bench play --episodes {len(wanted)} --track-seed-start {wanted[0]}) or compare with "
            f"--episodes {len(table)} --track-seed-start {table['track_seed'].min()}"
        )
    return table.reindex(columns=EPISODE_COLUMNS)  # played before the lap metrics: unknown (NaN)


def _gather(jobs: list[Job], suite: Suite, root: Path) -> pd.DataFrame:
    """All episodes of all runs and baselines, one row each (:data:`SUITE_EPISODE_COLUMNS`)."""
    frames = []
    for job in jobs:
        assert job.eval is not None, "compare's jobs all have a test evaluation"
        for condition in conditions(job.eval):
            table = pd.read_csv(run_eval_file(job, condition))
            frames.append(table.assign(agent=job.name, seed=job.seed, condition=condition))
    for name, seed in baseline_runs(suite):
        for condition in conditions(suite.eval):
            path = baseline_file(root, name, seed, suite.eval, condition)
            if not is_cached(path):  # report-only, or a baseline task that failed: played here
                _keep_episodes(path, _evaluate_baseline(name, seed, condition, suite.eval, BASELINE_ENV))
            frames.append(pd.read_csv(path).assign(agent=name, seed=seed, condition=condition))
    return pd.concat(frames, ignore_index=True)[SUITE_EPISODE_COLUMNS]


def _run_info(jobs: list[Job]) -> pd.DataFrame:
    """Training frames, wall seconds, machines, replay-buffer refills and the curve of each run."""
    rows = []
    for job in jobs:
        run = RunDir(job.run_dir)
        progress, refills = run.read_progress(), run.refill_frames()
        rows.append(
            {
                "agent": job.name,
                "seed": job.seed,
                "frames": progress["frames_done"],
                "wall_seconds": progress["wall_seconds"],
                "machines": "; ".join(run.machines()),
                "refills": "; ".join(map(str, refills)),
                "refill_frames": refill_frames(run.read_config()) if refills else 0,
                "run_dir": job.run_dir,
            }
        )
    columns = ["agent", "seed", "frames", "wall_seconds", "machines", "refills", "refill_frames", "run_dir"]
    return pd.DataFrame(rows, columns=columns)


# -- Outputs ------------------------------------------------------------------------------
def write_outputs(
    episodes: pd.DataFrame,
    runs: pd.DataFrame,
    out_dir: Path,
    name: str,
    command: str,
    colours: Mapping[str, Any] | None = None,
) -> Path:
    """episodes.csv, summary.csv, runs.csv, summary.md and the two plots (``colours``: agent ->
    colour, default the agents in the table's order); returns summary.md's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_dataframe(out_dir / "episodes.csv", episodes)
    summary = summarize_agents(episodes, runs)
    write_dataframe(out_dir / "summary.csv", summary.round(3))
    colours = colours or agent_colours(episodes["agent"])
    curves, refills = {}, {}
    for agent, group in runs.groupby("agent", sort=False):
        binned = binned_curves([pd.read_csv(RunDir(d).curve) for d in group["run_dir"]])
        if binned is not None:
            curves[str(agent)] = binned
        refills[str(agent)] = [f for cell in group.get("refills", []) for f in refill_points(cell)]
    plot_learning_curves(curves, out_dir / "learning_curves.png", colours, refills)
    plot_score_distributions(standard_matrices(episodes), out_dir / "score_distributions.png", colours)
    write_dataframe(out_dir / "runs.csv", runs[RUN_COLUMNS])
    text = leaderboard_markdown(summary, improvement_matrix(episodes), name, command, episodes, runs[RUN_COLUMNS])
    atomic_write_text(out_dir / "summary.md", text)
    return out_dir / "summary.md"
