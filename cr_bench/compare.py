"""``cr-bench compare``: train (or reuse) agents over seeds, evaluate all on the same tracks,
and write the tables and plots people cite.

A suite (YAML in ``benchmarks/``) names agents, training seeds, a frame budget and the
evaluation tracks. Runs live in ``runs/compare/<suite>/<agent>/seed-<s>/``: a finished run
is reused, an interrupted one resumed, so an interrupted comparison continues where it
stopped. Every agent, and the two baselines, is evaluated on the same track seeds, once
with the standard colours and once with ``domain_randomize=True``.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cr_bench.agents import get_agent, load_model, resolve_config, set_torch_threads
from cr_bench.baselines import BASELINE_ENV, BASELINES, make_baseline
from cr_bench.config import EnvConfig, RunConfig, from_dict, read_yaml
from cr_bench.curves import CurveSettings, curve_table, plot_curve, score_checkpoints
from cr_bench.errors import CrBenchError
from cr_bench.evaluation import EpisodeResult, evaluate
from cr_bench.rundir import RunDir
from cr_bench.stats import (
    SUCCESS_RETURN,
    iqm,
    probability_of_improvement,
    score_matrix,
    stratified_bootstrap_ci,
    success_rate,
)
from cr_bench.training import resume, train

CONDITIONS = {"standard": False, "randomized": True}
"""Evaluation conditions: name -> domain_randomize."""
EPISODE_COLUMNS = ["agent", "seed", "condition", "track_seed", "return", "length"]


@dataclass
class SuiteAgent:
    """One agent of a suite."""

    name: str
    """Label in the tables (unique in the suite)."""
    agent: str
    """Registry name (``cr-bench train --help`` lists them)."""
    config: str | None = None
    """YAML config the runs start from, e.g. a tuned best.yaml (relative to the suite file)."""
    set: dict[str, Any] = field(default_factory=dict)
    """Overrides on top, as in ``cr-bench train --set``."""
    seeds: list[int] | None = None
    """This agent's training seeds (default: the suite's)."""


@dataclass
class SuiteEval:
    """The evaluation every agent gets."""

    episodes: int = 20
    """Tracks per run (track seeds ``track_seed_start ..``)."""
    track_seed_start: int = 1_000_000
    """First track seed."""
    backend: str = "gymnasium"
    """Simulator of every evaluation (domain randomisation needs gymnasium)."""
    randomized: bool = True
    """Also evaluate with domain_randomize=True (colours change every episode)."""
    n_envs: int = 2
    """Episodes played at once per evaluation."""


@dataclass
class Suite:
    """A comparison: agents x seeds under one frame budget, evaluated on the same tracks."""

    name: str
    """Suite name; outputs go to results/<name>/."""
    frames: int
    """Training budget of every run, in env frames."""
    seeds: list[int]
    """Training seeds of every agent."""
    agents: list[SuiteAgent]
    """Agents to compare."""
    eval: SuiteEval = field(default_factory=SuiteEval)
    """Evaluation settings."""
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    """Policies that do not learn, shown in every table: random and scripted."""
    curve: CurveSettings | None = None
    """Also score each run's checkpoints every ``curve.every_frames`` (score vs env frames)."""


def load_suite(path: Path) -> tuple[Suite, dict[str, RunConfig]]:
    """Read and validate a suite; return it with the resolved RunConfig of each agent."""
    data = read_yaml(path)
    suite = from_dict(Suite, data, str(path))
    if suite.frames < 1 or not suite.seeds or not suite.agents:
        raise CrBenchError(f"{path}: a suite needs frames >= 1, at least one seed and one agent")
    if suite.eval.episodes < 1 or suite.eval.n_envs < 1 or suite.eval.backend not in ("gymnasium", "envpool"):
        raise CrBenchError(f"{path}: eval needs episodes >= 1, n_envs >= 1 and backend gymnasium or envpool")
    if min(suite.seeds) < 0 or any(a.seeds is not None and (not a.seeds or min(a.seeds) < 0) for a in suite.agents):
        raise CrBenchError(f"{path}: seeds must be >= 0 (and an agent's seeds list not empty)")
    if suite.eval.randomized and suite.eval.backend != "gymnasium":
        raise CrBenchError(f"{path}: eval.randomized needs backend gymnasium (EnvPool has no domain_randomize)")
    names = [a.name for a in suite.agents]
    if len(set(names)) != len(names) or set(names) & set(BASELINES):
        raise CrBenchError(f"{path}: agent names must be unique and not {', '.join(BASELINES)}")
    if suite.curve is not None and (
        suite.curve.every_frames < 1 or suite.curve.episodes < 1 or suite.curve.backend not in ("gymnasium", "envpool")
    ):
        raise CrBenchError(f"{path}: curve needs every_frames >= 1, episodes >= 1 and backend gymnasium or envpool")
    unknown = set(suite.baselines) - set(BASELINES)
    if unknown:
        raise CrBenchError(f"{path}: unknown baseline(s) {', '.join(sorted(unknown))}; known: {', '.join(BASELINES)}")
    configs = {}
    for entry in suite.agents:
        get_agent(entry.agent)
        base = read_yaml(path.parent / entry.config) if entry.config else {}
        base.pop("frames", None)
        base.setdefault("agent", entry.agent)
        curve = {"checkpoint_every_frames": suite.curve.every_frames, "keep_checkpoints": True} if suite.curve else {}
        config = resolve_config(entry.agent, base, entry.set, {"frames": suite.frames, **curve})
        if max(entry.seeds or suite.seeds) + config.n_envs > suite.eval.track_seed_start:
            raise CrBenchError(f"{path}: training seeds of {entry.name} reach the evaluation tracks")
        configs[entry.name] = config
    return suite, configs


# -- Jobs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """Train (or finish) one run, then evaluate it under every condition."""

    name: str
    seed: int
    run_dir: str
    config: RunConfig
    eval: SuiteEval
    curve: CurveSettings | None = None


def _eval_file(folder: Path, settings: SuiteEval, condition: str) -> Path:
    """Where the episodes of one evaluation setting are cached."""
    key = f"{settings.backend}-{condition}-{settings.track_seed_start}-{settings.episodes}"
    return folder / f"{key}.csv"


def _run_job(job: Job) -> str:
    """Train or resume the run unless finished, then evaluate what is not evaluated yet."""
    run = RunDir(job.run_dir)
    set_torch_threads(job.config.torch_threads)
    if run.read_progress()["frames_done"] < job.config.frames:
        if run.model.is_file():
            resume(run.path, job.config.frames, "cr-bench compare (resume)", job.config.torch_threads)
        else:  # new, or stopped before its first checkpoint (train starts that again)
            config = dataclasses.replace(job.config, seed=job.seed)
            train(config, run.path, command="cr-bench compare")
    if job.curve is not None:
        score_checkpoints(run.path, job.curve)  # cached in the run: only new checkpoints play
    model = load_model(job.config.agent, str(run.model))
    saved_env = run.read_config().env  # the pipeline the model was trained with
    for condition in _conditions(job.eval):
        path = _eval_file(run.eval_dir, job.eval, condition)
        if not path.is_file():
            env = dataclasses.replace(saved_env, domain_randomize=CONDITIONS[condition])
            _write_results(path, _evaluate(model, env, job.eval))
    return job.run_dir


def _conditions(settings: SuiteEval) -> list[str]:
    return ["standard", "randomized"] if settings.randomized else ["standard"]


def _evaluate(policy: Any, env: EnvConfig, settings: SuiteEval) -> list[EpisodeResult]:
    return evaluate(
        policy, env, settings.episodes, settings.track_seed_start, backend=settings.backend, n_envs=settings.n_envs
    )


