"""Local folders and .m3u playlists."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
from crawler_aws import s3_keys, s3_object, table_item
from crawler_fakes import Fakes, mp3_bytes
from mutagen.easyid3 import EasyID3
from mutagen.flac import FLAC

from catalog.keys import local_track_id
from crawler.pipeline import Crawler, crawl_sources


def _tagged_mp3(path: Path, seed: int, **tags: str | list[str]) -> bytes:
    path.write_bytes(mp3_bytes(seed))
    id3 = EasyID3()
    for key, value in tags.items():
        id3[key] = value
    id3.save(path)
    return path.read_bytes()


def _flac(path: Path, title: str, artist: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000, dtype=np.float32) + 0.01, 16000, format="FLAC")
    path.write_bytes(buf.getvalue())
    flac = FLAC(path)
    flac["title"], flac["artist"] = title, artist
    flac.save()
    return path.read_bytes()


def test_a_folder_is_crawled_with_tags_or_file_names(crawler: Crawler, tmp_path: Path) -> None:
    music = tmp_path / "My Music"
    (music / "sub").mkdir(parents=True)
    tagged = _tagged_mp3(music / "01.mp3", 1, title="Tagged Title", artist=["Tag Artist", "Guest"], album="Tag Album")
    named = mp3_bytes(2)
    (music / "sub" / "Some Artist - Some Title.mp3").write_bytes(named)
    flac = _flac(music / "sub" / "x.flac", "Flac Title", "Flac Artist")
    (music / "notes.txt").write_text("not music")
    (music / "broken.mp3").write_bytes(b"<html>not audio</html>")

    summary = crawl_sources(crawler, [str(music)])
    assert summary.new == 3 and dict(summary.failed) == {"not_audio": 1}
    ids = {local_track_id(b) for b in (tagged, named, flac)}
    assert {k.split("/")[1].rsplit(".", 1)[0] for k in s3_keys()} == ids

    item = table_item(local_track_id(tagged))
    assert (item["title"], item["artists"], item["album"]) == ("Tagged Title", ["Tag Artist", "Guest"], "Tag Album")
    assert (item["source"], item["preview_source"], item["status"]) == ("local", "file", "pending")
    assert item["playlists"] == {"local:My Music"}
    assert item["duration_ms"] > 0
    item = table_item(local_track_id(named))
    assert (item["title"], item["artists"]) == ("Some Title", ["Some Artist"])
    assert table_item(local_track_id(flac))["title"] == "Flac Title"
    obj = s3_object(f"previews/{local_track_id(flac)}.flac")
    assert obj["ContentType"] == "audio/flac" and obj["Body"].read() == flac


def test_the_same_file_keeps_its_id_and_is_not_uploaded_twice(crawler: Crawler, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "Song.mp3").write_bytes(mp3_bytes(5))
    (tmp_path / "b" / "Copy of Song.mp3").write_bytes(mp3_bytes(5))
    first = crawl_sources(crawler, [str(tmp_path / "a")])
    second = crawl_sources(crawler, [str(tmp_path / "b")])
    assert (first.new, second.new, second.known) == (1, 0, 1)
    assert table_item(local_track_id(mp3_bytes(5)))["playlists"] == {"local:a", "local:b"}


def test_an_m3u_lists_files_relative_to_itself(crawler: Crawler, crawler_env: Fakes, tmp_path: Path) -> None:
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "A - One.mp3").write_bytes(mp3_bytes(11))
    (tmp_path / "songs" / "B - Two.mp3").write_bytes(mp3_bytes(12))
    (tmp_path / "songs" / "C - Unlisted.mp3").write_bytes(mp3_bytes(13))
    m3u = tmp_path / "party.m3u"
    m3u.write_text("#EXTM3U\n#EXTINF:1,A - One\nsongs/A - One.mp3\nsongs/B - Two.mp3\nsongs/missing.mp3\nhttps://radio.example/stream.mp3\n")
    summary = crawl_sources(crawler, [str(m3u)])
    assert summary.new == 2
    assert dict(summary.skipped) == {"missing_file": 1, "remote_entry": 1}
    assert table_item(local_track_id(mp3_bytes(11)))["playlists"] == {"local:party"}
    assert table_item(local_track_id(mp3_bytes(13))) is None
