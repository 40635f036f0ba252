"""compare and tune on a real local Ray cluster (a head on 127.0.0.1 with 2 CPUs), tiny envs.

A suite through Ray gives the episodes a local run gives; two Ray tuning workers on one
storage end with exactly the asked trials; a worker killed mid-task is retried and its result
lands once; a multi-node cluster with a local storage file is refused in one line."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[cluster]'; .ci/run installs it)")

from optuna.trial import TrialState  # noqa: E402

from cr_bench.envs.baselines import BASELINE_ENV  # noqa: E402
from cr_bench.errors import CrBenchError  # noqa: E402
from cr_bench.runner import tuning  # noqa: E402
from cr_bench.runner.compare import compare_suite  # noqa: E402
from cr_bench.runner.ray_executor import check_storage_reachable, pack, unpack  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.fake_env import DIE_ONCE_ENV_ID, DIE_ONCE_MARKER  # noqa: E402
from tests.test_compare import TINY_SET, _suite  # noqa: E402
from tests.test_executor import run_ordered  # noqa: E402
from tests.test_tuning import _settings, _study  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray head with 2 CPUs on loopback; its workers see ``$CR_BENCH_TEST_DIE_ONCE``."""
    marker = tmp_path_factory.mktemp("ray") / "died-once"
    os.environ[DIE_ONCE_MARKER] = str(marker)  # inherited by the workers the head starts
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield marker
    finally:
        ray.shutdown()
        os.environ.pop(DIE_ONCE_MARKER, None)


def _episodes(results: Path) -> pd.DataFrame:
    return pd.read_csv(results / "tiny" / "episodes.csv").sort_values(
        ["agent", "seed", "track_seed"], ignore_index=True
    )


def test_a_suite_on_ray_equals_a_local_run(cluster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same suite, same seeds: the Ray executor's episodes are the local ones; a rerun sends nothing."""
    monkeypatch.setattr(
        "cr_bench.runner.compare.BASELINE_ENV", dataclasses.replace(BASELINE_ENV, id=TINY_SET["env"]["id"])
    )
    path = _suite(tmp_path, baselines=["scripted"])
    compare_suite(path, 1, tmp_path / "local", tmp_path / "local-runs", "local")
    compare_suite(path, 1, tmp_path / "ray", tmp_path / "ray-runs", "ray", executor="ray")
    pd.testing.assert_frame_equal(_episodes(tmp_path / "ray"), _episodes(tmp_path / "local"))
    run = tmp_path / "ray-runs" / "compare" / "tiny" / "beta" / "seed-1"
    assert (run / "model.zip").is_file() and (run / "curve.csv").is_file()  # the whole run came back
    folder = run.stat().st_ino  # a task's result replaces the whole folder: a new inode
    compare_suite(path, 1, tmp_path / "ray", tmp_path / "ray-runs", "again", executor="ray")
    assert run.stat().st_ino == folder


def test_a_worker_killed_mid_task_is_retried(cluster: Path, tmp_path: Path) -> None:
    """The first env built on the cluster kills its worker process; Ray runs the task again and
    the run's episodes land once."""
    assert not cluster.exists()
    agent = {"name": "beta", "agent": "ppo", "set": {**TINY_SET, "env": {**TINY_SET["env"], "id": DIE_ONCE_ENV_ID}}}
    path = _suite(tmp_path, seeds=[0], agents=[agent], baselines=[])
    compare_suite(path, 1, tmp_path / "results", tmp_path / "runs", "ray", executor="ray")
    assert cluster.exists()  # a worker did die
    episodes = pd.read_csv(tmp_path / "results" / "tiny" / "episodes.csv")
    assert episodes["track_seed"].tolist() == sorted(set(episodes["track_seed"])) and len(episodes) == 2


def test_follow_ups_start_on_ray_before_the_tasks_not_yet_started(cluster: Path, tmp_path: Path) -> None:
    """The local executor's order on the cluster's 2 CPUs: the CPU a short task frees goes to its
    follow-ups, not to the tasks Ray would otherwise have queued ahead of them."""
    order = run_ordered(tmp_path / "log", executor="ray")
    assert sorted(order) == ["a", "a1", "a2", "b", "c", "d"]
    assert order.index("a") < order.index("a1") < order.index("a2") < order.index("c") < order.index("d")


def test_two_ray_workers_make_exactly_the_asked_trials(cluster: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path, trials=4, n_jobs=2, executor="ray")
    tuning.tune(settings)
    trials = _study(settings).trials
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.number for t in trials}) == 4


