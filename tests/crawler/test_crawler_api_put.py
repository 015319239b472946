"""PUT /tracks/{trackId} through the API handler into the crawler's real code path.

The API's own tests swap the ingest function; here nothing is swapped: the v2 event goes
through api.handler to crawler.pipeline.ingest_track, Spotify and Deezer are the loopback
fakes, and S3/DynamoDB are moto.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from crawler_aws import REGION, s3_keys, table_item
from crawler_fakes import Fakes, spotify_id, spotify_track

from infra.context import LocalLambdaContext

EVENT = Path(__file__).resolve().parents[1] / "events" / "api_put_track.json"
INDEX_BUCKET = "index-bucket"


@pytest.fixture
def api_handler(aws: None, user_secret: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """api.handler as deployed: its dependencies read this test's environment, nothing overridden."""
    import api.handler

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=INDEX_BUCKET)
    monkeypatch.setenv("INDEX_BUCKET", INDEX_BUCKET)
    assert api.handler.app.dependency_overrides == {}
    return api.handler


def put(handler: Any, track_id: str) -> tuple[int, dict[str, Any]]:
    event = json.loads(EVENT.read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/tracks/{track_id}"
    event["pathParameters"] = {"trackId": track_id}
    response = handler.lambda_handler(event, LocalLambdaContext(function_name="ApiFunction"))
    return response["statusCode"], json.loads(response["body"])


def test_put_track_queues_a_spotify_track_through_the_crawler_with_the_deezer_fallback(
    api_handler: Any, crawler_env: Fakes
) -> None:
    track = spotify_track(spotify_id(91), "Requested", ["Someone"], isrc="USABC9999999")
    crawler_env.spotify.tracks[track["id"]] = track
    crawler_env.deezer.add("Requested", "Someone", "USABC9999999")

    status, body = put(api_handler, track["id"])

    assert status == 202, body
    assert s3_keys() == [f"previews/{track['id']}.mp3"]
    item = table_item(track["id"])
    assert item["status"] == "pending" and item["preview_source"] == "deezer"
    again, _ = put(api_handler, track["id"])
    assert again == 202, "already pending: accepted, nothing downloaded again"
    assert len(crawler_env.cdn.log) == 1


def test_put_track_without_a_preview_is_a_clear_4xx(api_handler: Any, crawler_env: Fakes) -> None:
    track = spotify_track(spotify_id(92), "Unheard", ["Nobody"], isrc="USABC0000001")
    crawler_env.spotify.tracks[track["id"]] = track

    status, body = put(api_handler, track["id"])

    assert status == 422 and body["error"]["code"]
    assert table_item(track["id"]) is None and s3_keys() == []


def test_put_a_deezer_track_by_its_dz_id(api_handler: Any, crawler_env: Fakes) -> None:
    entry = crawler_env.deezer.add("Deezer Only", "Somebody", isrc="FRXYZ2600001")

    status, body = put(api_handler, f"dz-{entry.id}")

    assert status == 202, body
    assert s3_keys() == [f"previews/dz-{entry.id}.mp3"]
    item = table_item(f"dz-{entry.id}")
    assert (item["source"], item["deezer_id"], item["isrc"], item["status"]) == ("deezer", str(entry.id), "FRXYZ2600001", "pending")
    missing, body = put(api_handler, "dz-999")
    assert missing == 404 and body["error"]["code"] == "deezer_track_not_found"
    bad, body = put(api_handler, "dz-abc")
    assert bad == 400 and body["error"]["code"] == "invalid_track_id"


def test_put_a_spotify_track_already_reached_through_deezer_adds_no_second_track(api_handler: Any, crawler_env: Fakes) -> None:
    entry = crawler_env.deezer.add("Both", "Services", isrc="FRXYZ2600002")
    track = spotify_track(spotify_id(93), "Both", ["Services"], isrc="FRXYZ2600002")
    crawler_env.spotify.tracks[track["id"]] = track
    assert put(api_handler, f"dz-{entry.id}")[0] == 202
    downloads = len(crawler_env.cdn.log)

    status, body = put(api_handler, track["id"])

    assert status == 202 and f"known as dz-{entry.id}" in body["message"], body
    assert len(crawler_env.cdn.log) == downloads and s3_keys() == [f"previews/dz-{entry.id}.mp3"]
    assert table_item(track["id"]) is None and table_item(f"dz-{entry.id}")["spotify_id"] == track["id"]
