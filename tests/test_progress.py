"""What a person sees: estimates from this machine's measured speeds, and no bars in worker processes."""

from __future__ import annotations

import io
import platform
from pathlib import Path

import pytest

from cr_bench import progress
from cr_bench.agents.registry import resolve_config
from cr_bench.results.throughput import LEVER_PREFIX, PARALLEL_LEVER, cpu_model, measured_fps
from cr_bench.runner.bench import Measurement, write_results
from tests.conftest import ONE_ENV, TINY, run_cli


def _throughput(folder: Path, work: float | None = None, parallel: float | None = None) -> None:
    """A bench table where gymnasium runs at 100 frames/s and ppo trains on EnvPool at 1,000
    (a config of ``work`` per frame; None: a table from before bench recorded it)."""
    write_results(
        [
            Measurement("raw env", "gymnasium", 1, 1, 1000, 8.0),
            Measurement("cr-bench pipeline", "gymnasium", 1, 1, 1000, 10.0),
            Measurement("cr-bench pipeline", "envpool", 8, 2, 4000, 2.0),
            Measurement("train cr-bench ppo", "envpool", 8, 2, 10_000, 10.0, agent_work=work),
            Measurement("train SB3 PPO rl-zoo3 recipe", "gymnasium", 8, 2, 1000, 10.0),
            *(
                [Measurement(LEVER_PREFIX + PARALLEL_LEVER, "envpool", 16, 2, 12_000, 10.0, ratio=parallel)]
                if parallel
                else []
            ),
        ],
        folder / "results",
        "cr-bench bench",
    )


def test_speeds_come_from_the_bench_table(tmp_path: Path) -> None:
    _throughput(tmp_path)
    table = tmp_path / "results" / "throughput.csv"
    on_pool, on_gym = {"env": {"backend": "envpool"}}, {"env": {"backend": "gymnasium"}}
    assert progress.training_fps(resolve_config("ppo", on_pool), table) == pytest.approx(1000.0)
    assert progress.training_fps(resolve_config("dqn", on_pool), table) < 1000.0  # priced by its work per frame
    assert progress.training_fps(resolve_config("dqn", on_gym), table) == 100.0
    assert progress.evaluation_fps("envpool", 2, table, action_repeat=8) == 2000.0
    # A table from before undrawn frames: the pipeline is slower than the raw env, whatever the repeat.
    assert progress.evaluation_fps("gymnasium", 1, table, action_repeat=8) == 100.0
    assert progress.evaluation_fps("gymnasium", 1, table, action_repeat=2) == 100.0
    assert measured_fps("raw env", "gymnasium", table) == 125.0
    assert measured_fps("raw env", "gymnasium", tmp_path / "missing.csv") is None


def test_a_gymnasium_evaluation_is_estimated_at_its_action_repeat(tmp_path: Path) -> None:
    """gymnasium draws only the last frame of a repeat: raw 150 frames/s (6.67 ms a frame) and
    ppo's pipeline 600 at its repeat 8 (1.67 ms) make a drawing 5.71 ms (5 ms is 7/8 of one);
    at repeat 2 a frame costs 1.67 + 5.71 x (1/2 - 1/8) = 3.81 ms, 262 frames/s a worker."""
    write_results(
        [
            Measurement("raw env", "gymnasium", 1, 1, 1500, 10.0),
            Measurement("cr-bench pipeline", "gymnasium", 1, 1, 6000, 10.0),
        ],
        tmp_path,
        "cr-bench bench",
    )
    table = tmp_path / "throughput.csv"
    assert resolve_config("ppo").env.action_repeat == 8
    assert progress.evaluation_fps("gymnasium", 1, table, action_repeat=8) == pytest.approx(600.0)
    assert progress.evaluation_fps("gymnasium", 2, table, action_repeat=2) == pytest.approx(2 * 262.5, rel=1e-3)


