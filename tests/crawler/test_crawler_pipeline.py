"""The crawl end to end: loopback Spotify / Deezer / CDN in, moto DynamoDB + S3 out."""

from __future__ import annotations

from urllib.parse import unquote

import boto3
import pytest
from crawler_aws import REGION, TABLE, s3_keys, s3_object, table_item
from crawler_fakes import Fakes, Reply, playlist_entry, spotify_id, spotify_track

from catalog.ingest import IngestOutcome, IngestStatus, UpstreamUnavailableError
from catalog.model import MODEL_ID
from catalog.records import Source, Status, TrackRecord
from catalog.storage import TrackTable
from crawler.pipeline import Crawler, crawl_playlist, crawl_sources, ingest_track

PLAYLIST = spotify_id(7, "pl")
OTHER_PLAYLIST = spotify_id(8, "pl")


def _playlist(fakes: Fakes, playlist_id: str = PLAYLIST, n: int = 6) -> list[dict]:
    """n tracks: the first has a Spotify preview_url, then ISRC hits on Deezer, one search hit, one with nothing."""
    tracks = []
    for i in range(n):
        isrc = f"GBXYZ{i:07d}"
        title, artist = f"Tune {i}", f"Band {i}"
        preview = fakes.cdn.preview_url(f"spotify-{i}") if i == 0 else None
        tracks.append(spotify_track(spotify_id(500 + i), title, [artist], isrc=isrc, preview_url=preview))
        if i == n - 2:
            fakes.deezer.add(f"{title} (Remastered)", artist, isrc="", media=f"search-{i}")
        elif 0 < i < n - 2:
            fakes.deezer.add(title, artist, isrc=isrc, media=f"isrc-{i}")
    fakes.spotify.add_playlist(playlist_id, "Mine", [playlist_entry(t) for t in tracks])
    return tracks


def test_a_playlist_crawl_writes_pending_items_then_previews_with_metadata(crawler: Crawler, crawler_env: Fakes) -> None:
    tracks = _playlist(crawler_env)
    summary = crawl_playlist(crawler, f"https://open.spotify.com/playlist/{PLAYLIST}")
    assert (summary.new, summary.known) == (5, 0)
    assert dict(summary.new_by_source) == {"spotify": 1, "deezer": 4}
    assert dict(summary.no_preview) == {"not_found": 1}
    assert s3_keys() == sorted(f"previews/{t['id']}.mp3" for t in tracks[:5])

    item = table_item(tracks[1]["id"])
    assert item["status"] == "pending"
    assert item["preview_source"] == "deezer"
    assert item["playlists"] == {PLAYLIST}
    assert (item["title"], item["artists"], item["isrc"], item["source"]) == ("Tune 1", ["Band 1"], "GBXYZ0000001", "spotify")
    assert table_item(tracks[0]["id"])["preview_source"] == "spotify"
    assert table_item(tracks[5]["id"]) is None

    obj = s3_object(f"previews/{tracks[1]['id']}.mp3")
    assert obj["ContentType"] == "audio/mpeg"
    assert obj["Body"].read() == crawler_env.cdn.audio_for("isrc-1")
    assert unquote(obj["Metadata"]["track-id"]) == tracks[1]["id"]
    assert unquote(obj["Metadata"]["playlist"]) == PLAYLIST
    assert unquote(obj["Metadata"]["preview-source"]) == "deezer"


def test_a_recrawl_downloads_nothing_and_only_adds_the_playlist(crawler: Crawler, crawler_env: Fakes) -> None:
    tracks = _playlist(crawler_env)
    crawl_playlist(crawler, PLAYLIST)
    downloads, lookups = len(crawler_env.cdn.log), len(crawler_env.deezer.log)
    crawler_env.spotify.add_playlist(OTHER_PLAYLIST, "Also mine", [playlist_entry(t) for t in tracks[:3]])
    summary = crawl_playlist(crawler, OTHER_PLAYLIST)
    assert (summary.new, summary.known) == (0, 3)
    assert (len(crawler_env.cdn.log), len(crawler_env.deezer.log)) == (downloads, lookups)
    assert table_item(tracks[0]["id"])["playlists"] == {PLAYLIST, OTHER_PLAYLIST}
    assert table_item(tracks[4]["id"])["playlists"] == {PLAYLIST}


def test_a_ready_item_is_never_overwritten(crawler: Crawler, crawler_env: Fakes) -> None:
    tracks = _playlist(crawler_env, n=3)
    table = TrackTable(TABLE, boto3.resource("dynamodb", region_name=REGION).Table(TABLE))
    crawl_playlist(crawler, PLAYLIST)
    table.mark_ready(tracks[1]["id"], embedding=b"\x00\x00\x80?", dim=1, model=MODEL_ID, tags={})
    crawl_playlist(crawler, PLAYLIST)
    item = table_item(tracks[1]["id"])
    assert item["status"] == "ready" and item["model"] == MODEL_ID


