"""What recorded Tracks stream records change in the index, read from the records alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from annoy_helpers import MODEL, load_event
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

from annoy_service.changes import Remove, StreamConfigError, Upsert, indexed_entry, record_change, stream_changes


def _records(name: str) -> list:
    return list(DynamoDBStreamEvent(load_event(name)).records)


@pytest.mark.parametrize(
    ("event", "change"),
    [
        ("annoy_stream_mark_ready", Upsert),
        ("annoy_stream_ready_reextracted", Upsert),
        ("annoy_stream_remove_ready", Remove),
        ("annoy_stream_ready_other_model", Remove),  # leaves the current model's index
        ("annoy_stream_insert_pending", None),
        ("annoy_stream_insert_pending_local", None),
        ("annoy_stream_mark_failed", None),  # pending to failed: it was never indexed
        ("annoy_stream_ready_playlist_added", None),  # playlists are not part of TrackMeta
        ("annoy_stream_remove_other_model", None),
    ],
)
def test_recorded_stream_record_becomes_the_right_change(event: str, change: type | None) -> None:
    (record,) = _records(event)
    got = record_change(record, MODEL)
    assert (type(got) if got is not None else None) is change
    if got is not None:
        assert got.track_id == record.dynamodb.keys["track_id"]


def test_upsert_carries_the_new_images_embedding_and_metadata() -> None:
    (record,) = _records("annoy_stream_mark_ready")
    change = record_change(record, MODEL)
    assert isinstance(change, Upsert) and change.was_indexed is False
    assert change.meta.title == "Never Gonna Give You Up" and change.meta.artists == ("Rick Astley",)
    assert change.vector.shape == (200,) and abs(float(np.linalg.norm(change.vector)) - 1.0) < 1e-5
    (again,) = _records("annoy_stream_ready_reextracted")
    assert record_change(again, MODEL).was_indexed is True


def test_other_models_changes_matter_only_to_their_own_index() -> None:
    other = "musicnn-mtt-v1"
    assert isinstance(record_change(_records("annoy_stream_ready_other_model")[0], other), Upsert)
    assert isinstance(record_change(_records("annoy_stream_remove_other_model")[0], other), Remove)
    assert record_change(_records("annoy_stream_mark_ready")[0], other) is None


def test_batch_keeps_stream_order() -> None:
    records = _records("annoy_stream_mark_ready") + _records("annoy_stream_ready_playlist_added") + _records(
        "annoy_stream_remove_ready"
    )
    assert [type(c) for c in stream_changes(records, MODEL)] == [Upsert, Remove]


def test_a_ready_image_with_an_unusable_embedding_is_not_indexed() -> None:
    event = copy.deepcopy(load_event("annoy_stream_ready_reextracted"))
    event["Records"][0]["dynamodb"]["NewImage"]["embedding"]["B"] = "not base64!"
    (record,) = DynamoDBStreamEvent(event).records
    assert indexed_entry(record.dynamodb.new_image, MODEL) is None
    assert isinstance(record_change(record, MODEL), Remove)  # the old, usable one leaves the index


def test_keys_only_stream_is_refused_with_a_clear_error() -> None:
    event = copy.deepcopy(load_event("annoy_stream_mark_ready"))
    stream = event["Records"][0]["dynamodb"]
    stream["StreamViewType"] = "KEYS_ONLY"
    del stream["NewImage"], stream["OldImage"]
    (record,) = DynamoDBStreamEvent(event).records
    with pytest.raises(StreamConfigError, match="NEW_AND_OLD_IMAGES"):
        record_change(record, MODEL)
