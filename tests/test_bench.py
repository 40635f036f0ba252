"""cr-bench bench: measurements, ratios and the written tables (tiny budgets)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cr_bench.agents.registry import resolve_config
from cr_bench.errors import CrBenchError
from cr_bench.progress import agent_work
from cr_bench.runner import bench
from cr_bench.runner.bench import (
    COLUMNS,
    Measurement,
    PhaseTimer,
    _add_ratios,
    _tree_rss_mb,
    raw_gymnasium,
    write_results,
)


def _rows() -> list[Measurement]:
    return [
        Measurement("raw env", "gymnasium", 1, 1, 1000, 5.0),
        Measurement("raw env", "envpool", 8, 2, 8000, 4.0),
        Measurement("raw env, a pool per thread", "envpool", 8, 2, 8000, 3.2),
        Measurement("cr-bench pipeline", "envpool", 8, 2, 8000, 5.0),
        Measurement("train cr-bench ppo", "envpool", 8, 2, 20000, 20.0, peak_rss_mb=900.0),
        Measurement("train SB3 PPO rl-zoo3 recipe", "gymnasium", 8, 2, 20000, 200.0, peak_rss_mb=2500.0),
    ]


def test_ratios_compare_like_with_like() -> None:
    """Pipeline vs raw env on its backend and layout, EnvPool vs gymnasium, training vs the reference."""
    rows = _rows()
    _add_ratios(rows)
    assert rows[1].ratio == 10.0 and "gymnasium" in rows[1].ratio_to
    assert rows[2].ratio == 12.5 and "gymnasium" in rows[2].ratio_to
    assert rows[3].ratio == 0.64 and rows[3].ratio_to.startswith("raw env, a pool per thread (envpool, 2 threads)")
    assert rows[4].ratio == 10.0 and rows[4].ratio_to.startswith("train SB3 PPO")
    assert rows[0].ratio is None and rows[5].ratio is None


def test_tables_carry_the_command_ratios_and_targets(tmp_path: Path) -> None:
    rows = _rows()
    _add_ratios(rows)
    csv_path, md_path = write_results(rows, tmp_path, "cr-bench bench --train-frames 20000")
    text = md_path.read_text()
    assert "`cr-bench bench --train-frames 20000`" in text.splitlines()[2]
    assert "keeps >= 80% of raw EnvPool: 64% (not met)" in text
    assert ">= 10x the reference's frames/s: 10.0x (met)" in text
    # Against the fastest bare EnvPool: 1000 / 2500.
    assert ">= 0.6x raw EnvPool (the fastest row, raw env, a pool per thread, 2 threads): 0.40x (not met)" in text
    with csv_path.open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == COLUMNS
    assert [r["frames_per_s"] for r in table] == ["200.0", "2000.0", "2500.0", "1600.0", "1000.0", "100.0"]
    # ratios from the figures: 2000 / 200, 2500 / 200, 1600 / 2500, 1000 / 100
    assert [r["ratio"] for r in table] == ["", "10.0", "12.5", "0.64", "10.0", ""]
    assert table[4]["peak_rss_mb"] == "900.0" and table[5]["peak_rss_mb"] == "2500.0"
    lines = text.splitlines()
    assert (
        lines[4].split(" | ")[-1] == "peak RSS MB |" and lines[5] == "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"
    )
    assert lines[9] == (
        "| cr-bench pipeline | envpool | 8 | 2 | 8,000 | 5.0 | 1,600 | 0.64x "
        "| raw env, a pool per thread (envpool, 2 threads) |  |"
    )
    assert len(lines[6:12]) == len(rows) and all(line.startswith("| ") for line in lines[6:12])


def test_phase_timer_puts_each_wait_in_its_phase() -> None:
    """A PPO stopped by a callback at its 24th step (rollouts of 8): the env sleeps 40 ms a
    step, a wrapper above it 60 ms, the learner 500 ms a call. Env stepping holds the env's
    0.96 s and not the wrapper's 1.44 s (that is rollout loop); the learner phase is the
    time spent in the 2 trainings after the full rollouts, not the stopped third rollout."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecNormalize

    class SlowWrapper(VecEnvWrapper):
        def reset(self) -> object:
            return self.venv.reset()

        def step_wait(self) -> object:
            time.sleep(0.06)
            return self.venv.step_wait()

    class StopAt24(BaseCallback):
        def _on_step(self) -> bool:
            return self.num_timesteps < 24

    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    env_step = venv.step_wait

    def slow_step() -> object:
        time.sleep(0.04)
        return env_step()

    venv.step_wait = slow_step  # type: ignore[method-assign]
    wrapped = VecNormalize(SlowWrapper(venv), norm_obs=False)
    model = PPO("MlpPolicy", wrapped, n_steps=8, batch_size=8, n_epochs=1, device="cpu")
    learner = model.train
    trained: list[float] = []

    def slow_train() -> None:
        start = time.perf_counter()
        time.sleep(0.5)
        learner()
        trained.append(time.perf_counter() - start)

    model.train = slow_train  # type: ignore[method-assign]
    timer = PhaseTimer()
    model.learn(100, callback=[timer, StopAt24()])
    seconds = timer.seconds
    assert model.num_timesteps == 24 and len(trained) == 2
    assert list(seconds) == ["env stepping", "policy inference", "rollout loop", "learner"]
    assert 0.96 <= seconds["env stepping"] < 0.96 + 0.7
    # The stopped rollout's 8 steps sleep 0.8 s: counted as learner, they would break the bound.
    assert sum(trained) <= seconds["learner"] < sum(trained) + 0.4
    assert seconds["rollout loop"] >= 1.44 and seconds["policy inference"] > 0


