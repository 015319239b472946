"""make reextract: after MODEL_ID changes, every ready track another model embedded gets its audio fetched again."""

from __future__ import annotations

from pathlib import Path

import boto3
from crawler_aws import BUCKET, REGION, s3_keys, s3_object, table_item
from crawler_fakes import DeezerList, Fakes, mp3_bytes, playlist_entry, spotify_id, spotify_track

from catalog.keys import deezer_track_id, local_track_id
from catalog.model import MODEL_ID
from catalog.storage import decode_object_metadata
from crawler.pipeline import Crawler, crawl_sources
from crawler.reextract import reextract

OLD_MODEL = f"{MODEL_ID}-before"  # any id but the configured one
PLAYLIST_ID = 908622995


def _extracted(crawler: Crawler, model: str) -> None:
    """What the extractor does with each queued preview: the item is ready under ``model`` and the audio deleted."""
    s3 = boto3.client("s3", region_name=REGION)
    for key in s3_keys():
        if key.startswith("previews/"):
            track_id = key.split("/")[1].rsplit(".", 1)[0]
            crawler.table.mark_ready(track_id, embedding=b"\x00\x00\x80?", dim=1, model=model, tags={})
            s3.delete_object(Bucket=BUCKET, Key=key)


def test_ready_tracks_of_another_model_are_queued_again_and_keep_their_playlists(
    crawler: Crawler, crawler_env: Fakes, tmp_path: Path
) -> None:
    deezer_entry = crawler_env.deezer.add("Deezer Song", "Deezer Band", isrc="FRXYZ2600001")
    crawler_env.deezer.playlists[PLAYLIST_ID] = DeezerList("Theirs", [deezer_entry])
    # A Spotify track with no preview_url: its preview came from Deezer by ISRC.
    found_by_isrc = crawler_env.deezer.add("Spotify Song", "Spotify Band", isrc="USXYZ2600009")
    track = spotify_track(spotify_id(5), "Spotify Song", ["Spotify Band"], isrc=found_by_isrc.isrc)
    sp_playlist = spotify_id(6, "pl")
    crawler_env.spotify.add_playlist(sp_playlist, "Mine", [playlist_entry(track)])
    music = tmp_path / "music"
    music.mkdir()
    kept, gone = mp3_bytes(1), mp3_bytes(2)
    (music / "A - Kept.mp3").write_bytes(kept)
    (music / "B - Gone.mp3").write_bytes(gone)
    assert crawl_sources(crawler, [f"deezer:playlist:{PLAYLIST_ID}", sp_playlist, str(music)]).new == 4
    _extracted(crawler, OLD_MODEL)
    (music / "B - Gone.mp3").unlink()
    # A track the configured model already embedded is left alone.
    current = crawler_env.deezer.add("Current", "Band", isrc="FRXYZ2600002")
    assert crawl_sources(crawler, [f"deezer:track:{current.id}"]).new == 1
    _extracted(crawler, MODEL_ID)
    cdn_before = len(crawler_env.cdn.log)

    lines: list[str] = []
    summary = reextract(crawler, MODEL_ID, lines.append)

    assert (summary.examined, summary.queued, dict(summary.unreachable)) == (4, 3, {"local_file_gone": 1})
    assert local_track_id(gone) in summary.examples["local_file_gone"]
    dz, local = deezer_track_id(deezer_entry.id), local_track_id(kept)
    assert s3_keys() == sorted([f"previews/{dz}.mp3", f"previews/{track['id']}.mp3", f"previews/{local}.mp3"])
    assert len(crawler_env.cdn.log) == cdn_before + 2  # the two Deezer previews; the local one came from its file
    assert s3_object(f"previews/{local}.mp3")["Body"].read() == kept
    metadata = decode_object_metadata(s3_object(f"previews/{track['id']}.mp3")["Metadata"])
    assert (metadata["title"], metadata["artists"]) == ("Spotify Song", ["Spotify Band"])
    for track_id, playlist in ((dz, f"deezer:playlist:{PLAYLIST_ID}"), (track["id"], sp_playlist), (local, "local:music")):
        item = table_item(track_id)
        assert (item["status"], item["model"], item["playlists"]) == ("ready", OLD_MODEL, {playlist})
    assert table_item(deezer_track_id(current.id))["model"] == MODEL_ID
    # Once the extractor has run, nothing is left to do.
    _extracted(crawler, MODEL_ID)
    again = reextract(crawler, MODEL_ID)
    assert (again.examined, again.queued, dict(again.unreachable)) == (1, 0, {"local_file_gone": 1})
