"""Running comparisons and studies on a Ray cluster (``--executor ray``; the ``cluster`` extra).

Compare: each (agent, seed) training is one Ray task and each evaluation another. Nothing
assumes a shared filesystem: a training task gets the driver's copy of its run (to resume
it) as an archive, trains in a temporary folder of its node and returns the whole run as an
archive, which the driver unpacks into ``runs/``; an evaluation task gets the trained run
and returns its episodes. Only the driver writes ``runs/`` and ``results/``, and only from
finished tasks, so a task retried after its worker died (Ray retries it) leaves no half
result and no duplicate. Ctrl-C on the driver cancels every task still on the cluster.

Tune: each worker is a Ray task running :func:`cr_bench.runner.tuning.run_worker` against the
study's storage, which all of them must reach.
"""

from __future__ import annotations

import dataclasses
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
from cr_bench.io import atomic_write_text

TASK_RETRIES = 3
"""How often Ray runs a task again after its worker process or node died."""


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise CrBenchError("--executor ray needs Ray: pip install 'cr-bench[cluster]'") from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Connect to the cluster at ``address`` (None: ``RAY_ADDRESS``, else a new local one on this
    machine); disconnect at the end. An already connected driver (a test, a notebook) is reused."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        check_reachable(address or os.environ.get("RAY_ADDRESS"))
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise CrBenchError(f"cannot reach the Ray cluster at {address}: {error}".splitlines()[0]) from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail in seconds, in one line, where Ray would retry an unreachable address for minutes.

    ``HOST:PORT`` and ``ray://HOST:PORT`` are probed with a TCP connection; ``auto``,
    ``local`` and no address are Ray's to resolve.

    :raises CrBenchError: naming the address and why it cannot be reached.
    """
    if address is None or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise CrBenchError(f"--ray-address must be HOST:PORT or ray://HOST:PORT, got {address!r}")
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


def node_capacity(ray: Any) -> tuple[int, int]:
    """CPUs and GPUs of the largest alive node: no task may ask for more."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    cpus = max((int(resources.get("CPU", 0)) for resources in nodes), default=1)
    gpus = max((int(resources.get("GPU", 0)) for resources in nodes), default=0)
    return max(1, cpus), gpus


def _gpus(device: str, gpus: int) -> int:
    """1 for a cuda job on a cluster with GPUs, 0 on the CPU; a cuda job without any GPU is refused."""
    if device != "cuda":
        return 0
    if gpus == 0:
        raise CrBenchError("--device cuda: no node of the Ray cluster has a GPU; use --device cpu or auto")
    return 1


# -- compare ---------------------------------------------------------------------------------


def _train_task(job: Any, run: bytes | None) -> bytes:
    """On a Ray worker: train (or resume) ``job`` in a temporary folder; return the run."""
    from cr_bench.runner.compare import train_job

    progress.quiet()  # the driver shows the progress
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        if run is not None:
            unpack(run, folder)
        train_job(dataclasses.replace(job, run_dir=str(folder)))
        return pack(folder)


def _model_archive(folder: Path) -> bytes:
    """What an evaluation needs of a run: its model and config (no replay buffer, checkpoints or logs)."""
    from cr_bench.agents.rundir import RunDir

    run = RunDir(folder)
    with tempfile.TemporaryDirectory() as tmp:
        light = Path(tmp) / "run"
        light.mkdir()
        for path in (run.model, run.config):
            shutil.copy2(path, light / path.name)
        return pack(light)


def _eval_task(job: Any, run: bytes, condition: str) -> str:
    """On a Ray worker: evaluate the trained run under ``condition``; return the episodes (CSV text)."""
    from cr_bench.runner.compare import evaluate_job

    progress.quiet()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        unpack(run, folder)
        return evaluate_job(dataclasses.replace(job, run_dir=str(folder)), condition).read_text()


