"""GET /tracks/{trackId}/audio through the API handler, with the crawler's real Spotify and Deezer
clients against the loopback fakes, local files crawled by the real crawler, and moto for AWS."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from crawler_aws import BUCKET, REGION, s3_keys
from crawler_fakes import Fakes, Reply, mp3_bytes, spotify_id, spotify_track

from api.constants import LISTEN_URL_TTL_S_DEFAULT
from catalog.keys import local_track_id
from catalog.records import PreviewSource, Source, Status, TrackRecord
from catalog.storage import TrackTable
from crawler.pipeline import Crawler, crawl_local
from infra.context import LocalLambdaContext

EVENT = Path(__file__).resolve().parents[1] / "events" / "api_get_track.json"
INDEX_BUCKET = "index-bucket"
TABLE_NAME = "Tracks"


@pytest.fixture
def api_handler(aws: None, user_secret: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """api.handler as deployed: its dependencies read this test's environment, nothing overridden."""
    import api.handler

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=INDEX_BUCKET)
    monkeypatch.setenv("INDEX_BUCKET", INDEX_BUCKET)
    monkeypatch.delenv("LOCAL_AUDIO_FILES", raising=False)
    assert api.handler.app.dependency_overrides == {}
    return api.handler


def listen(handler: Any, track_id: str) -> dict[str, Any]:
    event = json.loads(EVENT.read_text())
    path = f"/tracks/{track_id}/audio"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /tracks/{trackId}/audio"
    event["pathParameters"] = {"trackId": track_id}
    return handler.lambda_handler(event, LocalLambdaContext(function_name="ApiFunction"))


def error_code(response: dict[str, Any]) -> str:
    return json.loads(response["body"])["error"]["code"]


def streamed_record(track_id: str, preview_source: PreviewSource, isrc: str = "") -> TrackRecord:
    record = TrackRecord(track_id=track_id, source=Source.SPOTIFY, status=Status.READY, title="Song",
                         artists=["Someone"], isrc=isrc, preview_source=preview_source)
    TrackTable(TABLE_NAME).table.put_item(Item=record.to_item())
    return record


