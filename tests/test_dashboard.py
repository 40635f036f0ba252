"""optuna-dashboard (the `dashboard` extra) reads a cr-bench study: the committed main study's
journal, through the dashboard's own storage loader and web API, with the trial attributes
a user looks for (frames, wall seconds, run folder)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

optuna_dashboard = pytest.importorskip(
    "optuna_dashboard", reason="optuna-dashboard is not installed (pip install -e '.[dashboard]')"
)

from optuna_dashboard import _storage_url  # noqa: E402
from optuna_dashboard._app import create_app  # noqa: E402

JOURNAL = Path(__file__).resolve().parents[1] / "results" / "tune" / "ppo" / "journal.log"


def _get(app: Any, path: str) -> Any:
    """GET ``path`` from the dashboard's WSGI app; the decoded JSON."""
    status: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    body = b"".join(app(environ, lambda code, headers, *exc_info: status.append(code)))
    assert status[0].startswith("200"), (path, status, body[:300])
    return json.loads(body)


def test_the_dashboard_reads_our_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    shutil.copy(JOURNAL, journal)  # the dashboard's lock file goes beside the copy
    storage = _storage_url.get_storage(str(journal))  # what `optuna-dashboard FILE` runs
    app = create_app(storage)
    (study,) = _get(app, "/api/studies")["study_summaries"]
    assert study["study_name"] == "ppo"
    detail = _get(app, f"/api/studies/{study['study_id']}")
    trials = detail["trials"]
    assert trials and trials[0]["number"] == 0
    attrs = {item["key"]: item["value"] for item in trials[0]["user_attrs"]}
    assert {"frames", "wall_seconds", "run_dir", "default"} <= set(attrs)
    assert int(attrs["frames"]) > 0
