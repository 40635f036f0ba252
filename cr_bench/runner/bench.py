"""``cr-bench bench``: environment and training throughput, measured in one run on one machine.

Writes ``throughput.csv`` and ``throughput.md`` (the command line on top, every ratio next
to the absolute figures). Each training run happens in its own process, so its peak
memory (RSS of the process and its workers, sampled) is its own.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from cr_bench.agents.models import policy_kwargs, set_torch_threads
from cr_bench.agents.registry import AGENTS, resolve_config
from cr_bench.agents.training import FrameCounter, train
from cr_bench.envs import wrappers
from cr_bench.envs.envpool_backend import EnvPoolVecEnv
from cr_bench.envs.make import make_vec_env
from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_write_text, write_csv
from cr_bench.progress import agent_work
from cr_bench.results.tables import markdown_table
from cr_bench.results.throughput import (
    CSV_NAME,
    LEVER_PREFIX,
    MARKDOWN_NAME,
    PARALLEL_LEVER,
    PIPELINE,
    RAW,
    RAW_SHARDED,
    REFERENCE,
    TRAIN,
    machine_text,
)
from cr_bench.spec.loader import from_dict
from cr_bench.spec.run import ENV_ID, Backend, PolicyConfig, resolve_backend

# A fixed, gentle action: straight with some gas, so episodes last (frames/s depends on it
# little, but the same action everywhere keeps the measurements comparable).
DRIVE = np.array([0.0, 0.3, 0.0], dtype=np.float32)
COLUMNS = [
    "measurement",
    "backend",
    "envs",
    "threads",
    "frames",
    "seconds",
    "frames_per_s",
    "ratio",
    "ratio_to",
    "peak_rss_mb",
    "agent_work",
]


@dataclass
class Measurement:
    """One row of the throughput table."""

    measurement: str
    backend: str
    envs: int
    threads: int
    frames: int
    seconds: float
    peak_rss_mb: float | None = None
    ratio_to: str = ""
    ratio: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per phase of a training (:class:`PhaseTimer`), empty for other rows."""
    baseline: Measurement | None = None
    """A lever's: the default training timed just before and just after it (summed), its ratio's base."""
    agent_work: float | None = None
    """The default training's: its config's work per frame (:func:`cr_bench.progress.agent_work`),
    which the time estimates scale other configs from."""

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds


def raw_gymnasium(frames: int) -> Measurement:
    """Frames/s of one bare ``gym.make("CarRacing-v3")`` on one core."""
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(frames):
        _, _, terminated, truncated, _ = env.step(DRIVE)
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return Measurement(RAW, "gymnasium", 1, 1, frames, seconds)


