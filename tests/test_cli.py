"""The cr-bench CLI end to end on the real CarRacing-v3 with tiny budgets."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import yaml

from cr_bench.results.throughput import machine_text
from tests.conftest import ONE_ENV, TINY, listing, run_cli, untrained_run


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_train_writes_a_complete_run_directory(trained_run: str) -> None:
    """model, resolved config, versions, command, TensorBoard logs, curve and progress."""
    run = Path(trained_run)
    assert (run / "model.zip").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["agent"] == "ppo-v1" and config["frames"] == 800 and config["algo"]["n_steps"] == 16
    versions = yaml.safe_load((run / "versions.yaml").read_text())
    assert "torch" in versions and versions["machines"] == [machine_text()]
    assert (run / "command.txt").read_text().startswith("cr-bench train ppo-beta --frames 800")
    assert list((run / "tb").rglob("events.out.tfevents.*"))
    progress = json.loads((run / "progress.json").read_text())
    # The budget is met within one vectorised step (8 frames, 1 env).
    assert progress["finished"] and 800 <= progress["frames_done"] < 808
    header = (run / "curve.csv").read_text().splitlines()[0]
    assert header == "frames,wall_seconds,true_return,shaped_return,episode_frames"


def test_eval_is_deterministic_on_held_out_tracks(trained_run: str) -> None:
    """eval writes one row per track seed and two evaluations agree exactly: the first in its
    two worker processes (the default), the second in this one (no worker start-ups to pay)."""
    code, out, err = run_cli(["eval", trained_run, "--episodes", "2", "--track-seed-start", "5000"])
    assert code == 0, err
    assert "IQM" in out and "mean ± std" in out and "median" in out
    first = _rows(Path(trained_run) / "eval" / "episodes.csv")
    assert [r["track_seed"] for r in first] == ["5000", "5001"]
    assert all(int(r["length"]) <= 1000 and int(r["steps"]) * 8 >= int(r["length"]) for r in first)
    code, _, err = run_cli(["eval", trained_run, "--episodes", "2", "--track-seed-start", "5000", "--n-envs", "1"])
    assert code == 0, err
    assert _rows(Path(trained_run) / "eval" / "episodes.csv") == first
    summary = yaml.safe_load((Path(trained_run) / "eval" / "summary.yaml").read_text())
    assert summary["episodes"] == 2
    assert summary["mean"] == pytest.approx(sum(float(r["return"]) for r in first) / 2, abs=1e-3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--track-seed-start", "0", "--episodes", "2"], "track seeds 0..1 overlap the training seeds 0..3"),
        (["--track-seed-start", "3", "--out", "new/eval"], "track seeds 3..12 overlap the training seeds 0..3"),
        (["--track-seed-start", "2", "--episodes", "1"], "track seed 2 overlaps the training seeds 0..3"),
        (
            ["--track-seed-start", "2000000"],
            "track seeds 2,000,000..2,000,009 reach the validation tracks (2,000,000+), kept for choices "
            "(tune, a suite's curve); a test figure plays the test tracks, 1,000,000 to 1,999,999",
        ),
        (["--track-seed-start", "1999999", "--episodes", "2", "--out", "new/eval"], "reach the validation tracks"),
        # Held-out tracks, but no model: refused before the output folder is made, too.
        ([], "no model.zip in"),
        (["--out", "new/eval"], "no model.zip in"),
    ],
)
def test_eval_plays_only_held_out_test_tracks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    """Issue 27: `eval RUN --track-seed-start S` scored a run on its own training tracks (S within
    seed .. seed + n_envs - 1) and on the validation tracks; refused in one line, leaving nothing."""
    monkeypatch.chdir(tmp_path)
    run = untrained_run(tmp_path / "run")
    before = listing(tmp_path)
    code, out, err = run_cli(["eval", str(run), *argv])
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in out + err
    assert listing(tmp_path) == before


def test_record_writes_a_gif(trained_run: str, tmp_path: Path) -> None:
    """record plays one episode and writes an animated GIF of it."""
    out = tmp_path / "lap.gif"
    code, stdout, err = run_cli(["record", trained_run, "--out", str(out), "--every", "8"])
    assert code == 0, err
    frames = imageio.mimread(out)
    assert len(frames) >= 1000 // 8 and frames[0].shape[:2] == (200, 300)
    assert "return" in stdout
    assert (tmp_path / "lap.gif.txt").read_text().startswith("cr-bench record")


@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_other_agents_train_and_evaluate(agent: str, tmp_path: Path) -> None:
    """Gaussian PPO and DQN train for a tiny budget, save, load and evaluate."""
    run = tmp_path / agent
    code, _, err = run_cli(["train", agent, "--frames", "400", "--out", str(run), *ONE_ENV, *TINY[agent]])
    assert code == 0, err
    code, _, err = run_cli(["eval", str(run), "--episodes", "1"])
    assert code == 0, err
    assert len(_rows(run / "eval" / "episodes.csv")) == 1


def test_a_training_writing_to_a_file_reports_each_checkpoint(tmp_path: Path) -> None:
    """A background training (`nohup cr-bench train ... > log`, no terminal, so no bar) said
    nothing between its first line and its end: each scheduled checkpoint is a line instead.
    Before any episode has ended the line says so, without numpy's warning about the mean of
    no returns (it reached the suite's log on every resume)."""
    argv = ["train", "ppo", "--frames", "400", "--out", str(tmp_path / "run"), *ONE_ENV, *TINY["ppo"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli([*argv, "--set", "checkpoint_every_frames=100"])  # an episode is 200
    assert code == 0, err
    lines = [line for line in out.splitlines() if " of 400 frames" in line]
    assert len(lines) == 4 and lines[0].startswith("checkpoint: 1") and "frames/s" in lines[0], out
    assert lines[0].endswith("no episode ended yet") and lines[-1].endswith("over the last 2 episodes"), lines
    assert not [w for w in caught if "empty slice" in str(w.message)], [str(w.message) for w in caught]


COMMANDS = ["train", "eval", "verify", "record", "play", "tune", "compare", "publish", "report", "bench"]


def test_cr_bench_help_lists_every_command() -> None:
    code, out, err = run_cli(["--help"])
    assert code == 0, err
    assert "{" + ",".join(COMMANDS) + "}" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    """Issue 27: `verify --help` crashed on the `%` of "95% CI" (argparse formats help with %)."""
    code, out, err = run_cli([command, "--help"])
    assert code == 0, err
    assert out.startswith(f"usage: cr-bench {command}") and "Traceback" not in out + err


def test_help_shows_a_percent_sign_as_written() -> None:
    code, out, _ = run_cli(["verify", "--help"])
    assert code == 0 and "published mean's 95% CI" in " ".join(out.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "a2c", "--frames", "100"], "unknown agent 'a2c'"),
        (["train", "ppo", "--frames", "0"], "--frames: the budget must be between 1 and 10,000,000,000"),
        (["train", "ppo", "--frames", "-5"], "--frames: the budget must be between 1 and 10,000,000,000"),
        (["train", "ppo", "--n-envs", "0"], "--n-envs: must be >= 1, got 0"),
        (["train", "ppo", "--n-envs", "-5"], "--n-envs: must be >= 1, got -5"),
        (["compare", "run", "--name", "../x"], "--name: must be a plain folder name"),
        (["tune", "ppo", "--study-name", "../x"], "study_name must be a plain folder name"),
        (["train", "ppo", "--frames", "lots"], "expected an integer"),
        (["train", "ppo", "--seed", "-1"], "--seed: must be >= 0"),
        (["train", "ppo", "--seed", "1.5"], "--seed: expected an integer"),
        (["train", "ppo", "--config", "missing.yaml"], "config file not found"),
        (["train", "ppo", "--set", "algo.gama=0.9"], "algo: unknown key(s) for PPO: gama"),
        (["train", "ppo", "--set", "nonsense"], "expected KEY=VALUE"),
        (["eval", "no/such/run"], "run directory not found"),
        (["record", "no/such/run", "--out", "x.gif"], "run directory not found"),
        (["train", "ppo", "--resume"], "--resume needs --out"),
        (["train", "ppo", "--resume", "--out", "x", "--seed", "3"], "only --frames may change, not --seed"),
        (["train", "ppo", "--frames", "1e400"], "expected an integer"),
        (["train", "ppo", "--set", "checkpoint_every_frames=0"], "checkpoint_every_frames must be >= 1"),
        (["train", "ppo", "--set", "rollout_threads=-1"], "rollout_threads must be >= 0"),
        (["train", "dqn", "--set", "rollout_threads=1"], "rollout_threads applies to on-policy agents"),
        (["train", "ppo", "--set", "checkpoint_every_seconds=0"], "checkpoint_every_seconds must be > 0"),
        (["train", "ppo", "--set", "env.obs_size=4"], "env.obs_size must be >= 8"),
        (
            ["train", "ppo", "--set", "env.backend=gymnasium", "--set", "env.id=NoSuchEnv-v0"],
            "env.id: no gymnasium environment 'NoSuchEnv-v0' is registered",
        ),
    ],
)
def test_bad_input_is_one_line_and_non_zero(argv: list[str], message: str) -> None:
    """Each bad input exits non-zero with one line naming the problem."""
    code, out, err = run_cli(argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err + out


@pytest.mark.parametrize(
    ("text", "message"),
    [("env: {frame_stack: [", "malformed YAML"), ("env: {frame_stak: 2}", "unknown key(s) frame_stak")],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, _, err = run_cli(["train", "ppo", "--config", str(path), "--out", str(tmp_path / "run")])
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_missing_model_and_existing_run(trained_run: str, tmp_path: Path) -> None:
    """A run directory without model.zip and training over an existing run are refused."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text((Path(trained_run) / "config.yaml").read_text())
    code, _, err = run_cli(["eval", str(broken)])
    assert code == 2 and "no model.zip" in err
    code, _, err = run_cli(["train", "ppo-beta", "--frames", "100", "--out", trained_run])
    assert code == 2 and "already holds a run" in err
    code, _, err = run_cli(["train", "ppo-beta", "--out", trained_run, "--resume"])
    assert code == 2 and "already has" in err
    code, _, err = run_cli(["train", "ppo-gaussian", "--out", trained_run, "--resume"])
    assert code == 2 and "holds a ppo-v1 run, not ppo-gaussian" in err


def test_sigterm_saves_like_ctrl_c(tmp_path: Path) -> None:
    """SIGTERM (a job scheduler, or `kill` of a background run, where SIGINT is ignored) saves and exits 130."""
    run = tmp_path / "terminated"
    argv = ["train", "ppo-beta", "--frames", "1000000", "--out", str(run), *ONE_ENV, *TINY["ppo-beta"]]
    process = subprocess.Popen(
        [sys.executable, "-m", "cr_bench.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (run / "curve.csv").is_file() or len(_rows(run / "curve.csv")) < 1:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.5)
    process.terminate()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert (run / "model.zip").is_file() and json.loads((run / "progress.json").read_text())["frames_done"] > 0


def test_ctrl_c_saves_and_resume_continues(tmp_path: Path) -> None:
    """SIGINT to the whole process group (as Ctrl-C) saves a checkpoint; --resume finishes the run."""
    run = tmp_path / "interrupted"
    argv = ["train", "ppo-beta", "--frames", "1000000", "--out", str(run), "--n-envs", "2", *TINY["ppo-beta"]]
    process = subprocess.Popen(
        [sys.executable, "-m", "cr_bench.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "curve.csv").is_file() or len(_rows(run / "curve.csv")) < 1:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    progress = json.loads((run / "progress.json").read_text())
    assert not progress["finished"] and progress["frames_done"] > 0
    episodes_before = len(_rows(run / "curve.csv"))

    target = progress["frames_done"] + 300
    code, _, err = run_cli(["train", "ppo-beta", "--out", str(run), "--resume", "--frames", str(target)])
    assert code == 0, err
    resumed = json.loads((run / "progress.json").read_text())
    assert resumed["finished"] and target <= resumed["frames_done"] < target + 16
    assert len(_rows(run / "curve.csv")) >= episodes_before
    assert (run / "command.txt").read_text().count("\n") == 2


def test_reward_normalization_is_saved_and_resumed(tmp_path: Path) -> None:
    """ppo-beta normalizes rewards; the statistics are checkpointed and a resumed run continues them."""
    run = tmp_path / "normalized"
    argv = ["train", "ppo-beta", "--out", str(run), *ONE_ENV, *TINY["ppo-beta"]]
    assert run_cli([*argv, "--frames", "400"])[0] == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["normalize_reward"] is True

    def updates() -> float:
        with np.load(run / "reward_normalization.npz", allow_pickle=False) as saved:  # data, not a pickle
            return float(saved["count"])

    def frames() -> int:
        return int(json.loads((run / "progress.json").read_text())["frames_done"])

    first, frames_first = updates(), frames()
    assert first >= 400 // 8  # one update per agent step of 8 frames at most
    code, _, err = run_cli(["train", "ppo-beta", "--out", str(run), "--resume", "--frames", "800"])
    assert code == 0, err
    # Continued from the saved statistics: the second segment's steps add to the first's.
    assert updates() >= first + (frames() - frames_first) // 8


def test_device_auto_picks_cuda_only_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` is SB3's rule; asking for cuda without one is a one-line error."""
    import torch

    from cr_bench.agents.models import resolve_device
    from cr_bench.errors import CrBenchError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(CrBenchError, match="no CUDA device"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


def test_a_run_configured_for_cuda_evaluates_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run trained with device cuda (here: its config says so) loads and evaluates on a CPU-only
    machine with the default --device auto; training it there with cuda is refused in one line."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "ppo", "--frames", "64", "--out", str(run), *ONE_ENV, *TINY["ppo"]])
    assert code == 0, err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["device"] == "auto"
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "device": "cuda"}))
    code, out, err = run_cli(["eval", str(run), "--episodes", "1"])
    assert code == 0, err
    assert "IQM" in out
    code, _, err = run_cli(
        ["train", "ppo", "--device", "cuda", "--frames", "64", "--out", str(tmp_path / "gpu"), *ONE_ENV]
    )
    assert code == 2 and err.count("\n") == 1 and "no CUDA device" in err