def test_phases_table_follows_the_targets(tmp_path: Path) -> None:
    """The timed training's phases get a table: seconds, share of the row's seconds, seconds per
    100k frames, and what the phases leave (setup and the final save)."""
    rows = _rows()
    rows[4].phases = {"env stepping": 10.0, "policy inference": 2.0, "rollout loop": 1.0, "learner": 3.0}
    _add_ratios(rows)
    _, md_path = write_results(rows, tmp_path, "cr-bench bench")
    text = md_path.read_text()
    assert "| env stepping | 10.0 | 50% | 50.0 |" in text  # 10 s of the row's 20 s; 20,000 frames
    assert "| learner | 3.0 | 15% | 15.0 |" in text
    assert "| outside learn (setup, final save) | 4.0 | 20% | 20.0 |" in text
    assert text.index("Targets:") < text.index("| env stepping |")


def _sleepy_training(frames: int, out: str) -> bench.TrainResult:
    """Stands in for a training (in a bench child process): 0.3 s, then ``frames`` done."""
    time.sleep(0.3)
    return frames, {"learner": 0.3}


def test_copies_trained_at_once_add_their_frames() -> None:
    """Two copies at once: the row has both copies' frames and envs, seconds from the first start
    to the last end (so the machine's total frames/s), and a copy's phases."""
    alone = bench.training_run("one", "envpool", 8, _sleepy_training, 1000)
    both = bench.training_run("two", "envpool", 8, _sleepy_training, 1000, copies=2)
    assert (alone.frames, both.frames, alone.envs, both.envs) == (1000, 2000, 8, 16)
    assert 0.3 <= both.seconds < 0.3 + 5 and both.phases == {"learner": 0.3}
    assert both.frames_per_s > 1.5 * alone.frames_per_s  # the copies slept side by side


def _dying_training(frames: int, out: str) -> bench.TrainResult:
    os._exit(3)


def test_a_copy_that_dies_is_a_one_line_error() -> None:
    with pytest.raises(CrBenchError, match="two training failed \\(exit code 3\\)"):
        bench.training_run("two", "envpool", 8, _dying_training, 1000, copies=2)


class _CountingEnv:
    """Stands in for CarRacing: counts steps and resets; an episode ends every 20 steps."""

    def __init__(self) -> None:
        self.steps, self.resets, self.closed = 0, [], False

    def reset(self, seed: int | None = None) -> tuple[None, dict]:
        self.resets.append(seed)
        return None, {}

    def step(self, action: object) -> tuple[None, float, bool, bool, dict]:
        self.steps += 1
        return None, 0.0, self.steps % 20 == 0, False, {}

    def close(self) -> None:
        self.closed = True


