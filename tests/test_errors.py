"""Bad input and broken files: one ``cr-bench: error:`` line and exit 2, never a traceback.

Each case reproduces a traceback a careful user hit (issue 10) before it was fixed.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import cr_bench.agents.training
from cr_bench.agents.algorithms import FrameDQN
from cr_bench.agents.rundir import RunDir
from tests.conftest import ONE_ENV, TINY, listing, run_cli, untrained_run

MODELS = Path(__file__).parent.parent / "results" / "models"


def assert_one_line_error(result: tuple[int, str, str], message: str) -> None:
    code, out, err = result
    assert code == 2, err
    assert err.startswith("cr-bench") and ": error: " in err and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in out + err


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused input must never reach training (a 1e99-frame budget would train for ever)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("this input should have been refused before training")

    monkeypatch.setattr(cr_bench.agents.training, "train", refuse)
    monkeypatch.setattr(cr_bench.agents.training, "resume", refuse)


@pytest.fixture
def run_copy(trained_run: str, tmp_path: Path) -> Path:
    """A private copy of the shared tiny ppo-beta run (800 frames, finished)."""
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("tb", "checkpoints", "eval"))
    return copy


def test_binary_config_file(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(bytes(range(256)))
    assert_one_line_error(run_cli(["train", "ppo", "--config", str(path)]), "not UTF-8 text")


def test_train_out_under_a_regular_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    argv = ["train", "ppo-beta", "--frames", "100", "--out", str(afile / "run"), *ONE_ENV, *TINY["ppo-beta"]]
    assert_one_line_error(run_cli(argv), f"cannot write to {afile / 'run'}: Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_train_out_in_a_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    argv = ["train", "ppo-beta", "--frames", "100", "--out", str(locked / "run"), *ONE_ENV, *TINY["ppo-beta"]]
    try:
        assert_one_line_error(run_cli(argv), "Permission denied")
    finally:
        locked.chmod(0o755)


def test_train_out_on_a_read_only_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the OS answers on a read-only mount (EROFS), simulated: root ignores chmod."""

    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    argv = ["train", "ppo-beta", "--frames", "100", "--out", str(tmp_path / "run"), *ONE_ENV, *TINY["ppo-beta"]]
    assert_one_line_error(run_cli(argv), "Read-only file system")
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_record_out_under_a_regular_file(run_copy: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    argv = ["record", str(run_copy), "--out", str(afile / "x.gif")]
    assert_one_line_error(run_cli(argv), f"cannot write to {afile}")


def _resume(run: Path) -> list[str]:
    return ["train", RunDir(run).read_config().agent, "--out", str(run), "--resume", "--frames", "5000"]


@pytest.mark.parametrize("damage", ["truncated", "empty"])
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_broken_model_file(run_copy: Path, damage: str, command: str) -> None:
    model = run_copy / "model.zip"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    argv = ["eval", str(run_copy)] if command == "eval" else _resume(run_copy)
    assert_one_line_error(run_cli(argv), f"{model} is not a saved model")


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_dqn_model_in_a_ppo_beta_run(run_copy: Path, command: str) -> None:
    """Was: TypeError about use_sde from deep inside SB3."""
    shutil.copyfile(MODELS / "dqn" / "model.zip", run_copy / "model.zip")
    argv = ["eval", str(run_copy)] if command == "eval" else _resume(run_copy)
    agent = RunDir(run_copy).read_config().agent
    assert_one_line_error(run_cli(argv), f"was saved by agent dqn, not {agent}")


def test_ppo_beta_model_in_a_dqn_run(trained_run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: DQN.load allocating a 34 GiB replay buffer for ppo-beta's observations; refused before any load."""

    def no_load(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the mismatch must be caught before SB3 loads the model")

    monkeypatch.setattr(FrameDQN, "load", no_load)
    run = tmp_path / "dqn"
    shutil.copytree(MODELS / "dqn", run, ignore=shutil.ignore_patterns("eval", "published.yaml", "*.png"))
    shutil.copyfile(Path(trained_run) / "model.zip", run / "model.zip")
    assert RunDir(trained_run).read_config().agent == "ppo-v1"  # ppo's model: the message names both
    assert_one_line_error(run_cli(["eval", str(run)]), "was saved by agent ppo or ppo-v1, not dqn")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "ppo", "--frames", "1e99"],
        ["train", "ppo", "--frames", "10000000001"],
        ["train", "ppo", "--set", "frames=1e11"],
        ["train", "ppo", "--out", "x", "--resume", "--frames", "1e99"],
    ],
)
def test_frame_budgets_have_a_ceiling(argv: list[str], no_training: None) -> None:
    assert_one_line_error(run_cli(argv), "10,000,000,000")


def test_frame_budget_ceiling_holds_for_config_files(tmp_path: Path, no_training: None) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("frames: 1e99\n")
    assert_one_line_error(run_cli(["train", "ppo", "--config", str(path)]), "10,000,000,000")


