"""The Ray side of :mod:`cr_bench.runner.executor` (``--executor ray``; the ``cluster`` extra).

Each :class:`~cr_bench.runner.executor.Task` is one Ray task. Nothing assumes a shared
filesystem: a task with a folder gets the driver's copy of it as an archive (or of the files
it ships), works in a temporary folder of its node and, if it returns its folder, sends it
back as an archive, which the driver swaps in whole. Only the driver writes, and only from
finished tasks, so a task retried after its worker died (Ray retries it) leaves no half
result and no duplicate. This module knows nothing of compare's or tune's jobs.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cr_bench import progress
from cr_bench.errors import CrBenchError
from cr_bench.runner.task import RAY_RETRIES, STOP_WAIT, OnResult, Task


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise CrBenchError("--executor ray needs Ray: pip install 'cr-bench[cluster]'") from None
    return ray


NO_CLUSTER = (
    "--executor ray needs a Ray cluster: start one (`ray start --head`, on the network you choose) and give "
    "--ray-address HOST:PORT or RAY_ADDRESS; cr-bench starts no Ray of its own, since Ray binds its services "
    "on every network interface (or use --workers: local processes, no server)"
)


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Connect to the cluster at ``address`` (None: ``RAY_ADDRESS``); disconnect at the end. An
    already connected driver (a test, a notebook) is reused.

    cr-bench never starts a Ray instance itself: the Ray it supports binds its GCS, raylet and
    workers on every interface, even with a node address of 127.0.0.1, so a local instance
    would be a service reachable from the network. Nothing listens unless the user starts it.

    :raises CrBenchError: without an address, or for one that cannot be reached.
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        source = "--ray-address" if address else "RAY_ADDRESS"
        address = address or os.environ.get("RAY_ADDRESS")
        if not address:
            raise CrBenchError(NO_CLUSTER)
        check_reachable(address, source=source)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise CrBenchError(f"cannot reach the Ray cluster at {address}: {error}".splitlines()[0]) from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def check_reachable(address: str | None, timeout: float = 5.0, source: str = "--ray-address") -> None:
    """Fail in seconds, in one line, where Ray would retry an unreachable address for minutes.

    ``HOST:PORT`` and ``ray://HOST:PORT`` are probed with a TCP connection; ``auto``,
    ``local`` and no address are Ray's to resolve.

    :raises CrBenchError: naming the address and why it cannot be reached.
    """
    if address is None or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise CrBenchError(f"{source} must be HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise CrBenchError(f"cannot reach the Ray cluster at {address}: {error}") from None


def pack(folder: Path) -> bytes:
    """A folder as gzipped tar bytes (what crosses between the driver and a task)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, folder: Path) -> None:
    """Replace ``folder`` with the archive's contents, atomically: a driver killed mid-way
    leaves the old folder or the new one (restored on the next call), never a mix."""
    old = folder.with_name(f".{folder.name}.old")
    if old.exists():  # a driver killed during an earlier swap
        if folder.exists():
            shutil.rmtree(old)
        else:
            old.rename(folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would carry over to the run folder
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(staging, filter="data")
            else:  # Python < 3.10.12: our own tasks' archives
                archive.extractall(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _cause(error: Exception) -> str:
    """The first line of what went wrong in a task (not Ray's wrapper around it)."""
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {cause}".splitlines()[0]


def _alive_resources(ray: Any) -> list[dict[str, float]]:
    """The resources of each alive node of the cluster."""
    return [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]


def node_capacity(ray: Any) -> tuple[int, int]:
    """CPUs and GPUs of the largest alive node: no task may ask for more."""
    nodes = _alive_resources(ray)
    cpus = max((int(resources.get("CPU", 0)) for resources in nodes), default=1)
    gpus = max((int(resources.get("GPU", 0)) for resources in nodes), default=0)
    return max(1, cpus), gpus


def cluster_cpus(ray: Any) -> int:
    """CPUs of all alive nodes together: how many a driver's tasks may ask for at once."""
    return max(1, sum(int(resources.get("CPU", 0)) for resources in _alive_resources(ray)))


def _gpus(task: Task, gpus: int) -> int:
    """1 for a task that asks for a GPU on a cluster with GPUs, else 0; without any GPU it is refused."""
    if not task.gpu:
        return 0
    if gpus == 0:
        raise CrBenchError("--device cuda: no node of the Ray cluster has a GPU; use --device cpu or auto")
    return 1


def _shipped(task: Task) -> bytes | None:
    """What a task receives of its folder: all of it, or the files it names (None: no folder yet)."""
    if task.folder is None or not Path(task.folder).is_dir():
        return None
    if task.ships is None:
        return pack(Path(task.folder))
    with tempfile.TemporaryDirectory() as tmp:
        light = Path(tmp) / "run"
        light.mkdir()
        for name in task.ships:
            shutil.copy2(Path(task.folder) / name, light / name)
        return pack(light)


def _remote_call(task: Task, archive: bytes | None) -> tuple[Any, bytes | None]:
    """On a Ray worker: run ``task`` (in a temporary copy of its folder); its value, and its
    folder if it returns it."""
    progress.quiet()  # the driver shows the progress
    if task.folder is None:
        return task.call(), None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        if archive is not None:
            unpack(archive, folder)
        value = task.call(str(folder))
        return value, pack(folder) if task.returns_folder else None


def run_on_ray(tasks: list[Task], on_result: OnResult, address: str | None, on_tick: Any = None) -> list[str]:
    """Run ``tasks`` and their follow-ups as Ray tasks (the rules of
    :mod:`cr_bench.runner.executor`); the labels of those that failed after Ray's retries.

    :raises CrBenchError: for a request no node of the cluster can meet (a GPU).
    """
    with ray_session(address) as ray:
        cpus, gpus = node_capacity(ray)
        total = cluster_cpus(ray)
        remote = ray.remote(max_retries=RAY_RETRIES)(_remote_call)
        pending: dict[Any, Task] = {}
        waiting = list(tasks)  # submitted only as the cluster has CPUs for them: Ray keeps no order
        failed: list[str] = []
        stopping = False

        def asked(task: Task) -> int:
            return min(cpus, task.cpus)

        def submit_what_fits() -> None:
            while waiting and (not pending or sum(map(asked, pending.values())) + asked(waiting[0]) <= total):
                task = waiting.pop(0)
                options = {"num_cpus": asked(task), "num_gpus": _gpus(task, gpus)}
                pending[remote.options(**options).remote(task, _shipped(task))] = task

        def finish(ref: Any) -> None:
            task = pending.pop(ref)
            try:
                value, folder = ray.get(ref)
            except ray.exceptions.RayError as error:
                failed.append(f"{task.label} ({_cause(error)})")
                return
            if folder is not None and task.folder is not None:
                Path(task.folder).parent.mkdir(parents=True, exist_ok=True)
                unpack(folder, Path(task.folder))
            follow_ups = on_result(task, value)
            if not stopping:
                waiting[:0] = follow_ups

        for task in tasks:
            _gpus(task, gpus)  # a GPU no node has is refused before any task runs
        try:
            submit_what_fits()
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in done:
                    finish(ref)
                submit_what_fits()
                if on_tick is not None:
                    on_tick()
        except KeyboardInterrupt:
            stopping = True
            for ref in pending:
                ray.cancel(ref)  # KeyboardInterrupt in the task: it stops as a local worker does
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=STOP_WAIT) if pending else ([], [])
            for ref in done:  # a value that came back is kept; a cancelled task counts for nothing
                finish(ref)
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return failed


def check_storage_reachable(storage: str, nodes: int, through_client: bool = False) -> None:
    """Refuse a storage the tuning workers cannot share: a local file (journal or SQLite) when
    they may run on another machine (several nodes, or a driver outside the cluster via Ray Client).

    >>> check_storage_reachable("postgresql://host/db", nodes=4)
    >>> check_storage_reachable("", nodes=1)
    """
    local_file = not storage or storage.startswith("sqlite:") or "://" not in storage
    if local_file and (nodes > 1 or through_client):
        where = storage or "the default journal file"
        cluster = "through Ray Client" if through_client else f"on a {nodes}-node cluster"
        raise CrBenchError(
            f"--executor ray {cluster}: workers on other machines cannot reach {where}; "
            "give --storage postgresql://USER@HOST/DB (a database every node reaches)"
        )


def absolute_sqlite(storage: str) -> str:
    """``sqlite:///relative.db`` made absolute: a task's working directory is not the driver's."""
    prefix = "sqlite:///"
    if storage.startswith(prefix) and not storage.startswith(prefix + "/"):
        return prefix + str(Path(storage.removeprefix(prefix)).resolve())
    return storage
