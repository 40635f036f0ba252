"""The run directory: where every command finds a run's config, model, progress and curve.

``cr-bench train`` writes one; ``eval``, ``compare``, ``publish``, ``record`` and ``verify``
read it (a published model folder is one too, marked by :data:`PUBLISHED_MARKER`)::

    config.yaml      the fully resolved RunConfig
    versions.yaml    library versions
    command.txt      the command line(s) that produced it
    model.zip        the latest model (final, checkpoint or interrupted)
    reward_normalization.npz  reward-normalization statistics, when rewards are normalised
    replay_buffer.npz         off-policy agents' replay buffer, to resume
                     (both data, not pickles: :mod:`cr_bench.agents.run_state`)
    checkpoints/     frames-<N>.zip and .json (frames, wall seconds) at each scheduled
                     checkpoint, when keep_checkpoints is set
    train.lock       while a process trains the run: its pid and host (see training_lock)
    progress.json    frames done, wall seconds, finished flag
    replay_refills.json  frames at which an off-policy run resumed without its replay buffer
                     (it does not travel between machines) and refilled it
    curve.csv        one row per training episode (:data:`CURVE_COLUMNS`)
    eval/            evaluations (episodes.csv, summary.yaml; compare's cached episodes)
    tb/              TensorBoard logs
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from stable_baselines3.common.base_class import BaseAlgorithm

from cr_bench.agents.registry import saved_run_config
from cr_bench.agents.run_state import legacy, save_reward_stats
from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_path, atomic_write_text, is_temporary
from cr_bench.spec.loader import from_dict, read_yaml
from cr_bench.spec.run import RunConfig

PUBLISHED_MARKER = "published.yaml"
"""Written by ``cr-bench publish``: the folder holds a published model, not a run to continue."""
CURVE_COLUMNS = ["frames", "wall_seconds", "true_return", "shaped_return", "episode_frames"]
"""curve.csv: env frames and wall seconds at the episode's end, its raw and shaped return, its frames."""