@pytest.mark.parametrize(("flag", "value"), [("--seed", "0"), ("--seed", "5"), ("--set", "seed=0")])
def test_resume_refuses_every_given_value(run_copy: Path, flag: str, value: str, no_training: None) -> None:
    """Was: --seed 0 silently ignored (a truthiness check) while --seed 1 was refused."""
    argv = [*_resume(run_copy), flag, value]
    assert_one_line_error(run_cli(argv), f"only --frames may change, not {flag}")


def test_other_unwritable_outputs_are_one_line_too(tmp_path: Path) -> None:
    """An output without its own up-front check (report's --results-dir) still fails in one line."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    assert_one_line_error(run_cli(["report", "--results-dir", str(afile / "results")]), "Not a directory")


# -- Issue 27 ----------------------------------------------------------------------------------
def test_train_out_into_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    """Was: accepted, and the training appended to the folder's files."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "command.txt").write_text("mine\n")
    (folder / "thesis.tex").write_text("\\section{CarRacing}\n")
    argv = ["train", "ppo", "--frames", "100", "--out", str(folder), *ONE_ENV, *TINY["ppo"]]
    assert_one_line_error(run_cli(argv), f"{folder} holds files and is not a cr-bench run")
    assert sorted(p.name for p in folder.iterdir()) == ["command.txt", "thesis.tex"]
    assert (folder / "command.txt").read_text() == "mine\n"


@pytest.mark.parametrize("leftover", [[], ["train.lock"], ["train.lock", ".config.0123456789abcdef.tmp.yaml"]])
def test_train_out_into_an_empty_folder_or_a_killed_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leftover: list[str]
) -> None:
    """An empty folder, or what a kill -9 in a run's first seconds leaves (its lock, a half-written
    config), is trained into."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name in leftover:
        (folder / name).write_text("")
    trained = []
    monkeypatch.setattr(cr_bench.agents.training, "_learn_afresh", lambda run, *args, **kwargs: trained.append(run))
    code, out, err = run_cli(["train", "ppo", "--frames", "100", "--out", str(folder), *ONE_ENV])
    assert code == 0, err
    assert [run.path for run in trained] == [folder] and f"run saved in {folder}" in out


@pytest.mark.parametrize(
    ("text", "flags", "message"),
    [
        ('frames: "lots"', ["--frames", "2000"], "frames: 'lots' is not a valid int"),
        ("frames: 0", ["--frames", "2000"], "frames must be between 1 and 10,000,000,000"),
        ("env: {obs_size: big}", ["--set", "env.obs_size=64"], "env.obs_size: 'big' is not a valid int"),
        ("seed: -1.5", ["--seed", "3"], "seed: -1.5 is not a valid int"),
    ],
)
def test_a_config_file_is_checked_before_flags_override_it(
    tmp_path: Path, no_training: None, text: str, flags: list[str], message: str
) -> None:
    """Was: a bad value in --config went unnoticed when a flag replaced it."""
    path = tmp_path / "config.yaml"
    path.write_text(text + "\n")
    result = run_cli(["train", "ppo", "--config", str(path), *flags, "--out", str(tmp_path / "run")])
    assert_one_line_error(result, str(path))
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["train", "ppo", "--device", "cuda", "--out", "new/run"], "no CUDA device", marks=NO_CUDA),
        (["eval", "{run}", "--out", "new/eval"], "model.zip is not a saved model"),
        (["record", "{run}", "--out", "new/lap.avi"], "--out must end in .gif or .mp4, got lap.avi"),
        (["record", "{run}", "--out", "new/lap.gif"], "model.zip is not a saved model"),
        (["publish", "{run}", "--name", "tiny", "--results-dir", "new/results"], "model.zip is not a saved model"),
        pytest.param(["compare", "{run}", "--device", "cuda", "--results-dir", "new"], "no CUDA device", marks=NO_CUDA),
    ],
)
def test_refused_commands_leave_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    """Issue 27: refused after they had made their output folders, these commands left them
    behind, empty (train, eval and record made theirs before checking the device, the model or
    the file name; publish made results/models before loading the model)."""
    monkeypatch.chdir(tmp_path)
    run = untrained_run(tmp_path / "run", model=b"")
    before = listing(tmp_path)
    assert_one_line_error(run_cli([arg.format(run=run) for arg in argv]), message)
    assert listing(tmp_path) == before


def test_publish_plays_only_held_out_test_tracks(tmp_path: Path) -> None:
    """Issue 27's one held-out rule in publish: a run whose config evaluates on its training seeds
    (a config.yaml edited by hand) is refused before anything is written."""
    run = untrained_run(tmp_path / "run", model=b"")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["eval"]["track_seed_start"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    before = listing(tmp_path)
    argv = ["publish", str(run), "--name", "tiny", "--results-dir", str(tmp_path / "results"), "--episodes", "3"]
    assert_one_line_error(run_cli(argv), f"publishing {run}: track seeds 2..4 overlap the training seeds 0..3")
    assert listing(tmp_path) == before