def test_train_says_how_long_it_will_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 frames on gymnasium at the table's 100 frames/s: about 10 s, said before training."""
    _throughput(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(
        ["train", "ppo", "--frames", "1000", "--out", str(tmp_path / "run"), *ONE_ENV, *TINY["ppo"]]
    )
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("training ppo seed 0 on gymnasium: about 10 s (1,000 frames at 100 frames/s")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_workers_show_no_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal a bar shows, until the process is made quiet (a worker of compare or tune)."""
    monkeypatch.setattr(progress, "_show_bars", True)
    assert not progress.bar(10, "frame", file=_Terminal()).disable
    progress.quiet()
    assert progress.bar(10, "frame", file=_Terminal()).disable


def test_the_estimate_follows_what_a_config_costs_per_frame(tmp_path: Path) -> None:
    """The study's tuned config (action repeat 4, 7 epochs) was announced at the default's speed
    and took about three times as long: the estimate scales the agent's share of a frame.

    The table: the pipeline alone at 2,000 frames/s (0.5 ms a frame), ppo's default at 1,000
    (1 ms): half of a default frame is the agent's work, (1 + 3 x 4) / 8 forward passes. The
    tuned config does (1 + 3 x 7) / 4: 3.38x that work, so 0.5 + 0.5 x 3.38 ms a frame.
    """
    _throughput(tmp_path)
    table = tmp_path / "results" / "throughput.csv"
    tuned = resolve_config("ppo", {"env": {"backend": "envpool", "action_repeat": 4}, "algo": {"n_epochs": 7}})
    expected = 1000 / (0.5 + 0.5 * (22 / 4) / (13 / 8))
    assert progress.training_fps(tuned, table) == pytest.approx(expected)
    assert expected < 1000 / 2  # more than twice the default's time per frame
    smaller = resolve_config("ppo", {"env": {"backend": "envpool", "obs_size": 48}})
    assert progress.training_fps(smaller, table) > 1000  # a quarter of the pixels: faster than the default


def test_the_estimate_scales_from_the_config_the_table_trained(tmp_path: Path) -> None:
    """A table records the work per frame of the default it trained: a config of that work is
    estimated at the row's speed, whatever ppo's default is now; ppo-v1, 0.30x that work, faster.
    A table without the column trained ppo-v1 (the default when it was written)."""
    _throughput(tmp_path, work=22 / 4)
    table = tmp_path / "results" / "throughput.csv"
    study = resolve_config("ppo", {"env": {"backend": "envpool", "action_repeat": 4}, "algo": {"n_epochs": 7}})
    assert progress.training_fps(study, table) == pytest.approx(1000.0)
    v1 = resolve_config("ppo-v1", {"env": {"backend": "envpool"}})
    assert progress.training_fps(v1, table) == pytest.approx(1000 / (0.5 + 0.5 * (13 / 8) / (22 / 4)))
    _throughput(tmp_path)
    assert progress.training_fps(v1, table) == pytest.approx(1000.0)


def test_dqns_family_is_priced_by_its_work_per_frame(tmp_path: Path) -> None:
    """Was: dqn and qrdqn had no estimate ("speed not measured ... cr-bench bench measures it",
    though bench trains ppo only). A replay learner's frame costs the pipeline's plus its work
    in the same unit as PPO's: a forward to act per transition, and per gradient step four
    forwards a sample (the online net's forward and backward, the target net's forward).
    dqn's default does (1 + 4 x 32 x 1 / (2 x 2)) / 2 x (84/96)^2 = 12.6 a frame."""
    _throughput(tmp_path)
    table = tmp_path / "results" / "throughput.csv"
    on_pool = {"env": {"backend": "envpool"}}
    dqn = resolve_config("dqn", on_pool)
    pixels = (84 / 96) ** 2
    assert progress.agent_work(dqn) == pytest.approx((1 + 4 * 32 / 4) / 2 * pixels)
    measured = progress.agent_work(resolve_config("ppo-v1"))  # what a table without the column trained
    assert progress.training_fps(dqn, table) == pytest.approx(1000 / (0.5 + 0.5 * progress.agent_work(dqn) / measured))
    twice = resolve_config("dqn", {**on_pool, "algo": {"gradient_steps": 2}})
    assert progress.agent_work(twice) == pytest.approx((1 + 4 * 32 * 2 / 4) / 2 * pixels)
    every = resolve_config("dqn", {**on_pool, "algo": {"gradient_steps": -1}})  # a step per transition collected
    assert progress.agent_work(every) == pytest.approx((1 + 4 * 32) / 2 * pixels)
    assert progress.training_fps(every, table) < progress.training_fps(twice, table) < progress.training_fps(dqn, table)
    assert progress.agent_work(resolve_config("qrdqn")) == progress.agent_work(resolve_config("dqn"))


def test_workers_at_once_share_the_measured_speed_of_two_trainings(tmp_path: Path) -> None:
    """Two trainings at once train 1.2x one alone (the bench's lever row), so each of 2 workers
    trains at 0.6x; a third worker shares the same total. Unmeasured: 1/workers each."""
    config = resolve_config("ppo", {"env": {"backend": "envpool"}})
    table = tmp_path / "results" / "throughput.csv"
    _throughput(tmp_path, parallel=1.2)
    assert progress.shared_fps(config, 1, table) == pytest.approx(1000.0)
    assert progress.shared_fps(config, 2, table) == pytest.approx(600.0)
    assert progress.shared_fps(config, 3, table) == pytest.approx(400.0)
    assert "each at 0.60x one training alone" in progress.sharing_text(2, table)
    _throughput(tmp_path)
    assert progress.shared_fps(config, 2, table) == pytest.approx(500.0)


def test_the_machine_is_named_by_its_cpu_model(tmp_path: Path) -> None:
    """Intel and AMD machines of one kind differ by about 20%: a figure names the CPU model."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9R14\n")
    assert cpu_model(cpuinfo).startswith("AMD EPYC 9R14, ")
    assert cpu_model(tmp_path / "missing") == (platform.processor() or platform.machine())


def test_compare_prices_its_runs_at_the_workers_summed_speed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs left on 2 workers train at 2 x 0.6 = 1.2x one alone (1,200 frames/s here); a
    lone run left trains alone, at 1,000, whatever --workers says."""
    from cr_bench.runner import compare

    config = resolve_config("ppo", {"env": {"backend": "envpool"}, "frames": 60_000})
    _throughput(tmp_path, work=progress.agent_work(config), parallel=1.2)  # the table trained this config

    def job(seed: int) -> compare.Job:
        return compare.Job("ppo", seed, str(tmp_path / "runs" / f"seed-{seed}"), config, None)

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # the estimates read results/throughput.csv here
        compare._announce([job(0), job(1)], workers=2)
        assert "120,000 frames at 1,200 frames/s" in capsys.readouterr().out
        compare._announce([job(0)], workers=2)
        out = capsys.readouterr().out
        assert "60,000 frames at 1,000 frames/s" in out and "about 60 s" in out and "(1 worker)" in out


def test_compare_prices_an_agent_at_its_started_runs_measured_speed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bench prices dqn from ppo's row by its work per frame, a model: once a run of the
    agent has trained, its frames/s so far price what the agent still has to do, and say so.
    Its 2 runs left are not split evenly (40,000 and 60,000 frames): the longer one bounds it."""
    from cr_bench.agents.rundir import RunDir
    from cr_bench.runner import compare

    config = resolve_config("dqn", {"env": {"backend": "envpool"}, "frames": 60_000})
    _throughput(tmp_path, parallel=1.2)
    jobs = [compare.Job("dqn", seed, str(tmp_path / "runs" / f"seed-{seed}"), config, None) for seed in (0, 1)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        compare._announce(jobs, workers=2)
        assert "120,000 frames at" in capsys.readouterr().out  # from the table
        Path(jobs[0].run_dir).mkdir(parents=True)
        RunDir(Path(jobs[0].run_dir)).write_progress(20_000, 200.0, finished=False)  # 100 frames/s a worker
        compare._announce(jobs, workers=2)
        out = capsys.readouterr().out
        assert (
            "60,000 frames at 100 frames/s, its longest of 2 runs left, on one worker at its runs' "
            "100 frames/s so far, shared as they were then)"
        ) in out
        assert "about 10 min" in out  # not 100,000 frames at 2 workers' 200 frames/s (8 min)


def test_an_agent_with_one_run_left_trains_on_one_worker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A resumed suite with one run left per agent: a run cannot be split between workers, so
    each agent's time is its run's frames at one worker's speed, and the suite takes at least
    its longest run (it priced qrdqn's 607k frames at 2 workers: "about 61 min" for 2 hours)."""
    from cr_bench.agents.rundir import RunDir
    from cr_bench.runner import compare

    _throughput(tmp_path, parallel=1.2)
    jobs = []
    for name, frames in (("dqn", 100_000), ("qrdqn", 400_000)):
        config = resolve_config(name, {"env": {"backend": "envpool"}, "frames": 1_000_000})
        for seed in (0, 1):
            jobs.append(compare.Job(name, seed, str(tmp_path / name / f"seed-{seed}"), config, None))
            Path(jobs[-1].run_dir).mkdir(parents=True)
            left = frames if seed else 0  # seed 0 finished
            RunDir(Path(jobs[-1].run_dir)).write_progress(1_000_000 - left, (1_000_000 - left) / 100, not left)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        compare._announce(jobs, workers=2)
    out = capsys.readouterr().out
    assert "training qrdqn: about 67 min (400,000 frames at 100 frames/s, 1 worker(s)" in out, out
    assert "training dqn: about 17 min (100,000 frames at 100 frames/s, 1 worker(s)" in out, out
    assert "training in all: about 67 min" in out, out  # its longest run, not (17 + 67) / 2 min


def test_a_dqn_study_is_priced_from_its_replay_ratio(tmp_path: Path) -> None:
    """The space's costliest dqn config learns most per frame: one step per vec step of 2 envs
    (train_freq 1), 4 gradient steps of 128 samples, at repeat 2 on 96 pixels: 1 + 4 x 128 x 4
    / 2 forwards a step, 512.5 a frame."""
    from cr_bench.runner.tuning import space_speeds
    from cr_bench.spec.tune import TuneSettings

    _throughput(tmp_path)
    settings = TuneSettings(agent="dqn", n_jobs=1, results_dir=str(tmp_path / "results"), runs_dir=str(tmp_path))
    measured = progress.agent_work(resolve_config("ppo-v1"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # the estimates read results/throughput.csv here
        speeds = space_speeds(settings)
    assert speeds is not None
    mean, costliest = speeds
    assert costliest == pytest.approx(1000 / (0.5 + 0.5 * 512.5 / measured))
    assert costliest < mean