def _write_results(path: Path, results: list[EpisodeResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_seed", "return", "length"])
        writer.writerows([r.track_seed, round(r.true_return, 4), r.length] for r in results)
    tmp.replace(path)


def _run_jobs(jobs: list[Job], workers: int) -> None:
    """Run jobs, ``workers`` processes at a time (plain processes: a job may start env workers).

    Each worker stops as on Ctrl-C, saving its run, when this process ends, however it ends.
    """
    if workers == 1:
        for job in jobs:
            print(f"  {job.name} seed {job.seed}: {_run_job(job)}")
        return
    context = multiprocessing.get_context("forkserver")
    # Only this process holds the writing end: the kernel closes it when we die, even by kill -9.
    driver_alive, driver_end = context.Pipe(duplex=False)
    pending = list(jobs)
    running: list[tuple[Job, Any]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < workers:
            job = pending.pop(0)
            process = context.Process(target=_job_process, args=(job, driver_alive))
            process.start()
            running.append((job, process))
        finished = set(wait([process.sentinel for _, process in running]))
        index = next(i for i, (_, process) in enumerate(running) if process.sentinel in finished)
        job, process = running.pop(index)
        process.join()
        print(f"  {job.name} seed {job.seed}: {'done' if process.exitcode == 0 else 'FAILED'}")
        if process.exitcode:
            failed.append(job.run_dir)
    driver_end.close()
    if failed:
        raise CrBenchError(f"{len(failed)} run(s) failed: {', '.join(failed)}")


def _job_process(job: Job, driver_alive: Connection) -> None:
    """A worker process: run ``job``; stop on Ctrl-C or when the driver dies, saving the run.

    Its parent is multiprocessing's fork server, not the driver, so it cannot watch its
    parent (``PR_SET_PDEATHSIG``, ``os.getppid``): it watches a pipe only the driver writes to.
    """
    signal.signal(signal.SIGINT, _interrupt_once)
    threading.Thread(target=_interrupt_when_closed, args=(driver_alive,), daemon=True).start()
    try:
        _run_job(job)
    except KeyboardInterrupt:
        sys.exit(130)
    except CrBenchError as error:
        print(f"  {job.name} seed {job.seed}: {error}", file=sys.stderr)
        sys.exit(2)


def _interrupt_once(signum: int, frame: Any) -> None:
    """SIGINT handler: the first raises KeyboardInterrupt; later ones (the terminal's, the
    driver's, the watcher's) are ignored, so they cannot cut short the save it triggers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _interrupt_when_closed(driver_alive: Connection) -> None:
    """Wait for the driver's end of the pipe to close (it exited), then interrupt this process."""
    driver_alive.poll(None)  # the driver never sends: this returns at end of file
    os.kill(os.getpid(), signal.SIGINT)


# -- Suites and run directories ------------------------------------------------------------
def compare_suite(
    path: Path, workers: int = 1, results_dir: Path = Path("results"), runs_dir: Path = Path("runs"), command: str = ""
) -> Path:
    """Run what is missing of the suite at ``path``, then write its tables and plots."""
    suite, configs = load_suite(path)
    root = runs_dir / "compare" / suite.name
    # Parallel jobs share the cores: oversubscribed torch threads spin and slow every job.
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [
        Job(
            entry.name,
            seed,
            str(root / entry.name / f"seed-{seed}"),
            dataclasses.replace(configs[entry.name], torch_threads=min(threads, configs[entry.name].torch_threads)),
            suite.eval,
            suite.curve,
        )
        for entry in suite.agents
        for seed in entry.seeds or suite.seeds
    ]
    print(f"suite {suite.name}: {len(jobs)} runs of {suite.frames:,} frames, {workers} worker(s)")
    _run_jobs(jobs, workers)
    episodes = _gather(jobs, suite, root)
    summary = write_outputs(episodes, _run_info(jobs), results_dir / suite.name, suite.name, command)
    if suite.curve is not None:
        write_curve(jobs, suite.curve, results_dir / suite.name)
    return summary


def write_curve(jobs: list[Job], settings: CurveSettings, out_dir: Path) -> None:
    """curve.csv and score_vs_frames.png, and a section in summary.md: score vs env frames."""
    scores = pd.concat(
        [score_checkpoints(Path(job.run_dir), settings).assign(agent=job.name, seed=job.seed) for job in jobs],
        ignore_index=True,
    )
    table = curve_table(scores)
    table.round(2).to_csv(out_dir / "curve.csv", index=False)
    plot_curve(table, out_dir / "score_vs_frames.png")
    tracks = f"{settings.track_seed_start}..{settings.track_seed_start + settings.episodes - 1}"
    lines = [
        "## Score vs env frames",
        "",
        f"Each run's checkpoint every {settings.every_frames:,} frames, deterministic policy, on {settings.episodes} "
        f"validation tracks ({tracks}, {settings.backend}); mean over seeds and tracks with a 95% stratified "
        "bootstrap CI (`curve.csv`).",
        "",
        "| agent | frames | seeds | mean [95% CI] |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.agent} | {r.frames:,} | {r.seeds} | {r.mean:.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}] |"
        for r in table.itertuples()
    ]
    lines += ["", "![score vs frames](score_vs_frames.png)", ""]
    summary = out_dir / "summary.md"
    summary.write_text(summary.read_text() + "\n" + "\n".join(lines))


def compare_runs(
    run_dirs: list[Path], settings: SuiteEval, out_dir: Path, baselines: list[str], command: str = ""
) -> Path:
    """Compare existing runs, named by agent, evaluating what is missing.

    Runs of one agent and seed can appear only once: give runs of different agents or seeds.
    """
    jobs: list[Job] = []
    for path in run_dirs:
        run = RunDir(path)
        config = run.read_config()
        run.require_model()
        if not run.read_progress()["finished"]:
            raise CrBenchError(f"run {path} is not finished; finish it with cr-bench train --resume")
        if any(job.name == config.agent and job.seed == config.seed for job in jobs):
            raise CrBenchError(f"two runs of {config.agent} with seed {config.seed}; compare one of them")
        jobs.append(Job(config.agent, config.seed, str(path), config, settings))
    for job in jobs:
        _run_job(job)
    suite = Suite(name=out_dir.name, frames=0, seeds=sorted({j.seed for j in jobs}), agents=[], eval=settings)
    suite.baselines = baselines
    episodes = _gather(jobs, suite, out_dir)
    return write_outputs(episodes, _run_info(jobs), out_dir, out_dir.name, command)


def _gather(jobs: list[Job], suite: Suite, root: Path) -> pd.DataFrame:
    """All episodes of all runs and baselines, one row each."""
    frames = []
    for job in jobs:
        for condition in _conditions(job.eval):
            table = pd.read_csv(_eval_file(RunDir(job.run_dir).eval_dir, job.eval, condition))
            frames.append(table.assign(agent=job.name, seed=job.seed, condition=condition))
    for name in suite.baselines:
        seeds = suite.seeds if name == "random" else suite.seeds[:1]  # the scripted driver is deterministic
        for seed in seeds:
            for condition in _conditions(suite.eval):
                path = _eval_file(root / "baselines" / name / f"seed-{seed}", suite.eval, condition)
                if not path.is_file():
                    env = dataclasses.replace(BASELINE_ENV, domain_randomize=CONDITIONS[condition])
                    policy = make_baseline(name, _continuous_space(), seed)
                    _write_results(path, _evaluate(policy, env, suite.eval))
                frames.append(pd.read_csv(path).assign(agent=name, seed=seed, condition=condition))
    return pd.concat(frames, ignore_index=True)[EPISODE_COLUMNS]


def _continuous_space() -> Any:
    import gymnasium as gym

    return gym.spaces.Box(np.array([-1.0, 0.0, 0.0], np.float32), np.ones(3, np.float32))


def _run_info(jobs: list[Job]) -> pd.DataFrame:
    """Training frames, wall seconds and the curve of each run."""
    rows = []
    for job in jobs:
        progress = RunDir(job.run_dir).read_progress()
        rows.append(
            {
                "agent": job.name,
                "seed": job.seed,
                "frames": progress["frames_done"],
                "wall_seconds": progress["wall_seconds"],
                "run_dir": job.run_dir,
            }
        )
    return pd.DataFrame(rows)


# -- Statistics and outputs ----------------------------------------------------------------
def summarize_agents(episodes: pd.DataFrame, runs: pd.DataFrame, reps: int = 2000) -> pd.DataFrame:
    """One row per agent: score statistics per condition, training cost.

    IQM confidence intervals come from the stratified bootstrap over runs x tracks
    (:func:`cr_bench.stats.stratified_bootstrap_ci`).
    """
    rows = []
    for agent in dict.fromkeys(episodes["agent"]):
        row: dict[str, Any] = {"agent": agent}
        for condition in CONDITIONS:
            part = episodes[(episodes.agent == agent) & (episodes.condition == condition)]
            if part.empty:
                continue
            matrix = score_matrix(part["return"].to_numpy(), part["seed"].to_numpy(), part["track_seed"].to_numpy())
            low, high = stratified_bootstrap_ci(matrix, iqm, reps=reps, random_state=0)
            suffix = "" if condition == "standard" else "_randomized"
            returns = part["return"].to_numpy()
            row.update(
                {
                    f"mean{suffix}": returns.mean(),
                    f"std{suffix}": returns.std(),
                    f"median{suffix}": float(np.median(returns)),
                    f"iqm{suffix}": iqm(returns),
                    f"iqm_ci_low{suffix}": low,
                    f"iqm_ci_high{suffix}": high,
                    f"success_rate{suffix}": success_rate(returns),
                    f"mean_length{suffix}": part["length"].mean(),
                }
            )
        row["runs"] = int(episodes[episodes.agent == agent]["seed"].nunique())
        trained = runs[runs.agent == agent]
        if not trained.empty:
            row["training_frames"] = float(trained["frames"].mean())
            row["wall_seconds"] = float(trained["wall_seconds"].mean())
            row["frames_per_s"] = float((trained["frames"] / trained["wall_seconds"]).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def improvement_matrix(episodes: pd.DataFrame) -> pd.DataFrame:
    """P(row agent > column agent) on the standard tracks, for every pair."""
    standard = episodes[episodes.condition == "standard"]
    agents = list(dict.fromkeys(standard["agent"]))
    matrices = {
        agent: score_matrix(part["return"].to_numpy(), part["seed"].to_numpy(), part["track_seed"].to_numpy())
        for agent, part in standard.groupby("agent", sort=False)
    }
    table = pd.DataFrame(index=agents, columns=agents, dtype=float)
    for x in agents:
        for y in agents:
            table.loc[x, y] = np.nan if x == y else probability_of_improvement(matrices[x], matrices[y])
    return table


def write_outputs(episodes: pd.DataFrame, runs: pd.DataFrame, out_dir: Path, name: str, command: str) -> Path:
    """episodes.csv, summary.csv, summary.md and the two plots; returns summary.md's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    episodes.to_csv(out_dir / "episodes.csv", index=False)
    summary = summarize_agents(episodes, runs)
    summary.round(3).to_csv(out_dir / "summary.csv", index=False)
    _plot_curves(runs, out_dir / "learning_curves.png")
    _plot_distributions(episodes, out_dir / "score_distributions.png")
    text = _markdown(summary, improvement_matrix(episodes), runs, name, command, episodes)
    (out_dir / "summary.md").write_text(text)
    return out_dir / "summary.md"


def _markdown(
    summary: pd.DataFrame, poi: pd.DataFrame, runs: pd.DataFrame, name: str, command: str, episodes: pd.DataFrame
) -> str:
    tracks = episodes[episodes.condition == "standard"]["track_seed"]
    lines = [
        f"# {name}: leaderboard",
        "",
        f"Produced by `{command}`. Raw CarRacing-v3 return on track seeds {tracks.min()}..{tracks.max()} "
        f"({tracks.nunique()} held-out tracks per run), deterministic policies; IQM with a 95% stratified "
        "bootstrap CI over runs x tracks; success = return >= 900. *Randomized*: the same tracks with "
        "`domain_randomize=True`.",
        "",
        "| agent | runs | mean ± std | median | IQM [95% CI] | success | IQM randomized [95% CI] | success randomized | train frames | wall h | frames/s |",  # noqa: E501
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in summary.sort_values("iqm", ascending=False).iterrows():
        randomized = (
            f"{r['iqm_randomized']:.1f} [{r['iqm_ci_low_randomized']:.1f}, {r['iqm_ci_high_randomized']:.1f}] | {r['success_rate_randomized']:.0%}"  # noqa: E501
            if "iqm_randomized" in r and pd.notna(r.get("iqm_randomized"))
            else "- | -"
        )
        cost = (
            f"{r['training_frames']:,.0f} | {r['wall_seconds'] / 3600:.2f} | {r['frames_per_s']:,.0f}"
            if pd.notna(r.get("training_frames"))
            else "- | - | -"
        )
        lines.append(
            f"| {r['agent']} | {r['runs']} | {r['mean']:.1f} ± {r['std']:.1f} | {r['median']:.1f} | "
            f"{r['iqm']:.1f} [{r['iqm_ci_low']:.1f}, {r['iqm_ci_high']:.1f}] | {r['success_rate']:.0%} | "
            f"{randomized} | {cost} |"
        )
    lines += ["", "## Probability of improvement", "", "P(row > column) on the standard tracks.", ""]
    lines.append("| | " + " | ".join(poi.columns) + " |")
    lines.append("|---|" + "---:|" * len(poi.columns))
    for agent, row in poi.iterrows():
        lines.append(f"| {agent} | " + " | ".join("-" if pd.isna(v) else f"{v:.2f}" for v in row) + " |")
    lines += ["", "![learning curves](learning_curves.png)", "", "![score distributions](score_distributions.png)", ""]
    return "\n".join(lines)


def _plot_curves(runs: pd.DataFrame, path: Path, bins: int = 20) -> None:
    """True training return vs env frames: mean over runs with a 95% bootstrap band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message="All-NaN slice", category=RuntimeWarning)
    figure, axes = plt.subplots(figsize=(7, 4))
    for agent, group in runs.groupby("agent", sort=False):
        curves = [pd.read_csv(RunDir(d).curve) for d in group["run_dir"]]
        top = max((float(c["frames"].max()) for c in curves if not c.empty), default=0.0)
        if top <= 0:
            continue
        edges = np.linspace(0, top, bins + 1)
        per_run = np.array(
            [
                [c[(c.frames > lo) & (c.frames <= hi)]["true_return"].mean() for lo, hi in itertools.pairwise(edges)]
                for c in curves
            ]
        )
        mean = np.nanmean(per_run, axis=0)
        rng = np.random.default_rng(0)
        boots = np.array([np.nanmean(per_run[rng.integers(0, len(per_run), len(per_run))], axis=0) for _ in range(500)])
        low, high = np.nanpercentile(boots, [2.5, 97.5], axis=0)
        centres = (edges[:-1] + edges[1:]) / 2
        axes.plot(centres, mean, label=str(agent))
        axes.fill_between(centres, low, high, alpha=0.25)
    axes.set_xlabel("env frames")
    axes.set_ylabel("true return (training episodes)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_distributions(episodes: pd.DataFrame, path: Path) -> None:
    """Score distributions (rliable's performance profiles): P(return > tau) per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    standard = episodes[episodes.condition == "standard"]
    taus = np.linspace(min(-100.0, standard["return"].min()), 1000.0, 200)
    figure, axes = plt.subplots(figsize=(7, 4))
    for agent, part in standard.groupby("agent", sort=False):
        returns = part["return"].to_numpy()
        axes.plot(taus, [(returns > tau).mean() for tau in taus], label=str(agent))
    axes.axvline(SUCCESS_RETURN, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("return threshold tau")
    axes.set_ylabel("fraction of episodes with return > tau")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def merge_settings(base: SuiteEval, **changes: Any) -> SuiteEval:
    """``base`` with the non-None ``changes``."""
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
