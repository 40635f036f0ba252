"""Run picklable tasks on worker processes here, or as tasks on a Ray cluster, under one set of
rules. ``compare`` and ``tune`` only build :class:`~cr_bench.runner.task.Task` lists and consume their results.

The rules, whichever executor runs the tasks:

- **Results.** A task's return value reaches the driver's ``on_result``, which may answer with
  follow-up tasks (compare evaluates a run once its training task is back). Only the driver
  writes results; a task that fails is named in one error at the end, after the other tasks
  have run.
- **Order.** Tasks start in the order given, but follow-ups go ahead of the tasks not yet
  started: a suite stopped part-way has evaluated the runs it trained, rather than queueing
  every evaluation behind every training.
- **Folders.** A task may work in a folder (a run): here it works in place; on Ray it gets a
  copy of the folder (or of the files it names), and when it returns its folder the driver
  swaps it in whole (:func:`cr_bench.runner.ray_executor.unpack`). No shared filesystem needed.
- **Ctrl-C, SIGTERM, kill -9.** Workers stop when the driver stops, however it stops: a local
  worker watches a lifeline (:mod:`cr_bench.lifeline`) and stops as on Ctrl-C (a
  training saves its run, a tuning worker requeues its trial); Ray tasks are asked to stop
  the same way. The driver waits up to :data:`~cr_bench.runner.task.STOP_WAIT` seconds for them, keeping every result
  that comes back, then ends what is left. A rerun of the same command continues.
- **Retries.** A Ray task whose worker or node dies runs again (:data:`~cr_bench.runner.task.RAY_RETRIES`); a local
  worker that dies is a failed task (the rerun resumes it).
- **Progress.** Workers show no bars (they would share the lines); ``on_tick`` runs about
  once a second on the driver, for its own bar.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from cr_bench import progress
from cr_bench.errors import CrBenchError
from cr_bench.lifeline import on_parent_exit
from cr_bench.runner.task import STOP_WAIT, OnResult, Task


def run_tasks(
    tasks: Sequence[Task],
    on_result: OnResult,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Run ``tasks`` and the follow-ups ``on_result`` gives, ``workers`` processes at a time
    (1: in this process, one after another) or as Ray tasks (``executor`` ``ray``).

    :raises CrBenchError: naming the tasks that failed (after the others ran).
    :raises KeyboardInterrupt: on Ctrl-C, once the workers have stopped.
    """
    if executor == "ray":
        from cr_bench.runner.ray_executor import run_on_ray

        failed = run_on_ray(list(tasks), on_result, ray_address, on_tick)
    elif workers == 1:
        failed = _run_here(list(tasks), on_result)
    else:
        failed = _run_in_processes(list(tasks), on_result, workers, on_tick)
    if failed:
        raise CrBenchError(f"{len(failed)} task(s) failed: {'; '.join(failed)}"[:2000])


def _run_here(tasks: list[Task], on_result: OnResult) -> list[str]:
    """One task after another in this process (progress bars shown)."""
    failed = []
    while tasks:
        task = tasks.pop(0)
        try:
            value = task.call()
        except CrBenchError as error:
            failed.append(f"{task.label}: {error}")
            continue
        tasks[:0] = on_result(task, value)
    return failed


def _run_in_processes(
    tasks: list[Task], on_result: OnResult, workers: int, on_tick: Callable[[], None] | None
) -> list[str]:
    """``workers`` worker processes at a time, each running one task and sending back its value."""
    context = multiprocessing.get_context("forkserver")
    driver_alive, lifeline = context.Pipe(duplex=False)
    running: dict[Any, tuple[Task, Any, Connection]] = {}  # sentinel -> (task, process, its results' end)
    values: dict[Any, tuple[Any, ...]] = {}  # sentinel -> (the value its task sent,), () if none
    failed: list[str] = []

    def receive(ready: list[Any]) -> None:
        """Read the values sent (before the processes end: a large value fills the pipe) and
        finish the processes that ended."""
        for sentinel, (_, _, results) in list(running.items()):
            if results in ready and sentinel not in values:
                try:
                    values[sentinel] = results.recv()
                except EOFError:
                    values[sentinel] = ()  # ended without a value
        for sentinel in [s for s in ready if s in running]:
            task, process, results = running.pop(sentinel)
            process.join()
            results.close()
            value = values.pop(sentinel, ())
            if process.exitcode == 0 and value:
                tasks[:0] = on_result(task, value[0])
            elif process.exitcode != 130:  # an interrupted task is resumed by the next run
                failed.append(f"{task.label} (exit code {process.exitcode})")

    def ready(timeout: float) -> list[Any]:
        handles = [h for sentinel, (_, _, results) in running.items() for h in (sentinel, results)]
        return list(wait(handles, timeout=timeout))

    try:
        while tasks or running:
            while tasks and len(running) < workers:
                task = tasks.pop(0)
                results, sent = context.Pipe(duplex=False)
                process = context.Process(target=_worker, args=(task, driver_alive, sent))
                process.start()
                sent.close()
                running[process.sentinel] = (task, process, results)
            receive(ready(1.0))
            if on_tick is not None:
                on_tick()
    except BaseException:
        lifeline.close()  # every worker stops as on Ctrl-C, saving its work
        deadline = time.monotonic() + STOP_WAIT
        while running and time.monotonic() < deadline:
            receive(ready(max(0.0, deadline - time.monotonic())))
        for _, process, _ in running.values():
            process.kill()
        raise
    finally:
        lifeline.close()
        driver_alive.close()
    return failed


def _worker(task: Task, driver_alive: Connection, results: Connection) -> None:
    """A worker process: run ``task`` and send its value; stop as on Ctrl-C when the driver
    stops (its lifeline) or on Ctrl-C itself."""
    signal.signal(signal.SIGINT, interrupt_once)
    on_parent_exit(driver_alive, lambda: os.kill(os.getpid(), signal.SIGINT))
    progress.quiet()
    try:
        value = task.call()
    except KeyboardInterrupt:
        sys.exit(130)
    except CrBenchError as error:
        print(f"  {task.label}: {error}", file=sys.stderr)
        sys.exit(2)
    results.send((value,))


def interrupt_once(signum: int, frame: Any) -> None:
    """SIGINT handler: the first raises KeyboardInterrupt; later ones (the terminal's, the
    driver's, the lifeline's) are ignored, so they cannot cut short the save it triggers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt
