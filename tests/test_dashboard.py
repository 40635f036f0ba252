"""optuna-dashboard (the `dashboard` extra) serves a cr-bench study: the README's command, run on
the committed main study's journal, answers on 127.0.0.1 with the study and the trial attributes
a user looks for (frames, wall seconds, run folder)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")
JOURNAL = Path(__file__).resolve().parents[1] / "results" / "tune" / "ppo" / "journal.log"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.skipif(not DASHBOARD.exists(), reason="optuna-dashboard is not installed (pip install -e '.[dashboard]')")
def test_the_dashboard_serves_our_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    shutil.copy(JOURNAL, journal)  # the dashboard's lock file goes beside the copy
    port = _free_port()
    server = subprocess.Popen(
        [str(DASHBOARD), str(journal), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = _get(port, "/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the dashboard did not answer within 60 s"
                time.sleep(0.5)
        (study,) = studies
        assert study["study_name"] == "ppo"
        trials = _get(port, f"/api/studies/{study['study_id']}")["trials"]
        assert trials and trials[0]["number"] == 0
        attrs = {item["key"]: item["value"] for item in trials[0]["user_attrs"]}
        assert {"frames", "wall_seconds", "run_dir", "default"} <= set(attrs)
        assert int(attrs["frames"]) > 0
    finally:
        server.terminate()
        server.wait(timeout=30)