def raw_envpool(frames: int, threads: int, envs: int, pool_per_thread: bool = False) -> Measurement:
    """Frames/s of bare EnvPool CarRacing-v3 (``envs`` envs stepped by ``threads`` threads):
    one pool in lockstep, or (``pool_per_thread``) one single-thread pool per thread, each
    stepping while the others' frames come back, as cr-bench's backend does."""
    import envpool

    parts = np.array_split(np.arange(envs), min(threads, envs) if pool_per_thread else 1)
    pools = [
        envpool.make(ENV_ID, env_type="gymnasium", num_envs=len(ids), batch_size=len(ids),
                     num_threads=1 if pool_per_thread else threads, seed=int(ids[0]))
        for ids in parts
    ]  # fmt: skip
    for pool in pools:
        pool.reset()
    actions = [np.tile(DRIVE, (len(ids), 1)) for ids in parts]
    steps = -(-frames // envs)
    start = time.perf_counter()
    for pool, action in zip(pools, actions, strict=True):
        pool.send(action)
    for _ in range(steps - 1):
        for pool, action in zip(pools, actions, strict=True):
            pool.recv()
            pool.send(action)  # EnvPool resets ended envs on their next step by itself
    for pool in pools:
        pool.recv()
    seconds = time.perf_counter() - start
    for pool in pools:
        pool.close()
    return Measurement(RAW_SHARDED if pool_per_thread else RAW, "envpool", envs, threads, steps * envs, seconds)


def pipeline(backend: Backend, frames: int, envs: int) -> Measurement:
    """Frames/s of ppo's observation pipeline (repeat, preprocessing, stack, bookkeeping).

    Built without the training-only wrappers: their early terminations would make
    episodes (and so the share of resets) differ from the raw measurement.
    """
    config = dataclasses.replace(resolve_config("ppo").env, backend=backend)
    venv = make_vec_env(config, envs, seed=0, training=False, vec_env="dummy")
    counter = FrameCounter(envs)
    venv.reset()
    actions = np.tile(DRIVE, (envs, 1))
    done_frames = 0
    start = time.perf_counter()
    while done_frames < frames:
        _, _, dones, infos = venv.step(actions)
        done_frames += counter.update(infos, dones)
    seconds = time.perf_counter() - start
    venv.close()
    threads = min(envs, os.cpu_count() or 1) if backend == "envpool" else 1
    return Measurement(PIPELINE, backend, envs, threads, done_frames, seconds)


@dataclass(frozen=True)
class Lever:
    """A speed lever: ppo's config with ``overrides``, trained in ``copies`` processes at once."""

    overrides: dict[str, Any]
    copies: int = 1


LEVERS: dict[str, Lever] = {
    "NCHW layout (channels_last off)": Lever({"policy": {"channels_last": False}}),
    "bf16 autocast": Lever({"policy": {"precision": "bf16"}}),
    "SB3's input conversion (pixel_input off: float, /255, relayout)": Lever({"policy": {"pixel_input": False}}),
    "overlapped rollouts (rollout_overlap: the policy acts for one pool while the other steps)": Lever(
        {"rollout_overlap": True}
    ),
    # Its learning per frame: benchmarks/overlap.yaml against benchmarks/early.yaml.
    "overlapped learner (learner_overlap: learns from one rollout while the next is played)": Lever(
        {"learner_overlap": True}
    ),
    "rollouts on the learner's 2 threads (the former default)": Lever({"rollout_threads": 0}),
    # Its learning per frame: benchmarks/learner.yaml against benchmarks/early.yaml.
    "2 epochs per rollout instead of 4 (algo.n_epochs: 2)": Lever({"algo": {"n_epochs": 2}}),
    "one EnvPool in lockstep (vec_env: pool, the former layout)": Lever({"vec_env": "pool"}),
    # What `compare --workers 2` and `tune --n-jobs 2` do on 2 cores (agents.threads_per_job).
    PARALLEL_LEVER: Lever({"torch_threads": 1}, copies=2),
}
"""Speed levers measured against the default ppo, by name."""


class PhaseTimer(BaseCallback):
    """Splits an on-policy training's time (PPO's family) into phases, from the callbacks'
    start (after ``learn``'s first env reset) to the end of ``learn``.

    ``env stepping`` is the innermost VecEnv's ``step_wait`` and ``wait_group`` (the
    simulator and the observation pipeline; with overlapped rollouts, the time this thread
    waits for a pool beyond the policy's), ``policy inference`` the policy's ``forward`` while collecting
    rollouts (DQN's family acts through ``predict``: it would show none), ``learner`` the
    time from the end of one rollout to the start of the next (SB3's ``train``, and the
    logging between; with an overlapped learner, the part of its time the rollout did not
    hide), and ``rollout loop`` the rest: SB3's bookkeeping, the rollout buffer,
    reward normalization and the callbacks (checkpoints, the curve). One timer per ``learn``:
    it wraps the env and the policy when training starts.
    """

    PHASES = ("env stepping", "policy inference", "rollout loop", "learner")

    def __init__(self) -> None:
        super().__init__()
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self._started = self._rollout_ended = 0.0

    def _timed(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        return timed

    def _on_training_start(self) -> None:
        venv = self.training_env
        while hasattr(venv, "venv"):  # VecNormalize, VecMonitor: time the env under them
            venv = venv.venv
        venv.step_wait = self._timed("env stepping", venv.step_wait)  # type: ignore[method-assign]
        if isinstance(venv, EnvPoolVecEnv):  # rollouts overlapped with the pools wait for groups
            venv.wait_group = self._timed("env stepping", venv.wait_group)  # type: ignore[method-assign]
        policy = self.model.policy
        policy.forward = self._timed("policy inference", policy.forward)  # type: ignore[method-assign]
        self._started = time.perf_counter()

    def _learner_ran(self) -> None:
        """Count the time since the last rollout ended (if it did) as the learner's."""
        if self._rollout_ended:
            self.seconds["learner"] += time.perf_counter() - self._rollout_ended
            self._rollout_ended = 0.0

    def _on_rollout_start(self) -> None:
        self._learner_ran()

    def _on_rollout_end(self) -> None:
        self._rollout_ended = time.perf_counter()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._learner_ran()  # SB3 trains after the last full rollout too
        total = time.perf_counter() - self._started
        self.seconds["rollout loop"] = total - sum(s for phase, s in self.seconds.items() if phase != "rollout loop")


TrainResult = tuple[int, dict[str, float]]
"""What a timed training returns: the frames it trained and its seconds per phase (may be empty)."""


def _train_cr_bench(frames: int, out: str, overrides: dict[str, Any] | None = None) -> TrainResult:
    config = resolve_config("ppo", {"frames": frames, "env": {"backend": "envpool"}, **(overrides or {})})
    timer = PhaseTimer()
    run = train(config, out, command="cr-bench bench", callbacks=[timer])
    return int(run.read_progress()["frames_done"]), timer.seconds


def _train_reference(frames: int, out: str) -> TrainResult:
    """rl-zoo3's CarRacing-v3 PPO recipe in plain SB3: FrameSkip 2, 64x64 grayscale,
    frame_stack 2, 8 SubprocVecEnvs on gymnasium, VecNormalize on rewards."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecFrameStack, VecNormalize

    from cr_bench.agents.models import parse_schedule

    recipe = AGENTS["ppo-gaussian"].defaults  # the same hyperparameters as rl-zoo3
    skip = recipe["env"]["action_repeat"]

    def wrap(env: gym.Env) -> gym.Env:
        # rl_zoo3.wrappers.FrameSkip sums rewards over `skip` frames, as ActionRepeat does.
        env = wrappers.ActionRepeat(env, skip)
        env = gym.wrappers.ResizeObservation(env, (64, 64))
        return gym.wrappers.GrayscaleObservation(env, keep_dim=True)

    set_torch_threads(2)
    venv = sb3_make_vec_env(ENV_ID, n_envs=recipe["n_envs"], seed=0, wrapper_class=wrap, vec_env_cls=SubprocVecEnv)
    venv = VecNormalize(VecFrameStack(venv, recipe["env"]["frame_stack"]), norm_obs=False, norm_reward=True)
    algo = {key: parse_schedule(value, key) for key, value in recipe["algo"].items()}
    kwargs = policy_kwargs(from_dict(PolicyConfig, recipe["policy"]))
    model = PPO("CnnPolicy", venv, policy_kwargs=kwargs, seed=0, device="cpu", **algo)
    model.learn(frames // skip)
    venv.close()
    return model.num_timesteps * skip, {}  # PPO finishes its last rollout past the budget


def _run_in_child(target: Callable[[int, str], TrainResult], frames: int, queue: Any, start_line: Any) -> None:
    """Once every copy is ready (``start_line``, a barrier), run ``target``; put its frames, its
    start and end (wall clock, comparable across the processes) and its phases on ``queue``."""
    with tempfile.TemporaryDirectory() as out:
        start_line.wait()
        start = time.time()
        done, phases = target(frames, os.path.join(out, "run"))
        queue.put((done, start, time.time(), phases))


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children") as handle:
                stack.extend(int(child) for child in handle.read().split())
        except (OSError, StopIteration):
            continue
    return total / 1024


def training_run(
    name: str, backend: str, envs: int, target: Callable[[int, str], TrainResult], frames: int, copies: int = 1
) -> Measurement:
    """Run ``copies`` of ``target`` at once, each in a fresh process, timing them and sampling their
    peak memory (summed over the copies).

    With several copies the row is their aggregate: frames and envs summed over the copies,
    seconds from their common start (once all have imported) to the last one's end, so
    frames/s is what the machine trains in all (``compare --workers``, ``tune --n-jobs``). The phases are those
    of the copy that finished first.
    """
    context = multiprocessing.get_context("forkserver")
    queue, start_line = context.Queue(), context.Barrier(copies)
    processes = [context.Process(target=_run_in_child, args=(target, frames, queue, start_line)) for _ in range(copies)]
    for process in processes:
        process.start()
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, sum(_tree_rss_mb(process.pid or 0) for process in processes))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    results: list[tuple[int, float, float, dict[str, float]]] = []
    while len(results) < copies and any(process.is_alive() for process in processes):
        try:
            results.append(queue.get(timeout=1))
        except Empty:  # still running, or died without answering
            if any(process.exitcode for process in processes):
                start_line.abort()  # a copy died: the others must not wait for it at the start
    for process in processes:
        process.join()
    while len(results) < copies and not queue.empty():
        results.append(queue.get())
    stop.set()
    sampler.join()
    failed = [process.exitcode for process in processes if process.exitcode]
    if len(results) < copies or failed:
        raise CrBenchError(f"{name} training failed (exit code {failed[0] if failed else None})")
    done = sum(result[0] for result in results)
    seconds = max(result[2] for result in results) - min(result[1] for result in results)
    return Measurement(name, backend, envs * copies, 2, done, seconds, peak_rss_mb=round(peak, 1), phases=results[0][3])


def run_bench(
    raw_frames: int, train_frames: int, reference: bool, levers: bool = True, log: Callable[[str], None] = print
) -> list[Measurement]:
    """Every measurement of the throughput table, with ratios filled in."""
    set_torch_threads(2)
    has_envpool = resolve_backend("auto") == "envpool"
    beta_envs = resolve_config("ppo").n_envs
    pool_threads = min(beta_envs, os.cpu_count() or 1)
    steps: list[tuple[str, Callable[[], Measurement]]] = [("raw gymnasium", lambda: raw_gymnasium(raw_frames))]
    if has_envpool:
        steps += [
            ("raw envpool, 1 thread", lambda: raw_envpool(raw_frames * 4, threads=1, envs=beta_envs)),
            ("raw envpool, 2 threads", lambda: raw_envpool(raw_frames * 8, threads=2, envs=beta_envs)),
            (  # the layout of the backend, and so of the pipeline row: a pool per core
                "raw envpool, a pool per thread",
                lambda: raw_envpool(raw_frames * 8, threads=pool_threads, envs=beta_envs, pool_per_thread=True),
            ),
        ]
    steps.append(("pipeline on gymnasium", lambda: pipeline("gymnasium", raw_frames, envs=1)))
    ref_envs = AGENTS["ppo-gaussian"].defaults["n_envs"]
    train_reference = (
        "train reference",
        lambda: training_run(REFERENCE, "gymnasium", ref_envs, _train_reference, train_frames),
    )
    if has_envpool:
        train_ppo = functools.partial(training_run, TRAIN, "envpool", beta_envs, _train_cr_bench, train_frames)
        steps += [("pipeline on envpool", lambda: pipeline("envpool", raw_frames * 8, envs=beta_envs))]
        steps.append((TRAIN_FIRST, train_ppo))
        if reference:  # between two timings of ppo, which are summed (_bracketed)
            steps += [train_reference, (TRAIN_AGAIN, train_ppo)]
        for name, lever in LEVERS.items() if levers else ():
            target = functools.partial(_train_cr_bench, overrides=lever.overrides)
            label = f"{LEVER_PREFIX}{name}"
            steps.append(
                (
                    label,
                    functools.partial(training_run, label, "envpool", beta_envs, target, train_frames, lever.copies),
                )
            )
            steps.append((TRAIN_AFTER_LEVER, train_ppo))
    elif reference:
        steps.append(train_reference)
    rows: list[Measurement] = []
    last_ppo: Measurement | None = None  # the newest timing of ppo, before the next lever
    for label, measure in steps:
        log(f"measuring {label} ...")
        row = measure()
        log(f"  {row.frames_per_s:,.0f} frames/s ({row.frames} frames in {row.seconds:.1f} s)")
        if label == TRAIN_AGAIN:
            first = next(i for i, earlier in enumerate(rows) if earlier.measurement == TRAIN)
            rows[first] = _bracketed(rows[first], row)
        elif label == TRAIN_AFTER_LEVER:
            assert last_ppo is not None
            rows[-1].baseline = _bracketed(last_ppo, row)
        else:
            rows.append(row)
        if label in (TRAIN_FIRST, TRAIN_AGAIN, TRAIN_AFTER_LEVER):
            last_ppo = row
    for row in rows:
        if row.measurement == TRAIN:  # what the estimates scale from (_train_cr_bench trains it)
            row.agent_work = agent_work(resolve_config("ppo"))
    _add_ratios(rows)
    return rows


TRAIN_FIRST = "train ppo"
TRAIN_AFTER_LEVER = "train ppo again, after the lever"
"""A timing of ppo's training after each lever: the lever's ratio is to the timings just
before and just after it, so the machine's drift over the bench's hour cancels in it too."""

TRAIN_AGAIN = "train ppo again, after the reference"
"""The second timing of ppo's training: this machine's speed drifts by 15-20% over the
reference's 10 minutes, so ppo is timed on both sides of it."""


def _bracketed(before: Measurement, after: Measurement) -> Measurement:
    """One row from two timings of the same training, before and after the reference: frames,
    seconds and phases summed, so a steady drift of the machine's speed cancels in the ratio."""
    phases = {phase: before.phases.get(phase, 0.0) + after.phases.get(phase, 0.0) for phase in before.phases}
    peaks = [row.peak_rss_mb for row in (before, after) if row.peak_rss_mb is not None]
    return dataclasses.replace(
        before,
        frames=before.frames + after.frames,
        seconds=before.seconds + after.seconds,
        peak_rss_mb=max(peaks) if peaks else None,
        phases=phases,
    )


def _find(rows: list[Measurement], measurement: str, backend: str, threads: int | None = None) -> Measurement | None:
    for row in rows:
        if row.measurement == measurement and row.backend == backend and threads in (None, row.threads):
            return row
    return None


def _add_ratios(rows: list[Measurement]) -> None:
    """Pipelines relative to the raw env on the same backend and threads; training relative to the
    reference; each lever relative to the default training."""
    reference = _find(rows, REFERENCE, "gymnasium")
    default = _find(rows, TRAIN, "envpool")
    for row in rows:
        base: Measurement | None = None
        if row.measurement == PIPELINE:  # the same layout: cr-bench's EnvPool backend is a pool per thread
            base = _find(rows, RAW_SHARDED if row.backend == "envpool" else RAW, row.backend, row.threads)
        elif row.measurement in (RAW, RAW_SHARDED) and row.backend == "envpool":
            base = _find(rows, RAW, "gymnasium")
        elif row.measurement == TRAIN:
            base = reference
        elif row.measurement.startswith(LEVER_PREFIX):
            base = row.baseline or default
        if base is not None and base is not row:
            row.ratio = round(row.frames_per_s / base.frames_per_s, 2)
            row.ratio_to = (
                f"{base.measurement} ({base.backend}, {base.threads} thread{'s' if base.threads > 1 else ''})"
            )
            if base is row.baseline:
                row.ratio_to += ", timed just before and after it"


def write_results(rows: list[Measurement], out_dir: Path, command: str) -> tuple[Path, Path]:
    """Write throughput.csv and throughput.md; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / CSV_NAME, out_dir / MARKDOWN_NAME
    write_csv(
        csv_path,
        COLUMNS,
        [
            [r.measurement, r.backend, r.envs, r.threads, r.frames, round(r.seconds, 2), round(r.frames_per_s, 1),
             "" if r.ratio is None else r.ratio, r.ratio_to, "" if r.peak_rss_mb is None else r.peak_rss_mb,
             "" if r.agent_work is None else round(r.agent_work, 4)]
            for r in rows
        ],
    )  # fmt: skip
    lines = [
        "# Throughput",
        "",
        f"Produced by `{command}` on {machine_text()}, {time.strftime('%Y-%m-%d')}.",
        "",
    ]
    header = ["measurement", "backend", "envs", "threads", "frames", "seconds", "frames/s", "ratio", "relative to",
              "peak RSS MB"]  # fmt: skip
    lines += markdown_table(header, map(_markdown_row, rows), "llrrrrrrlr")
    if _find(rows, REFERENCE, "gymnasium") is not None and _find(rows, TRAIN, "envpool") is not None:
        lines += ["", f"`{TRAIN}` is timed twice, just before and just after the reference, and the two are summed:"]
        lines.append("a drift of the machine's speed over the reference's minutes cancels in their ratio.")
    if any(row.baseline is not None for row in rows):
        lines += [
            "",
            f"Each lever's ratio is to `{TRAIN}` timed just before and just after it (summed), not to the row",
        ]
        lines.append("above: a drift of the machine's speed over the bench's hour cancels in it.")
    lines += ["", "Targets:", ""]
    pipe = _find(rows, PIPELINE, "envpool")
    if pipe is not None and pipe.ratio is not None:
        lines.append(f"- pipeline on EnvPool keeps >= 80% of raw EnvPool: {pipe.ratio:.0%} ({_met(pipe.ratio >= 0.8)})")
    training = _find(rows, TRAIN, "envpool")
    if training is not None and training.ratio is not None:
        lines.append(
            f"- ppo training >= 10x the reference's frames/s: {training.ratio:.1f}x ({_met(training.ratio >= 10)})"
        )
    raws = [row for row in rows if row.measurement in (RAW, RAW_SHARDED) and row.backend == "envpool"]
    if training is not None and raws:
        raw = max(raws, key=lambda row: row.frames_per_s)  # the hardware limit: the fastest bare EnvPool
        share = training.frames_per_s / raw.frames_per_s
        lines.append(
            f"- ppo training >= 0.6x raw EnvPool (the fastest row, {raw.measurement}, {raw.threads} threads): "
            f"{share:.2f}x ({_met(share >= 0.6)})"
        )
    if training is not None and training.peak_rss_mb is not None:
        lines.append(
            f"- ppo training peak RSS <= 1 GB: {training.peak_rss_mb:,.0f} MB ({_met(training.peak_rss_mb <= 1024)})"
        )
    if training is not None and training.phases:
        lines += ["", f"Where the time of `{TRAIN}` goes (what each phase holds: `bench.PhaseTimer`):", ""]
        lines += markdown_table(["phase", "seconds", "share", "seconds per 100k frames"], _phase_rows(training), "lrrr")
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


def _phase_rows(row: Measurement) -> list[list[str]]:
    """One line per phase of a timed training, then the rest of its seconds (building the env
    and model, the first reset, the final checkpoint); shares of the row's seconds."""
    phases = {**row.phases, "outside learn (setup, final save)": row.seconds - sum(row.phases.values())}
    return [
        [phase, f"{seconds:.1f}", f"{seconds / row.seconds:.0%}", f"{seconds * 100_000 / row.frames:.1f}"]
        for phase, seconds in phases.items()
    ]


def _markdown_row(r: Measurement) -> list[str]:
    return [
        r.measurement,
        r.backend,
        str(r.envs),
        str(r.threads),
        f"{r.frames:,}",
        f"{r.seconds:.1f}",
        f"{r.frames_per_s:,.0f}",
        "" if r.ratio is None else f"{r.ratio:.2f}x",
        r.ratio_to,
        "" if r.peak_rss_mb is None else f"{r.peak_rss_mb:,.0f}",
    ]


def _met(ok: bool) -> str:
    return "met" if ok else "not met"
