"""The executor's order: a task's follow-ups (compare's evaluation of a run just trained) start
before the tasks not yet started, so a suite stopped part-way has evaluated what it trained."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cr_bench.runner.executor import run_tasks
from cr_bench.runner.task import Task


def note_start(log: str, label: str, seconds: float) -> str:
    """A task: append ``label`` to ``log`` as it starts, then take ``seconds``."""
    with open(log, "a") as handle:
        handle.write(label + "\n")
    time.sleep(seconds)
    return label


def run_ordered(log: Path, executor: str = "local", workers: int = 1) -> list[str]:
    """Tasks a (short, with follow-ups a1 and a2), b (long), c and d; the order they started."""
    tasks = [Task(note_start, (str(log), label, seconds), label) for label, seconds in
             (("a", 0.2), ("b", 3.0), ("c", 0.1), ("d", 0.1))]  # fmt: skip

    def on_result(task: Task, value: Any) -> Sequence[Task]:
        if value != "a":
            return []
        return [Task(note_start, (str(log), label, 0.1), label) for label in ("a1", "a2")]

    run_tasks(tasks, on_result, executor, workers)
    return log.read_text().split()


@pytest.mark.parametrize("workers", [1, 2])
def test_follow_ups_start_before_the_tasks_not_yet_started(tmp_path: Path, workers: int) -> None:
    order = run_ordered(tmp_path / "log", workers=workers)
    assert sorted(order) == ["a", "a1", "a2", "b", "c", "d"]
    # b holds the other worker: the slot a frees goes to its follow-ups, in their order, then c, then d.
    assert order.index("a") < order.index("a1") < order.index("a2") < order.index("c") < order.index("d")
