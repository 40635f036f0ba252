"""A unit of work for :mod:`cr_bench.runner.executor`, whichever executor runs it, and the
rules every executor keeps (how long stopped workers get, how often Ray retries)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

STOP_WAIT = 60.0
"""Seconds the driver waits for stopped workers to save their work."""
RAY_RETRIES = 3
"""Times Ray runs a task again after its worker or node died."""


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args)``, or ``fn(folder, *args)`` for a task with a folder."""

    fn: Callable[..., Any]
    """A module-level function (tasks are pickled to their worker)."""
    args: tuple[Any, ...] = ()
    label: str = ""
    """What the task does, for messages (e.g. ``ppo seed 0: train``)."""
    cpus: int = 1
    """CPUs the task asks of a Ray node (capped at the largest node's)."""
    gpu: bool = False
    """Whether the task asks for a GPU (refused on a cluster without one)."""
    folder: str | None = None
    """The folder the task works in (passed as ``fn``'s first argument)."""
    ships: tuple[str, ...] | None = None
    """The files of ``folder`` a Ray task receives (None: all of it, if it exists)."""
    returns_folder: bool = False
    """Whether the driver takes the task's folder back from Ray when it ends."""

    def call(self, folder: str | None = None) -> Any:
        """Run the task (in ``folder`` instead of its own, on a Ray node)."""
        if self.folder is None:
            return self.fn(*self.args)
        return self.fn(folder or self.folder, *self.args)


OnResult = Callable[[Task, Any], Sequence[Task]]
"""The driver's handler of a finished task's value; it returns follow-up tasks (maybe none)."""
