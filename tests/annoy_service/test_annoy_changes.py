"""Which recorded Tracks stream records make the index change."""

from __future__ import annotations

import copy

import pytest
from annoy_helpers import MODEL, load_event
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

from annoy_service.changes import StreamConfigError, index_must_change, indexed_embedding, record_changes_index
from catalog.records import decode_embedding


def _records(name: str) -> list:
    return list(DynamoDBStreamEvent(load_event(name)).records)


@pytest.mark.parametrize(
    ("event", "changes"),
    [
        ("annoy_stream_mark_ready", True),
        ("annoy_stream_ready_reextracted", True),
        ("annoy_stream_remove_ready", True),
        ("annoy_stream_ready_other_model", True),  # leaves the current model's index
        ("annoy_stream_insert_pending", False),
        ("annoy_stream_insert_pending_local", False),
        ("annoy_stream_mark_failed", False),
        ("annoy_stream_ready_playlist_added", False),
        ("annoy_stream_remove_other_model", False),
    ],
)
def test_recorded_stream_record_changes_index_only_when_a_ready_embedding_changes(event: str, changes: bool) -> None:
    assert index_must_change(_records(event), MODEL) is changes


def test_other_models_changes_matter_only_to_their_own_index() -> None:
    other = "musicnn-mtt-v1"
    assert index_must_change(_records("annoy_stream_ready_other_model"), other)
    assert index_must_change(_records("annoy_stream_remove_other_model"), other)
    assert not index_must_change(_records("annoy_stream_mark_ready"), other)


def test_batch_changes_index_when_any_record_does() -> None:
    quiet = _records("annoy_stream_insert_pending") + _records("annoy_stream_ready_playlist_added")
    assert not index_must_change(quiet, MODEL)
    assert index_must_change(quiet + _records("annoy_stream_mark_ready"), MODEL)


def test_base64_binary_from_lambda_json_decodes_to_the_stored_embedding() -> None:
    (record,) = _records("annoy_stream_mark_ready")
    embedding = indexed_embedding(record.dynamodb.new_image, MODEL)
    assert embedding is not None
    vector = decode_embedding(embedding, dim=200)
    assert abs(float((vector**2).sum()) - 1.0) < 1e-5


def test_metadata_edit_on_ready_item_keeps_the_embedding_bytes_equal() -> None:
    (record,) = _records("annoy_stream_ready_playlist_added")
    old = indexed_embedding(record.dynamodb.old_image, MODEL)
    assert old is not None and old == indexed_embedding(record.dynamodb.new_image, MODEL)


def test_keys_only_stream_is_refused_with_a_clear_error() -> None:
    event = copy.deepcopy(load_event("annoy_stream_mark_ready"))
    stream = event["Records"][0]["dynamodb"]
    stream["StreamViewType"] = "KEYS_ONLY"
    del stream["NewImage"], stream["OldImage"]
    (record,) = DynamoDBStreamEvent(event).records
    with pytest.raises(StreamConfigError, match="NEW_AND_OLD_IMAGES"):
        record_changes_index(record, MODEL)


def test_embedding_that_is_not_base64_is_refused() -> None:
    event = copy.deepcopy(load_event("annoy_stream_mark_ready"))
    event["Records"][0]["dynamodb"]["NewImage"]["embedding"]["B"] = "not base64!"
    with pytest.raises(ValueError, match="base64"):
        index_must_change(DynamoDBStreamEvent(event).records, MODEL)
