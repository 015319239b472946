"""The contracts of ARCHITECTURE.md as the shared catalog package implements them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pytest
from moto import mock_aws

from catalog.keys import (
    InvalidTrackIdError,
    local_track_id,
    new_index_version,
    parse_preview_key,
    preview_key,
    validate_track_id,
)
from catalog.records import PreviewSource, Source, Status, TrackRecord, decode_embedding, encode_embedding
from catalog.settings import MissingSettingError, env_int, require_env
from catalog.storage import AudioStore, TrackTable, decode_object_metadata, encode_object_metadata
from infra.resources import template_table_params


@pytest.mark.parametrize("bad", ["", "a" * 65, "has space", "slash/id", "dot.id", None, 42])
def test_track_ids_outside_the_pattern_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidTrackIdError):
        validate_track_id(bad)


def test_local_track_id_is_stable_and_derived_from_the_bytes() -> None:
    assert local_track_id(b"abc") == "local-ba7816bf8f01cfea4141"
    assert local_track_id(b"abc") != local_track_id(b"abd")
    validate_track_id(local_track_id(b"anything"))


def test_preview_keys_round_trip_including_the_url_encoded_form_of_s3_events() -> None:
    key = preview_key("4uLU6hMCjMI75M1A2tKUQC", "MP3")
    assert key == "previews/4uLU6hMCjMI75M1A2tKUQC.mp3"
    assert parse_preview_key(key) == ("4uLU6hMCjMI75M1A2tKUQC", "mp3")
    assert parse_preview_key("previews%2Flocal-0123456789abcdef0123.flac") == ("local-0123456789abcdef0123", "flac")
    with pytest.raises(ValueError):
        parse_preview_key("index/LATEST.json")
    with pytest.raises(ValueError):
        preview_key("abc", "exe")


def test_index_versions_are_unique_and_sort_by_time() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    versions = [new_index_version(start + timedelta(microseconds=i)) for i in (0, 1, 2, 10, 1000000)]
    assert versions == sorted(versions)
    assert len({new_index_version(start) for _ in range(100)}) == 100


def test_embeddings_are_stored_normalised_little_endian_float32() -> None:
    data = encode_embedding([3.0, 4.0])
    assert data == np.array([0.6, 0.8], dtype="<f4").tobytes()
    np.testing.assert_allclose(decode_embedding(data, dim=2), [0.6, 0.8])
    with pytest.raises(ValueError):
        decode_embedding(data, dim=3)
    with pytest.raises(ValueError):
        encode_embedding([0.0, 0.0])
    with pytest.raises(ValueError):
        encode_embedding([np.nan, 1.0])


def test_missing_setting_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKS_TABLE", raising=False)
    with pytest.raises(MissingSettingError, match="TRACKS_TABLE"):
        require_env("TRACKS_TABLE")
    monkeypatch.setenv("SOME_COUNT", "x")
    with pytest.raises(ValueError, match="SOME_COUNT"):
        env_int("SOME_COUNT", 3)


def test_object_metadata_survives_non_ascii_titles() -> None:
    record = TrackRecord(track_id="abc", source=Source.LOCAL, title="Für Elise – Ré", artists=["Beethoven", "Ö"],
                         preview_source=PreviewSource.FILE, duration_ms=30000)
    metadata = encode_object_metadata(record, playlist="folder")
    assert all(value.isascii() for value in metadata.values())
    decoded = decode_object_metadata(metadata)
    assert decoded["title"] == "Für Elise – Ré" and decoded["artists"] == ["Beethoven", "Ö"]
    assert decoded["playlists"] == {"folder"} and decoded["duration_ms"] == 30000


@pytest.fixture
def table() -> TrackTable:
    with mock_aws():
        boto3.client("dynamodb").create_table(**template_table_params("Tracks"))
        yield TrackTable("Tracks", boto3.resource("dynamodb").Table("Tracks"))


def test_put_pending_never_overwrites_a_known_track_but_retries_a_failed_one(table: TrackTable) -> None:
    record = TrackRecord(track_id="t1", source=Source.SPOTIFY, title="Song", artists=["A"], playlists={"p1"})
    assert table.put_pending(record) is True
    assert table.put_pending(record) is False
    table.mark_ready("t1", embedding=encode_embedding([1, 2]), dim=2, model="m", tags={"rock": 0.5})
    assert table.put_pending(record) is False
    assert table.get("t1").status is Status.READY
    table.mark_failed("t1", "undecodable")
    assert table.put_pending(record) is True
    assert table.get("t1").status is Status.PENDING


def test_mark_ready_keeps_crawled_metadata_and_fills_only_what_is_missing(table: TrackTable) -> None:
    table.put_pending(TrackRecord(track_id="t1", source=Source.SPOTIFY, title="Crawled title", artists=["A"]))
    table.add_playlists("t1", {"p2"})
    fallback = TrackRecord(track_id="t1", source=Source.SPOTIFY, title="Object title", album="From object")
    table.mark_ready("t1", embedding=encode_embedding([1, 0, 0]), dim=3, model="m", tags={"jazz": 0.25},
                     fallback=fallback)
    stored = table.get("t1")
    assert stored.title == "Crawled title" and stored.album == "From object"
    assert stored.playlists == {"p2"} and stored.tags == {"jazz": 0.25}
    np.testing.assert_allclose(stored.vector(), [1, 0, 0])


def test_mark_ready_adds_the_fallbacks_playlists_in_the_same_single_write(table: TrackTable, monkeypatch) -> None:
    table.put_pending(TrackRecord(track_id="t1", source=Source.SPOTIFY, title="Crawled", playlists={"p1"}))
    writes: list[str] = []
    real_update = table.table.update_item

    def update_item(**kwargs):
        writes.append(kwargs["UpdateExpression"])
        return real_update(**kwargs)

    monkeypatch.setattr(table.table, "update_item", update_item)
    fallback = TrackRecord(track_id="t1", source=Source.SPOTIFY, playlists={"p2", "p3"})
    table.mark_ready("t1", embedding=encode_embedding([1, 0]), dim=2, model="m", tags={}, fallback=fallback)
    table.mark_failed("t2", "audio is silent", fallback=TrackRecord(track_id="t2", source=Source.LOCAL, playlists={"p4"}))

    assert len(writes) == 2 and all(" ADD #p :p" in expression for expression in writes)
    assert table.get("t1").playlists == {"p1", "p2", "p3"} and table.get("t1").status is Status.READY
    assert table.get("t2").playlists == {"p4"}


def test_mark_failed_creates_the_item_from_object_metadata_when_the_crawl_record_is_missing(table: TrackTable) -> None:
    fallback = TrackRecord(track_id="t9", source=Source.LOCAL, title="From metadata")
    table.mark_failed("t9", "audio is silent", fallback=fallback)
    stored = table.get("t9")
    assert stored.status is Status.FAILED and stored.error == "audio is silent" and stored.title == "From metadata"


def test_audio_store_reports_missing_objects_as_none() -> None:
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="audio")
        store = AudioStore("audio", boto3.client("s3"))
        record = TrackRecord(track_id="t1", source=Source.LOCAL, title="x")
        key = store.put_preview(record, "mp3", b"ID3", "audio/mpeg")
        assert store.get(key).data == b"ID3" and store.head(key).size == 3
        assert store.head(key).metadata["title"] == "x"
        store.delete(key)
        assert store.get(key) is None and store.head(key) is None