def test_a_failed_item_is_crawled_again(crawler: Crawler, crawler_env: Fakes) -> None:
    tracks = _playlist(crawler_env, n=3)
    crawl_playlist(crawler, PLAYLIST)
    TrackTable(TABLE).mark_failed(tracks[1]["id"], "undecodable")
    summary = crawl_playlist(crawler, PLAYLIST)
    assert (summary.new, summary.known) == (1, 1)
    assert table_item(tracks[1]["id"])["status"] == "pending"


def test_a_pending_item_left_behind_by_a_crash_is_crawled_again_once_stale(crawler: Crawler, crawler_env: Fakes) -> None:
    tracks = _playlist(crawler_env, n=3)
    crawl_playlist(crawler, PLAYLIST)
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    # As if the process died between the item and the upload, seven hours ago.
    table.update_item(Key={"track_id": tracks[1]["id"]}, UpdateExpression="SET crawled_at = :t",
                      ExpressionAttributeValues={":t": "2000-01-01T00:00:00Z"})
    downloads = len(crawler_env.cdn.log)
    summary = crawl_playlist(crawler, PLAYLIST)
    assert (summary.new, summary.known) == (1, 1), "the fresh pending track is not taken again"
    assert len(crawler_env.cdn.log) > downloads
    item = table_item(tracks[1]["id"])
    assert item["status"] == "pending" and item["crawled_at"] > "2000-01-01T00:00:00Z"


def test_duplicate_entries_are_crawled_once(crawler: Crawler, crawler_env: Fakes) -> None:
    tracks = _playlist(crawler_env, n=3)
    crawler_env.spotify.add_playlist(OTHER_PLAYLIST, "Dupes", [playlist_entry(t) for t in tracks + tracks[:1]])
    summary = crawl_playlist(crawler, OTHER_PLAYLIST)
    assert summary.new == 2 and summary.skipped["duplicate_entry"] == 1


def test_the_same_recording_under_two_spotify_ids_in_one_playlist_is_crawled_once(crawler: Crawler, crawler_env: Fakes) -> None:
    tracks = _playlist(crawler_env, n=4)
    # The album cut of tracks[1]: another Spotify id, the same ISRC (one recording).
    album_cut = spotify_track(spotify_id(900), "Tune 1", ["Band 1"], isrc=tracks[1]["external_ids"]["isrc"], album="The Album")
    crawler_env.spotify.add_playlist(OTHER_PLAYLIST, "Cuts", [playlist_entry(t) for t in (tracks[1], album_cut, tracks[2])])
    summary = crawl_playlist(crawler, OTHER_PLAYLIST)
    assert (summary.new, summary.skipped["duplicate_entry"]) == (2, 1)
    assert table_item(tracks[1]["id"])["status"] == "pending" and table_item(album_cut["id"]) is None
    assert len(crawler_env.deezer.requests_to(rf"^/track/isrc:{tracks[1]['external_ids']['isrc']}$")) == 1