def test_raw_gymnasium_times_the_budget_and_writes_its_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """50 frames: 50 steps, a reset after each of the 2 ended episodes, timed by the clock around the
    loop (10.0 s -> 12.5 s): 20 frames/s, written as such to both tables."""
    env = _CountingEnv()
    monkeypatch.setattr(bench.gym, "make", lambda env_id: env)
    clock = iter([10.0, 12.5])
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: next(clock), strftime=time.strftime))
    row = raw_gymnasium(50)
    assert env.steps == 50 and env.resets == [0, None, None] and env.closed
    assert (row.measurement, row.backend, row.envs, row.threads, row.frames, row.seconds) == (
        "raw env", "gymnasium", 1, 1, 50, 2.5
    )  # fmt: skip
    assert row.frames_per_s == 20.0
    csv_path, md_path = write_results([row], tmp_path, "cr-bench bench")
    with csv_path.open() as handle:
        assert list(csv.DictReader(handle)) == [
            {"measurement": "raw env", "backend": "gymnasium", "envs": "1", "threads": "1", "frames": "50",
             "seconds": "2.5", "frames_per_s": "20.0", "ratio": "", "ratio_to": "", "peak_rss_mb": "",
             "agent_work": ""}
        ]  # fmt: skip
    assert md_path.read_text().splitlines()[6] == "| raw env | gymnasium | 1 | 1 | 50 | 2.5 | 20 |  |  |  |"


def test_raw_gymnasium_on_carracing() -> None:
    """The real env: the row describes one bare gymnasium env and its rate is frames over seconds."""
    row = raw_gymnasium(50)
    assert (row.measurement, row.backend, row.envs, row.threads, row.frames) == ("raw env", "gymnasium", 1, 1, 50)
    assert row.frames_per_s == pytest.approx(50 / row.seconds)


def test_tree_rss_includes_children() -> None:
    """The memory sampler adds a child's memory (here a child holding 200 MB) to its parent's."""
    code = "import sys, time; block = bytearray(200_000_000); print('ready', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        alone = _tree_rss_mb(child.pid)
        assert alone > 150
        assert _tree_rss_mb(os.getpid()) > alone
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_full_bench_runs(tmp_path: Path) -> None:
    """The whole bench with small budgets (minutes: runs both trainings)."""
    from cr_bench.runner.bench import run_bench

    rows = run_bench(raw_frames=200, train_frames=2000, reference=True, log=lambda _: None)
    assert {r.measurement for r in rows} >= {"raw env", "cr-bench pipeline", "train cr-bench ppo"}
    write_results(rows, tmp_path, "test")
    assert (tmp_path / "throughput.md").is_file()