def test_a_deezer_preview_is_resolved_afresh_on_every_request(api_handler: Any, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Song", "Someone", "USABC2600001")
    track_id = spotify_id(1)
    streamed_record(track_id, PreviewSource.DEEZER, isrc="USABC2600001")

    first = listen(api_handler, track_id)
    second = listen(api_handler, track_id)

    for response in (first, second):
        assert response["statusCode"] == 302, response
        location = response["headers"]["Location"]
        assert location.startswith(crawler_env.cdn.base_url.rstrip("/") + "/media/") and "hdnea=exp=" in location
        assert response["headers"]["Cache-Control"] == "no-store"
    assert len(crawler_env.deezer.requests_to(r"^/track/isrc:USABC2600001$")) == 2, "resolved again, never reused"
    assert crawler_env.spotify.requests_to(r"/v1/tracks/") == [], "Spotify had no preview at crawl time: not asked"


def test_spotifys_preview_url_comes_first_when_the_crawl_found_one(api_handler: Any, crawler_env: Fakes) -> None:
    track_id = spotify_id(2)
    preview = crawler_env.cdn.preview_url("spotify-2")
    crawler_env.spotify.tracks[track_id] = spotify_track(track_id, "Song", ["Someone"], isrc="USABC2600002",
                                                         preview_url=preview)
    crawler_env.deezer.add("Song", "Someone", "USABC2600002")
    streamed_record(track_id, PreviewSource.SPOTIFY, isrc="USABC2600002")

    response = listen(api_handler, track_id)

    assert response["statusCode"] == 302 and response["headers"]["Location"] == preview
    assert len(crawler_env.spotify.requests_to(rf"^/v1/tracks/{track_id}$")) == 1
    assert crawler_env.deezer.log == []


def test_spotify_without_a_preview_falls_back_to_deezer(api_handler: Any, crawler_env: Fakes) -> None:
    track_id = spotify_id(3)
    crawler_env.spotify.tracks[track_id] = spotify_track(track_id, "Song", ["Someone"], isrc="USABC2600003")
    crawler_env.deezer.add("Song", "Someone", "USABC2600003")
    streamed_record(track_id, PreviewSource.SPOTIFY, isrc="USABC2600003")

    response = listen(api_handler, track_id)

    assert response["statusCode"] == 302
    assert "/media/" in response["headers"]["Location"]
    assert len(crawler_env.deezer.requests_to(r"^/track/isrc:")) == 1


def test_a_preview_on_a_host_outside_the_allow_list_is_never_a_redirect(
    api_handler: Any, crawler_env: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEZER_PREVIEW_HOSTS", "*.dzcdn.net")
    crawler_env.deezer.add("Song", "Someone", "USABC2600004")
    track_id = spotify_id(4)
    streamed_record(track_id, PreviewSource.DEEZER, isrc="USABC2600004")

    response = listen(api_handler, track_id)

    assert response["statusCode"] == 404 and error_code(response) == "no_preview"
    assert "Location" not in (response.get("headers") or {})


def test_deezer_failing_is_a_502_and_no_preview_anywhere_is_a_404(api_handler: Any, crawler_env: Fakes) -> None:
    failing, missing = spotify_id(5), spotify_id(6)
    streamed_record(failing, PreviewSource.DEEZER, isrc="USABC2600005")
    streamed_record(missing, PreviewSource.DEEZER, isrc="USABC2600006")
    crawler_env.deezer.fail(r"^/track/isrc:USABC2600005$", Reply(503, b"down", {"Content-Type": "text/plain"}), times=99)

    down = listen(api_handler, failing)
    none = listen(api_handler, missing)

    assert down["statusCode"] == 502 and error_code(down) == "preview_unavailable"
    assert none["statusCode"] == 404 and error_code(none) == "no_preview"


def test_no_spotify_credentials_is_a_503_not_configured_naming_the_setting_unless_deezer_has_it(
    api_handler: Any, crawler_env: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.routes import web

    monkeypatch.setenv("SPOTIFY_SECRET_ID", "no-such-secret")
    web._lookup_for.cache_clear()  # a container that starts without the secret
    spotify_only = streamed_record(spotify_id(8), PreviewSource.SPOTIFY)
    crawler_env.deezer.add("Song", "Someone", "USABC2600009")
    on_deezer_too = streamed_record(spotify_id(9), PreviewSource.SPOTIFY, isrc="USABC2600009")

    try:
        missing = listen(api_handler, spotify_only.track_id)
        fallback = listen(api_handler, on_deezer_too.track_id)
    finally:
        web._lookup_for.cache_clear()

    assert missing["statusCode"] == 503 and error_code(missing) == "not_configured"
    assert "SPOTIFY_SECRET_ID" in json.loads(missing["body"])["error"]["message"]
    assert fallback["statusCode"] == 302 and "/media/" in fallback["headers"]["Location"]


def test_unknown_tracks_and_bad_ids_get_json_errors(api_handler: Any) -> None:
    unknown = listen(api_handler, spotify_id(7))
    assert unknown["statusCode"] == 404 and error_code(unknown) == "track_not_found"
    bad = listen(api_handler, "no%20such")
    assert bad["statusCode"] == 400


@pytest.fixture
def local_track(tmp_path: Path, crawler: Crawler) -> tuple[str, Path]:
    folder = tmp_path / "music"
    folder.mkdir()
    path = folder / "Someone - Mine.mp3"
    path.write_bytes(mp3_bytes(11, seconds=2.0))
    summary = crawl_local(crawler, str(folder))
    assert summary.new == 1
    return local_track_id(path.read_bytes()), path


def test_the_local_stack_serves_the_crawled_file_itself(
    api_handler: Any, local_track: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    track_id, path = local_track
    monkeypatch.setenv("LOCAL_AUDIO_FILES", "true")

    response = listen(api_handler, track_id)

    assert response["statusCode"] == 200, response
    assert response["headers"]["Content-Type"] == "audio/mpeg"
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == path.read_bytes()


def test_a_local_file_changed_since_the_crawl_is_not_served(
    api_handler: Any, local_track: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    track_id, path = local_track
    monkeypatch.setenv("LOCAL_AUDIO_FILES", "true")
    path.write_bytes(mp3_bytes(12, seconds=2.0))

    response = listen(api_handler, track_id)

    assert response["statusCode"] == 404 and error_code(response) == "audio_unavailable"
    path.unlink()
    assert error_code(listen(api_handler, track_id)) == "audio_unavailable"


def test_outside_the_local_stack_a_local_file_is_not_read(
    api_handler: Any, local_track: tuple[str, Path]
) -> None:
    track_id, _ = local_track
    response = listen(api_handler, track_id)
    assert response["statusCode"] == 404 and error_code(response) == "audio_unavailable"
    assert "KEEP_LOCAL_PREVIEWS" in json.loads(response["body"])["error"]["message"]


def test_kept_local_previews_are_served_by_short_lived_presigned_urls(
    api_handler: Any, tmp_path: Path, aws: None, user_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawler.pipeline import build_crawler
    from crawler.settings import CrawlerSettings

    monkeypatch.setenv("KEEP_LOCAL_PREVIEWS", "true")
    monkeypatch.setenv("AUDIO_BUCKET", BUCKET)
    folder = tmp_path / "uploads"
    folder.mkdir()
    data = mp3_bytes(13, seconds=2.0)
    (folder / "Someone - Kept.mp3").write_bytes(data)
    crawl_local(build_crawler(TABLE_NAME, BUCKET, None, CrawlerSettings.from_env()), str(folder))
    track_id = local_track_id(data)
    assert s3_keys() == [f"listen/{track_id}.mp3", f"previews/{track_id}.mp3"]

    response = listen(api_handler, track_id)

    assert response["statusCode"] == 302
    url = urlsplit(response["headers"]["Location"])
    assert (url.scheme, url.hostname, url.path) == ("https", f"{BUCKET}.s3.amazonaws.com", f"/listen/{track_id}.mp3")
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == [str(int(LISTEN_URL_TTL_S_DEFAULT))]
    assert boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=f"listen/{track_id}.mp3")["Body"].read() == data
