"""Row "moto killed mid-crawl" (the status and API part; the crawl's own part is the sources
engineer's): `make status` fails when it cannot read the stack, and GET /tracks/{id}
answers 503 storage_unavailable while the table is unreachable, not 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infra.cli import STATUS_UNREADABLE
from infra.stack import LocalStack, running_stack
from infra.template import REPO_ROOT


@pytest.fixture
def doomed_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """A stack of this test's own, so that killing its moto server harms no other test."""
    # One attempt: boto's backoff between retries only makes a dead endpoint slower to report.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with running_stack() as local:
        yield local


def run_status(state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOUNDSLIKE_STATE_DIR": str(state_dir), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "infra", "status"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)


def test_status_exits_non_zero_when_it_cannot_read_the_stacks_resources(doomed_stack: LocalStack, tmp_path: Path) -> None:
    # The state `make up` writes, for a stack whose runner (this process) is alive.
    (tmp_path / "stack.json").write_text(json.dumps({
        "ready": True, "pid": os.getpid(), "moto_pid": doomed_stack.moto.process.pid, "endpoint": doomed_stack.endpoint,
        "api_url": None, "pumped_functions": ["AnnoyServiceFunction"], "started_at": "2026-01-01T00:00:00Z",
        "env": doomed_stack.env(), "resources": doomed_stack.resources.to_json(),
    }))
    healthy = run_status(tmp_path)
    assert healthy.returncode == 0, healthy.stderr
    assert "tracks        : none" in healthy.stdout

    doomed_stack.moto.stop()
    down = run_status(tmp_path)
    assert down.returncode == STATUS_UNREADABLE
    assert "could not read resources" in down.stderr
    assert "Traceback" not in down.stderr + down.stdout


def test_get_track_is_503_storage_unavailable_while_the_table_is_unreachable(doomed_stack: LocalStack) -> None:
    from catalog.records import Source, TrackRecord
    from catalog.storage import TrackTable
    from infra.http_gateway import serve, shutdown

    track_id = "local-00000000000000000001"
    TrackTable(doomed_stack.resources.refs["TracksTable"]).put_pending(TrackRecord(track_id=track_id, source=Source.LOCAL))
    sys.modules.pop("api.handler", None)
    server, thread = serve(doomed_stack.handler("ApiFunction"))
    url = "http://{}:{}".format(*server.server_address[:2])
    try:
        assert requests.get(f"{url}/tracks/{track_id}", timeout=30).json()["status"] == "pending"
        doomed_stack.moto.stop()
        response = requests.get(f"{url}/tracks/{track_id}", timeout=30)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "storage_unavailable"
    finally:
        shutdown(server, thread)
        sys.modules.pop("api.handler", None)