def test_a_resume_without_its_replay_buffer_is_recorded_in_the_run(tmp_path: Path) -> None:
    """The replay buffer (gigabytes) does not travel between machines: a dqn run resumed
    without it refills it before learning again, and the run says at which frames, so a table
    can say which runs did (carried across sessions)."""
    from cr_bench.agents.rundir import RunDir
    from cr_bench.runner.carry import CARRIED

    run = tmp_path / "dqn"
    code, _, err = run_cli(["train", "dqn", "--frames", "200", "--out", str(run), *ONE_ENV, *TINY["dqn"]])
    assert code == 0, err
    assert RunDir(run).refill_frames() == []
    done = json.loads((run / "progress.json").read_text())["frames_done"]
    code, _, err = run_cli(["train", "dqn", "--out", str(run), "--resume", "--frames", str(done + 200)])
    assert code == 0, err
    assert "refilling" in err
    assert RunDir(run).refill_frames() == [done]
    RunDir(run).record_refill(done)  # a resume killed before its next checkpoint refills there again
    assert RunDir(run).refill_frames() == [done]
    assert RunDir(run).refills.name in CARRIED


def test_a_second_refill_waits_the_recipes_learning_starts_again(tmp_path: Path) -> None:
    """Each refill waits the recipe's ``learning_starts`` transitions: a run carried across two
    machines must not add the first refill's (saved in the model) to the second, which left a
    dqn run that never learned again."""
    run = tmp_path / "dqn"
    code, _, err = run_cli(["train", "dqn", "--frames", "200", "--out", str(run), *ONE_ENV, *TINY["dqn"]])
    assert code == 0, err
    for frames in (400, 800):  # resumed twice without the buffer (deleted: another machine)
        code, _, err = run_cli(["train", "dqn", "--out", str(run), "--resume", "--frames", str(frames)])
        assert code == 0 and "refilling" in err, err
        before = _model_data(run)
    code, _, err = run_cli(["train", "dqn", "--out", str(run), "--resume", "--frames", "1200"])
    assert code == 0 and "refilling" in err, err
    after = _model_data(run)
    assert after["learning_starts"] == before["num_timesteps"] + 50  # the recipe's, from where it resumed
    assert after["_n_updates"] > before["_n_updates"]  # and it learned again


def _model_data(run: Path) -> dict:
    """The attributes SB3 saved with the run's model (the zip's ``data`` JSON)."""
    import zipfile

    with zipfile.ZipFile(run / "model.zip") as archive:
        return json.loads(archive.read("data"))