def run_jobs_on_ray(jobs: list[Any], address: str | None) -> None:
    """Train and evaluate ``jobs`` (:class:`cr_bench.runner.compare.Job`) as Ray tasks; write what they
    return into each job's run folder. Finished runs and evaluations are not sent again.

    :raises CrBenchError: naming the runs whose tasks failed (after Ray's retries), or a
        request no node of the cluster can meet.
    """
    from cr_bench.agents.rundir import RunDir
    from cr_bench.evaluation.episodes import episodes_at_once
    from cr_bench.runner.compare import conditions, needs_training, run_eval_file

    with ray_session(address) as ray:
        cpus, gpus = node_capacity(ray)
        train_remote = ray.remote(max_retries=TASK_RETRIES)(_train_task)
        eval_remote = ray.remote(max_retries=TASK_RETRIES)(_eval_task)
        pending: dict[Any, tuple[str, Any, str]] = {}  # ref -> (kind, job, condition)
        failed: list[str] = []
        bar = progress.bar(0, "task")

        def submit_evaluations(job: Any) -> None:
            run = RunDir(job.run_dir)
            missing = [c for c in conditions(job.eval) if not run_eval_file(job, c).is_file()]
            if missing:
                archive = ray.put(_model_archive(run.path))
                workers = episodes_at_once(job.eval.backend, job.eval.episodes, job.eval.n_envs)
                options = {
                    "num_cpus": min(cpus, workers if job.eval.backend == "gymnasium" else 1),
                    "num_gpus": _gpus(job.config.device, gpus),
                }
                for condition in missing:
                    pending[eval_remote.options(**options).remote(job, archive, condition)] = ("eval", job, condition)
                    bar.total += 1

        def keep(kind: str, job: Any, condition: str, result: Any) -> None:
            """Write a finished task's result into the run folder (only the driver writes)."""
            if kind == "train":
                Path(job.run_dir).parent.mkdir(parents=True, exist_ok=True)
                unpack(result, Path(job.run_dir))
                progress.say(f"  {job.name} seed {job.seed}: trained")
            else:
                path = run_eval_file(job, condition)
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, result)
                progress.say(f"  {job.name} seed {job.seed}: evaluated ({condition})")

        def finish(ref: Any) -> tuple[str, Any] | None:
            """The finished task's kind and job, its result kept; None if it failed."""
            kind, job, condition = pending.pop(ref)
            bar.update(1)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as error:
                failed.append(f"{job.run_dir} ({kind}: {_cause(error)})")
                return None
            keep(kind, job, condition, result)
            return kind, job

        try:
            for job in jobs:
                run = RunDir(job.run_dir)
                if needs_training(job):
                    options = {
                        "num_cpus": min(cpus, job.config.torch_threads),
                        "num_gpus": _gpus(job.config.device, gpus),
                    }
                    archive = pack(run.path) if run.model.is_file() else None
                    pending[train_remote.options(**options).remote(job, archive)] = ("train", job, "")
                    bar.total += 1
                else:
                    submit_evaluations(job)
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                done = finish(ref)
                if done is not None and done[0] == "train":
                    submit_evaluations(done[1])
        except KeyboardInterrupt:
            ready = ray.wait(list(pending), num_returns=len(pending), timeout=0)[0] if pending else []
            for ref in ready:  # finished before Ctrl-C: kept; nothing new starts
                finish(ref)
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
        if failed:
            raise CrBenchError(f"{len(failed)} Ray task(s) failed: {'; '.join(failed)}"[:2000])


# -- tune ------------------------------------------------------------------------------------


def _tune_task(settings: Any) -> int:
    """On a Ray worker: one tuning worker on the study's storage; returns how many trials it saw."""
    from cr_bench.runner.study import counted, open_study
    from cr_bench.runner.tuning import run_worker

    run_worker(settings, show_progress=False)
    return len(counted(open_study(settings)))


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


def _absolute_sqlite(storage: str) -> str:
    """``sqlite:///relative.db`` made absolute: a task's working directory is not the driver's."""
    prefix = "sqlite:///"
    if storage.startswith(prefix) and not storage.startswith(prefix + "/"):
        return prefix + str(Path(storage.removeprefix(prefix)).resolve())
    return storage


def run_tune_workers_on_ray(settings: Any, address: str | None) -> None:
    """Run ``settings.n_jobs`` tuning workers as Ray tasks and wait for them.

    Ctrl-C asks each worker to stop as a local one does (its running trial is marked
    interrupted and queued again), waits a minute for that, then ends what is left.

    :raises CrBenchError: for a storage other nodes cannot reach, or failed workers.
    """
    from cr_bench.agents.models import threads_per_job

    with ray_session(address) as ray:
        alive = [node for node in ray.nodes() if node.get("Alive")]
        via_client = (address or os.environ.get("RAY_ADDRESS") or "").startswith("ray://")
        check_storage_reachable(settings.storage, len(alive), through_client=via_client)
        cpus, _ = node_capacity(ray)
        total = int(ray.cluster_resources().get("CPU", 1))
        threads = min(cpus, threads_per_job(total, settings.n_jobs))
        settings = dataclasses.replace(
            settings,
            base_config={**settings.base_config, "torch_threads": threads},
            # a task's working directory is not the driver's: every path absolute
            runs_dir=str(Path(settings.runs_dir).resolve()),
            results_dir=str(Path(settings.results_dir).resolve()),
            storage=_absolute_sqlite(settings.storage),
            space_file=settings.space_file and str(Path(settings.space_file).resolve()),
        )
        remote = ray.remote(max_retries=TASK_RETRIES)(_tune_task)
        refs = [remote.options(num_cpus=threads).remote(settings) for _ in range(settings.n_jobs)]
        try:
            outcomes = [ray.get(ref) for ref in refs]
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref)  # KeyboardInterrupt in the worker: it requeues its trial
            ray.wait(refs, num_returns=len(refs), timeout=60)
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        except ray.exceptions.RayError as error:
            raise CrBenchError(f"a tuning worker failed on Ray: {_cause(error)}") from None
        progress.say(f"  {len(outcomes)} Ray tuning worker(s) finished")