@pytest.mark.skipif(bench.resolve_backend("auto") != "envpool", reason="EnvPool is not installed")
@pytest.mark.parametrize(("pool_per_thread", "layout"), [(False, [(3, 2)]), (True, [(2, 1), (1, 1)])])
def test_raw_envpool_steps_every_env_in_either_layout(
    pool_per_thread: bool, layout: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pool of 3 envs on 2 threads, or a pool per thread (2 + 1 envs, one thread each);
    either way every pool is reset, then stepped once per round: 40 rounds for 120 frames."""
    import envpool

    made, received = [], []
    real_make = envpool.make

    def make(*args: object, **kwargs: object) -> object:
        pool = real_make(*args, **kwargs)
        made.append((kwargs["num_envs"], kwargs["num_threads"]))
        index, recv = len(made) - 1, pool.recv

        def counting_recv(*a: object, **k: object) -> object:
            received.append(index)
            return recv(*a, **k)

        pool.recv = counting_recv
        return pool

    monkeypatch.setattr(envpool, "make", make)
    row = bench.raw_envpool(120, threads=2, envs=3, pool_per_thread=pool_per_thread)
    assert made == layout
    assert [received.count(i) for i in range(len(layout))] == [1 + 40] * len(layout)
    assert (row.frames, row.envs, row.threads) == (120, 3, 2) and row.seconds > 0
    assert row.measurement == ("raw env, a pool per thread" if pool_per_thread else "raw env")


@pytest.mark.skipif(bench.resolve_backend("auto") != "envpool", reason="EnvPool is not installed")
def test_ppo_is_timed_on_both_sides_of_the_reference(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Was: the reference ran minutes after ppo, and the machine's drift in between moved their
    ratio (9.1x and 6.8x in two runs). Now ppo is timed just before and just after it, summed."""
    timed: list[str] = []
    seconds = iter([10.0, 100.0, 20.0])

    def training_run(name: str, backend: str, envs: int, *_: object) -> Measurement:
        timed.append(name)
        return Measurement(name, backend, envs, 2, 1000, next(seconds), peak_rss_mb=len(timed), phases={"learner": 1.0})

    def other(*_: object, **__: object) -> Measurement:
        return Measurement("raw env", "gymnasium", 1, 1, 100, 1.0)

    monkeypatch.setattr(bench, "training_run", training_run)
    for name in ("raw_gymnasium", "raw_envpool", "pipeline"):
        monkeypatch.setattr(bench, name, other)
    rows = bench.run_bench(raw_frames=10, train_frames=1000, reference=True, levers=False, log=lambda _: None)
    assert timed == [bench.TRAIN, bench.REFERENCE, bench.TRAIN]
    (train,) = [row for row in rows if row.measurement == bench.TRAIN]
    assert (train.frames, train.seconds, train.peak_rss_mb, train.phases) == (2000, 30.0, 3, {"learner": 2.0})
    assert train.ratio == round((2000 / 30) / (1000 / 100), 2)
    assert train.agent_work == agent_work(resolve_config("ppo"))  # what the time estimates scale from
    _, md_path = write_results(rows, tmp_path, "cr-bench bench")
    assert "is timed twice, just before and just after the reference" in md_path.read_text()


@pytest.mark.skipif(bench.resolve_backend("auto") != "envpool", reason="EnvPool is not installed")
def test_each_lever_is_timed_between_two_timings_of_ppo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Was: the levers ran one after another against ppo's first timing, and the machine sped
    up by 20% over the bench (a lever that is slower in every other run came out 1.22x). Now
    each lever's ratio is to ppo timed just before and just after it."""
    timed: list[str] = []
    seconds = iter([10.0, 100.0, 20.0, 5.0, 30.0, 8.0, 40.0])

    def training_run(name: str, backend: str, envs: int, *_: object) -> Measurement:
        timed.append(name)
        return Measurement(name, backend, envs, 2, 1000, next(seconds))

    def other(*_: object, **__: object) -> Measurement:
        return Measurement("raw env", "gymnasium", 1, 1, 100, 1.0)

    monkeypatch.setattr(bench, "training_run", training_run)
    for name in ("raw_gymnasium", "raw_envpool", "pipeline"):
        monkeypatch.setattr(bench, name, other)
    monkeypatch.setattr(bench, "LEVERS", {"one": bench.Lever({}), "two": bench.Lever({})})
    rows = bench.run_bench(raw_frames=10, train_frames=1000, reference=True, log=lambda _: None)
    one, two = f"{bench.LEVER_PREFIX}one", f"{bench.LEVER_PREFIX}two"
    assert timed == [bench.TRAIN, bench.REFERENCE, bench.TRAIN, one, bench.TRAIN, two, bench.TRAIN]
    ratios = {row.measurement: row.ratio for row in rows}
    assert ratios[one] == round((1000 / 5) / (2000 / (20 + 30)), 2)
    assert ratios[two] == round((1000 / 8) / (2000 / (30 + 40)), 2)
    assert [row.measurement for row in rows].count(bench.TRAIN) == 1  # the bracket of the reference
    _, md_path = write_results(rows, tmp_path, "cr-bench bench")
    assert "timed just before and just after it" in md_path.read_text()
