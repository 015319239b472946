"""`python -m api serve` (what `make serve` runs): the API on 127.0.0.1 against a local S3."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from api_testkit import build_bundle, clustered_vectors, spotify_like_id
from moto.server import ThreadedMotoServer

from catalog.bundle_store import BundleStore
from catalog.records import utc_now_iso

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "serve-cli-index"


@pytest.fixture
def moto_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    try:
        yield endpoint
    finally:
        server.stop()


def test_serve_answers_over_http_and_stops_on_sigterm(moto_server: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket=BUCKET)
    ids = [spotify_like_id(i) for i in range(30)]
    manifest = build_bundle(tmp_path / "build", ids, clustered_vectors(30))
    store = BundleStore(BUCKET, s3)
    store.publish_base(tmp_path / "build", manifest, utc_now_iso())

    env = {**os.environ, "INDEX_BUCKET": BUCKET, "INDEX_DIR": str(tmp_path / "index"), "POWERTOOLS_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + process.stderr.read()
        url = f"http://127.0.0.1:{match.group(1)}"
        response = requests.get(f"{url}/recommendations", params={"trackId": ids[3], "k": 4}, timeout=30)
        assert response.status_code == 200, response.text
        results = [r["trackId"] for r in response.json()["results"]]
        assert len(results) == 4 and ids[3] not in results
        assert requests.get(f"{url}/health", timeout=10).json()["count"] == 30
        assert requests.get(f"{url}/nope", timeout=10).status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert process.returncode == 0, process.stderr.read()