class RunDir:
    """Paths and small files of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    versions = property(lambda self: self.path / "versions.yaml")
    model = property(lambda self: self.path / "model.zip")
    replay_buffer = property(lambda self: self.path / "replay_buffer.npz")
    refills = property(lambda self: self.path / "replay_refills.json")
    progress = property(lambda self: self.path / "progress.json")
    curve = property(lambda self: self.path / "curve.csv")
    tensorboard = property(lambda self: self.path / "tb")
    eval_dir = property(lambda self: self.path / "eval")
    checkpoints = property(lambda self: self.path / "checkpoints")
    reward_stats = property(lambda self: self.path / "reward_normalization.npz")
    lock = property(lambda self: self.path / "train.lock")

    def holds_other_files(self) -> bool:
        """Whether the folder holds files but no cr-bench run: neither config.yaml nor
        progress.json, and more than a run killed in its first seconds leaves (its
        ``train.lock``, a temporary file of :func:`~cr_bench.io.atomic_path`)."""
        if not self.path.is_dir() or self.config.exists() or self.progress.exists():
            return False
        return any(item != self.lock and not is_temporary(item) for item in self.path.iterdir())

    def read_config(self) -> RunConfig:
        if not self.path.is_dir():
            raise CrBenchError(f"run directory not found: {self.path}")
        if not self.config.is_file():
            raise CrBenchError(f"not a cr-bench run directory (no config.yaml): {self.path}")
        return from_dict(RunConfig, saved_run_config(read_yaml(self.config)), str(self.config))

    def machines(self) -> list[str]:
        """The machines the run trained on (``versions.yaml``; empty: recorded before cr-bench did)."""
        if not self.versions.is_file():
            return []
        return [str(m) for m in read_yaml(self.versions).get("machines") or []]

    def read_progress(self) -> dict[str, Any]:
        if not self.progress.is_file():
            return {"frames_done": 0, "wall_seconds": 0.0, "finished": False}
        return dict(json.loads(self.progress.read_text()))

    def refill_frames(self) -> list[int]:
        """The frames at which this run resumed without its replay buffer and refilled it."""
        return [int(frames) for frames in json.loads(self.refills.read_text())] if self.refills.is_file() else []

    def record_refill(self, frames: int) -> None:
        """Add ``frames`` to the refills, once (a resume killed before its next checkpoint refills there again)."""
        done = self.refill_frames()
        if done[-1:] != [int(frames)]:
            atomic_write_text(self.refills, json.dumps([*done, int(frames)]))

    def measured_fps(self) -> float | None:
        """The frames/s this run has trained at so far (``progress.json``, its resumes included),
        under whatever shared the machine then; ``None`` before its first checkpoint."""
        done = self.read_progress()
        frames, seconds = int(done["frames_done"]), float(done["wall_seconds"])
        return frames / seconds if frames > 0 and seconds > 0 else None

    def write_progress(self, frames_done: int, wall_seconds: float, finished: bool) -> None:
        atomic_write_text(
            self.progress,
            json.dumps({"frames_done": frames_done, "wall_seconds": round(wall_seconds, 3), "finished": finished}),
        )

    def save_model(self, model: BaseAlgorithm) -> None:
        """Save atomically: a crash mid-save leaves the previous model.zip intact."""
        with atomic_path(self.model) as model_tmp:
            model.save(model_tmp)
            normalizer = model.get_vec_normalize_env()
            if normalizer is not None:  # in place before the model that needs it
                save_reward_stats(normalizer, self.reward_stats)
                legacy(self.reward_stats).unlink(missing_ok=True)

    def checkpoint(self, model: BaseAlgorithm, wall_seconds: float, finished: bool) -> None:
        """Save the model (with its reward statistics), then the progress that goes with it."""
        self.save_model(model)
        self.write_progress(int(model.frames_done), wall_seconds, finished)  # type: ignore[attr-defined]

    def keep_checkpoint(self, frames_done: int, wall_seconds: float) -> Path:
        """Copy model.zip to checkpoints/frames-<N>.zip, with its frames and wall time beside it."""
        self.checkpoints.mkdir(exist_ok=True)
        target = self.checkpoints / f"frames-{frames_done:09d}.zip"
        shutil.copyfile(self.model, target)
        atomic_write_text(
            target.with_suffix(".json"),
            json.dumps({"frames_done": frames_done, "wall_seconds": round(wall_seconds, 3)}),
        )
        return target

    def list_checkpoints(self) -> list[dict[str, Any]]:
        """Kept checkpoints in frame order: ``{"path", "frames_done", "wall_seconds"}``."""
        kept = []
        for meta in sorted(self.checkpoints.glob("frames-*.json")):
            if meta.with_suffix(".zip").is_file():
                kept.append({"path": meta.with_suffix(".zip"), **json.loads(meta.read_text())})
        return kept

    def trim_curve(self, frames_done: int) -> None:
        """Drop the episodes recorded after ``frames_done``: their training was lost with its
        model (a hard kill after the last checkpoint), and a resume plays those frames again.
        A row cut short by the kill goes too."""
        if not self.curve.is_file():
            return
        with self.curve.open(newline="") as handle:
            rows = list(csv.reader(handle))
        complete = [row for row in rows[1:] if len(row) == len(CURVE_COLUMNS) and row[0].isdigit()]
        kept = rows[:1] + [row for row in complete if int(row[0]) <= frames_done]
        if len(kept) < len(rows):
            with atomic_path(self.curve) as tmp, tmp.open("w", newline="") as handle:
                csv.writer(handle).writerows(kept)

    def discard_unsaved_training(self) -> None:
        """Remove what a training stopped before its first checkpoint wrote: with no model
        there is nothing to continue, and a restart must not append to its curve or logs."""
        for path in (self.config, self.versions, self.path / "command.txt", self.progress,
                     self.curve, self.reward_stats, self.replay_buffer,
                     legacy(self.reward_stats), legacy(self.replay_buffer)):  # fmt: skip
            path.unlink(missing_ok=True)
        shutil.rmtree(self.tensorboard, ignore_errors=True)

    def require_model(self) -> Path:
        if not self.model.is_file():
            raise CrBenchError(f"no model.zip in {self.path}")
        return self.model


@contextlib.contextmanager
def training_lock(run: RunDir) -> Iterator[None]:
    """Own ``run`` while training it, so that a second process is refused instead of training
    a second copy into the same folder.

    The lock is an ``fcntl.flock`` on ``train.lock``, which names the holder (pid and host).
    The kernel releases a flock when its holder dies, even by kill -9, so a dead holder never
    blocks the rerun that resumes its run.

    :raises CrBenchError: if a live process trains the run.
    """
    handle = _lock_file(run.lock)
    try:
        yield
    finally:
        run.lock.unlink(missing_ok=True)  # while still held: the next owner locks a new file
        handle.close()


def _lock_file(path: Path) -> IO[str]:
    """Open and flock ``path``, write our pid and host in it, and return the open file."""
    while True:
        try:
            handle = path.open("a+")
        except OSError as error:  # a read-only folder, say
            raise CrBenchError(f"cannot write {path}: {error.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise CrBenchError(f"{path.parent} is being trained by {holder}; wait for it, or stop it first") from None
        except OSError as error:  # a file system without locks
            handle.close()
            raise CrBenchError(f"cannot lock {path}: {error.strerror}") from None
        if _same_file(path, handle):
            break
        handle.close()  # the holder removed the file between our open and our lock: lock the new one
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def _same_file(path: Path, handle: IO[str]) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False
