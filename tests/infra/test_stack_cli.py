"""`make up` / `make status` / `make down`: start, report, and stop exactly what was started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from infra.cli import pid_alive
from infra.stack import port_open
from infra.template import REPO_ROOT

pytestmark = pytest.mark.stack


def infra(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOUNDSLIKE_STATE_DIR": str(state_dir)}
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run([sys.executable, "-m", "infra", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_up_status_down_leave_no_process_or_port_behind(tmp_path: Path) -> None:
    started = infra(tmp_path, "up", *API_ARGS)
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads((tmp_path / "stack.json").read_text())
    pids = [state["pid"], state["moto_pid"]]
    ports = [int(url.rsplit(":", 1)[1]) for url in (state["endpoint"], state["api_url"]) if url]
    try:
        assert all(pid_alive(pid) for pid in pids)
        assert all(port_open("127.0.0.1", port) for port in ports)
        assert state["endpoint"].startswith("http://127.0.0.1:")

        again = infra(tmp_path, "up", *API_ARGS)
        assert "already running" in again.stdout, "a second up does not start a second stack"

        status = infra(tmp_path, "status")
        assert status.returncode == 0
        assert state["endpoint"] in status.stdout
        assert "ExtractQueue" in status.stdout and "0 waiting" in status.stdout
        assert "none published yet" in status.stdout

        health = requests.get(f"{state['api_url']}/health", timeout=30)
        assert health.status_code == 503, "the API of the stack answers, with no index yet"
        assert health.json()["error"]["code"]
        # Writes are SigV4-guarded by default (WriteAuth=iam), as deployed.
        assert state["write_auth"] == {"WriteAuth": "iam"} and "SigV4-signed" in status.stdout
        unsigned = requests.put(f"{state['api_url']}/tracks/{TRACK_ID}", timeout=30)
        assert (unsigned.status_code, unsigned.json()) == (403, {"message": "Missing Authentication Token"})
    finally:
        stopped = infra(tmp_path, "down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not any(pid_alive(pid) for pid in pids)
    assert not any(port_open("127.0.0.1", port) for port in ports)
    assert not (tmp_path / "stack.json").exists()
    assert infra(tmp_path, "status").returncode == 3


API_ARGS: tuple[str, ...] = ()
TRACK_ID = "4uLU6hMCjMI75M1A2tKUQC"


def test_write_auth_jwt_guards_the_writes_with_bearer_tokens_and_needs_its_issuer(tmp_path: Path) -> None:
    refused = infra(tmp_path, "up", "--write-auth", "jwt", "--jwt-audience", "app")
    assert refused.returncode == 2 and "--write-auth jwt needs --jwt-issuer" in refused.stderr
    assert not (tmp_path / "stack.json").exists()

    started = infra(tmp_path, "up", "--write-auth", "jwt", "--jwt-issuer", "https://id.example.com/", "--jwt-audience", "app")
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads((tmp_path / "stack.json").read_text())
    try:
        assert state["write_auth"] == {"WriteAuth": "jwt", "JwtIssuer": "https://id.example.com/", "JwtAudience": "app"}
        assert "bearer tokens of https://id.example.com/ for app" in infra(tmp_path, "status").stdout
        # No bearer token: API Gateway's JWT authorizer answer, before any function runs.
        unsigned = requests.put(f"{state['api_url']}/tracks/{TRACK_ID}", timeout=30)
        assert (unsigned.status_code, unsigned.json()) == (401, {"message": "Unauthorized"})
        assert requests.get(f"{state['api_url']}/health", timeout=30).status_code == 503, "reads stay open"
    finally:
        assert infra(tmp_path, "down").returncode == 0