def test_an_upload_failure_marks_the_item_failed_so_the_next_crawl_retries(crawler: Crawler, crawler_env: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    tracks = _playlist(crawler_env, n=3)

    def broken(*args: object, **kwargs: object) -> str:
        raise OSError("connection reset by S3")

    monkeypatch.setattr(crawler.store, "put_preview", broken)
    summary = crawl_playlist(crawler, PLAYLIST)
    assert dict(summary.failed) == {"OSError": 2}
    assert table_item(tracks[0]["id"])["status"] == "failed"
    monkeypatch.undo()
    assert crawl_playlist(crawler, PLAYLIST).new == 2


def test_sources_that_cannot_be_read_are_reported_and_the_rest_crawled(crawler: Crawler, crawler_env: Fakes) -> None:
    _playlist(crawler_env, n=3)
    crawler_env.spotify.add_playlist(OTHER_PLAYLIST, "Theirs", [], metadata_only=True)
    summary = crawl_sources(crawler, [OTHER_PLAYLIST, "not a playlist", PLAYLIST])
    assert summary.new == 2
    assert len(summary.errors) == 2
    assert "February 2026" in summary.errors[0] and "not a playlist" in summary.errors[1]
    assert not summary.ok


def test_a_long_rate_limit_stops_the_whole_run(crawler: Crawler, crawler_env: Fakes) -> None:
    _playlist(crawler_env, n=3)
    crawler_env.spotify.fail(r"/playlists/", Reply.json({"error": {"status": 429, "message": "rate"}}, 429, {"Retry-After": "86400"}))
    summary = crawl_sources(crawler, [PLAYLIST, OTHER_PLAYLIST])
    assert summary.stopped and summary.new == 0
    assert len(crawler_env.spotify.requests_to(r"/playlists/")) == 1


def test_sequential_and_concurrent_crawls_agree(crawler: Crawler, crawler_env: Fakes) -> None:
    import dataclasses

    _playlist(crawler_env, n=12)
    crawler.settings = dataclasses.replace(crawler.settings, concurrency=1)
    sequential = crawl_playlist(crawler, PLAYLIST).to_dict()
    keys = s3_keys()
    for key in keys:
        boto3.client("s3", region_name=REGION).delete_object(Bucket="audio-bucket", Key=key)
        TrackTable(TABLE).mark_failed(key.split("/")[1].split(".")[0], "reset for the test")
    crawler.settings = dataclasses.replace(crawler.settings, concurrency=8)
    assert crawl_playlist(crawler, PLAYLIST).to_dict() == sequential
    assert s3_keys() == keys


# -- ingest_track: the API's PUT /tracks/{trackId} ---------------------------------------


def test_ingest_track_queues_a_new_track(aws: None, user_secret: str, crawler_env: Fakes) -> None:
    track = spotify_track(spotify_id(77), "Single", ["Solo"], isrc="USABC1234567")
    crawler_env.spotify.tracks[track["id"]] = track
    crawler_env.deezer.add("Single", "Solo", "USABC1234567")
    outcome = ingest_track(track["id"])
    assert outcome == IngestOutcome(track["id"], IngestStatus.QUEUED, Status.PENDING, outcome.message)
    assert "deezer" in outcome.message
    assert s3_keys() == [f"previews/{track['id']}.mp3"]
    assert "playlists" not in table_item(track["id"])
    again = ingest_track(track["id"])
    assert (again.status, again.track_status) == ("known", "pending")


def test_ingest_track_reports_known_ready_and_failed_items(aws: None, user_secret: str, crawler_env: Fakes) -> None:
    ready, failed = spotify_id(81), spotify_id(82)
    table = TrackTable(TABLE)
    table.mark_ready(ready, embedding=b"\x00\x00\x80?", dim=1, model="m", tags={}, fallback=TrackRecord(ready, Source.SPOTIFY))
    table.mark_failed(failed, "undecodable", fallback=TrackRecord(failed, Source.SPOTIFY))
    assert (ingest_track(ready).status, ingest_track(ready).track_status) == ("known", "ready")
    outcome = ingest_track(failed)
    assert (outcome.status, outcome.track_status) == ("not_found", "failed")


def test_ingest_track_without_any_preview(aws: None, user_secret: str, crawler_env: Fakes) -> None:
    track = spotify_track(spotify_id(78), "Obscure", ["Nobody"], isrc="USABC7654321")
    crawler_env.spotify.tracks[track["id"]] = track
    outcome = ingest_track(track["id"])
    assert (outcome.status, outcome.track_status) == ("no_preview", None)
    assert table_item(track["id"]) is None and s3_keys() == []


def test_ingest_track_unknown_and_malformed_ids(aws: None, user_secret: str, crawler_env: Fakes) -> None:
    assert ingest_track(spotify_id(79)).status == "not_found"
    assert ingest_track("local-0123456789abcdef0123").status == "not_found"
    assert crawler_env.spotify.requests_to(r"^/v1/tracks/") and len(crawler_env.spotify.requests_to(r"^/v1/tracks/")) == 1


def test_ingest_track_reports_an_unanswering_spotify_as_upstream_unavailable(
    aws: None, user_secret: str, crawler_env: Fakes
) -> None:
    track_id = spotify_id(83)
    crawler_env.spotify.fail(rf"^/v1/tracks/{track_id}$", Reply.json({"error": {"status": 403, "message": "Forbidden"}}, 403), times=10)
    with pytest.raises(UpstreamUnavailableError, match="403"):
        ingest_track(track_id)


def test_ingest_track_builds_its_dependencies_once_per_container(aws: None, user_secret: str, crawler_env: Fakes) -> None:
    for n in (90, 91, 92):
        ingest_track(spotify_id(n))
    assert len(crawler_env.spotify.requests_to(r"^/api/token$")) == 1


def test_known_tracks_are_looked_up_in_batches_of_100(crawler: Crawler) -> None:
    from crawler.pipeline import known_statuses

    table = TrackTable(TABLE)
    ids = [spotify_id(2000 + i) for i in range(250)]
    for tid in ids[:120]:
        table.put_pending(TrackRecord(tid, Source.SPOTIFY))
    table.mark_failed(ids[5], "undecodable")
    table.mark_ready(ids[200], embedding=b"\x00\x00\x80?", dim=1, model="m", tags={}, fallback=TrackRecord(ids[200], Source.SPOTIFY))
    known = known_statuses(crawler, ids)
    assert set(known) == (set(ids[:120]) - {ids[5]}) | {ids[200]}
    assert known[ids[200]] == "ready" and known[ids[0]] == "pending"