def test_a_local_storage_on_many_nodes_is_refused(
    cluster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tune --executor ray with the default journal on a cluster of three nodes: a one-line
    error naming the fix, before any trial."""
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}] * 3
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    with pytest.raises(CrBenchError, match=r"3-node cluster: .*give --storage postgresql://"):
        tuning.tune(_settings(tmp_path, trials=2, executor="ray"))
    assert not (tmp_path / "runs").exists()
    with pytest.raises(CrBenchError, match=re.escape("cannot reach sqlite:///study.db")):
        check_storage_reachable("sqlite:///study.db", nodes=2)
    with pytest.raises(CrBenchError, match="through Ray Client"):
        check_storage_reachable("", nodes=1, through_client=True)
    check_storage_reachable("postgresql://tune@db/optuna", nodes=3)


def test_executor_flags_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    code, _, err = run_cli(["compare", "--suite", str(_suite(tmp_path)), "--ray-address", "127.0.0.1:6379"])
    assert code == 2 and err.strip() == "cr-bench: error: --ray-address needs --executor ray"
    code, _, err = run_cli(["compare", "--suite", str(_suite(tmp_path)), "--executor", "ray", "--workers", "2"])
    assert code == 2 and "with --executor ray the cluster schedules the tasks" in err


def test_an_unreachable_cluster_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port fails at once, without waiting for Ray's minutes of retries."""
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as a fresh driver (the module's head may run)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    started = time.monotonic()
    code, _, err = run_cli(
        ["compare", "--suite", str(_suite(tmp_path)), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]
    )
    assert code == 2 and err.startswith(f"cr-bench: error: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert len(err.splitlines()) == 1 and time.monotonic() - started < 30
    code, _, err = run_cli(
        ["compare", "--suite", str(_suite(tmp_path)), "--executor", "ray", "--ray-address", "nowhere"]
    )
    assert code == 2 and "--ray-address must be HOST:PORT" in err


def test_a_swap_cut_short_is_repaired(tmp_path: Path) -> None:
    """A driver killed between moving the old run aside and putting the new one in place: the next
    unpack puts the old copy back first, then replaces it."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "model.zip").write_bytes(b"new")
    target, aside = tmp_path / "run", tmp_path / ".run.old"
    aside.mkdir()
    (aside / "model.zip").write_bytes(b"old")  # the state a kill left: no run folder, its copy aside
    unpack(pack(source), target)
    assert (target / "model.zip").read_bytes() == b"new" and not aside.exists()
    assert target.stat().st_mode & 0o777 == 0o755


def test_runs_cross_as_archives(tmp_path: Path) -> None:
    """A run folder packed on one side unpacks whole on the other, replacing the old copy."""
    source = tmp_path / "source"
    (source / "eval").mkdir(parents=True)
    (source / "model.zip").write_bytes(b"model")
    (source / "eval" / "a.csv").write_text("x\n1\n")
    target = tmp_path / "target"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    unpack(pack(source), target)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == ["eval", "eval/a.csv", "model.zip"]


def _listening_ports() -> set[str]:
    """The local address:port (hex) of every listening TCP socket of this machine."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            with open(table) as handle:
                ports |= {line.split()[1] for line in handle.readlines()[1:] if line.split()[3] == "0A"}
    return ports


def test_cr_bench_starts_no_ray_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --ray-address or RAY_ADDRESS, --executor ray is a one-line error, and no server
    was started: the machine listens on the same sockets as before (Ray binds every interface)."""
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as a fresh driver (the module's head may run)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    before = _listening_ports()
    for argv in (["compare", "--suite", str(_suite(tmp_path))], ["tune", "ppo", "--trials", "1"]):
        code, _, err = run_cli([*argv, "--executor", "ray", "--results-dir", str(tmp_path / "results")])
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "--executor ray needs a Ray cluster" in err and "cr-bench starts no Ray of its own" in err
    assert _listening_ports() <= before
