"""Fault rows of the crawl (issue 12): bad local entries are isolated and explained, and
unreachable storage stops the crawl with one clear line instead of a traceback per track."""

from __future__ import annotations

import importlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import soundfile as sf
from moto import mock_aws

from catalog.keys import local_track_id
from crawler.pipeline import Crawler, build_crawler, crawl_sources
from crawler.settings import CrawlerSettings
from infra.context import LocalLambdaContext
from infra.resources import template_table_params

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]
EVENT = REPO / "tests" / "events" / "api_put_track.json"
TABLE, BUCKET, INDEX_BUCKET = "Tracks", "audio-bucket", "index-bucket"
# Readable by nobody, root included: reading /proc/self/mem at offset 0 fails with EIO.
UNREADABLE_TARGET = "/proc/self/mem"


def _wav(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.arange(8000) * (0.01 + seed / 1000)).astype(np.float32) * 0.3, 16000, format="WAV")
    return buf.getvalue()


@pytest.fixture
def crawler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Crawler]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("dynamodb").create_table(**template_table_params(TABLE))
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("s3").create_bucket(Bucket=INDEX_BUCKET)
        yield build_crawler(TABLE, BUCKET, None, CrawlerSettings())


def _get_track(track_id: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any]]:
    """GET /tracks/{trackId} through the API's real handler."""
    monkeypatch.setenv("TRACKS_TABLE", TABLE)
    monkeypatch.setenv("INDEX_BUCKET", INDEX_BUCKET)
    monkeypatch.setenv("AUDIO_BUCKET", BUCKET)
    monkeypatch.setenv("SPOTIFY_SECRET_ID", "unused")
    sys.modules.pop("api.handler", None)
    handler = importlib.import_module("api.handler")
    event = json.loads(EVENT.read_text())
    event["requestContext"]["http"]["method"] = "GET"
    event["routeKey"] = "GET /tracks/{trackId}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/tracks/{track_id}"
    event["pathParameters"] = {"trackId": track_id}
    event.pop("body", None)
    response = handler.lambda_handler(event, LocalLambdaContext(function_name="ApiFunction"))
    sys.modules.pop("api.handler", None)
    return response["statusCode"], json.loads(response["body"])


def test_an_m3u_with_a_symlink_loop_an_unreadable_file_and_junk_still_ingests_its_good_entries(
    crawler: Crawler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    good = _wav(1)
    (songs / "Good - Song.wav").write_bytes(good)
    (songs / "loop.mp3").symlink_to(songs / "loop.mp3")
    (songs / "locked.mp3").symlink_to(UNREADABLE_TARGET)
    (songs / "empty.mp3").write_bytes(b"")
    noise = os.urandom(4096)
    (songs / "noise.mp3").write_bytes(noise)
    m3u = tmp_path / "mix.m3u"
    m3u.write_text("\n".join(["songs/loop.mp3", "songs/locked.mp3", "songs/empty.mp3", "songs/noise.mp3", "songs/gone.mp3", "songs/Good - Song.wav"]))

    summary = crawl_sources(crawler, [str(m3u)])

    assert summary.new == 1 and summary.errors == [] and not summary.stopped
    assert dict(summary.skipped) == {"symlink_loop": 1, "missing_file": 1}
    assert dict(summary.failed) == {"unreadable": 1, "empty_file": 1, "not_audio": 1}
    status, body = _get_track(local_track_id(good), monkeypatch)
    assert (status, body["status"]) == (200, "pending")
    for data, reason in ((b"", "empty_file"), (noise, "not_audio")):
        status, body = _get_track(local_track_id(data), monkeypatch)
        assert (status, body["status"]) == (200, "failed"), body
        assert body["error"].startswith(f"{reason}: ") and "<_io" not in body["error"]


def test_empty_and_random_files_in_a_folder_get_failed_items_that_explain_them(crawler: Crawler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty.mp3").write_bytes(b"")
    noise = os.urandom(2048)
    (tmp_path / "random.mp3").write_bytes(noise)
    (tmp_path / "ok.wav").write_bytes(_wav(2))
    (tmp_path / "dangling.mp3").symlink_to(tmp_path / "nowhere.mp3")
    summary = crawl_sources(crawler, [str(tmp_path)])
    assert (summary.new, dict(summary.failed), dict(summary.skipped)) == (1, {"empty_file": 1, "not_audio": 1}, {"missing_file": 1})
    status, body = _get_track(local_track_id(noise), monkeypatch)
    assert (status, body["status"], body["title"]) == (200, "failed", "random")
    assert "not audio" in body["error"]
    # A second crawl finds the same refusals and writes nothing new.
    again = crawl_sources(crawler, [str(tmp_path)])
    assert (again.new, again.known, dict(again.failed)) == (0, 1, {"empty_file": 1, "not_audio": 1})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_storage_stops_the_crawl_with_one_clear_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"Band - Song {i}.wav").write_bytes(_wav(10 + i))
    env = {
        **os.environ, "PYTHONPATH": str(REPO), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "TRACKS_TABLE": TABLE, "AUDIO_BUCKET": BUCKET, "CRAWL_CONCURRENCY": "2", "STORAGE_ERROR_LIMIT": "3",
    }
    done = subprocess.run([sys.executable, "-m", "crawler", str(tmp_path)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "storage unreachable" in errors[0] and "make up" in errors[0]
    attempted = [line for line in done.stderr.splitlines() if "storage_unreachable" in line]
    assert 3 <= len(attempted) < 20, "stopped after the first few, not one failure per track"
    assert f"failed:        {len(attempted)} (storage_unreachable: {len(attempted)})" in done.stdout
