"""The full read of ready embeddings from Tracks (recovery, reconcile, a fresh stack)."""

from __future__ import annotations

import numpy as np
from annoy_helpers import DIM, MODEL, Stack

from annoy_service.builder import SEARCH_K, load_ready_embeddings, search_k_for
from catalog.bundle import META_TOP_TAGS, TrackMeta
from catalog.records import decode_embedding


def test_only_ready_embeddings_of_the_model_and_its_dim_are_loaded_and_the_rest_counted(stack: Stack) -> None:
    stored = {f"t{i:02d}": stack.put_ready(f"t{i:02d}") for i in range(6)}
    stack.put_ready("other-model", model="musicnn-mtt-v1")
    stack.put_ready("other-dim", dim=50)
    stack.put_pending("pending")
    stack.table.mark_failed("pending", "audio could not be decoded")
    stack.put_pending("still-pending")
    stack.table.table.update_item(
        Key={"track_id": "t03"}, UpdateExpression="SET embedding = :e", ExpressionAttributeValues={":e": b"\x00" * 800}
    )
    stored.pop("t03")

    ready = load_ready_embeddings(stack.table, MODEL, segments=3)

    assert ready.ids == sorted(stored)
    assert ready.vectors.shape == (5, DIM) and ready.vectors.dtype == np.float32
    for track_id, vector in zip(ready.ids, ready.vectors, strict=True):
        np.testing.assert_array_equal(vector, decode_embedding(stored[track_id]))
    assert ready.skipped == {"other_model": 1, "other_dim": 1, "bad_embedding": 1}
    assert TrackMeta.from_json(ready.metas_json[0]).title == "title of t00"
    assert ready.scanned == 8  # every ready item, whatever its model or dim


def test_index_dim_is_the_commonest_dim_in_the_data(stack: Stack) -> None:
    for i in range(3):
        stack.put_ready(f"small{i}", dim=8)
    stack.put_ready("big", dim=DIM)
    ready = load_ready_embeddings(stack.table, MODEL, segments=1)
    assert ready.vectors.shape == (3, 8)
    assert ready.skipped == {"other_dim": 1}


def test_bundle_metadata_keeps_only_the_strongest_tags(stack: Stack) -> None:
    tags = {f"tag{i}": i / 10 for i in range(9)}
    stack.put_ready("tagged", tags=tags)
    (entry,) = load_ready_embeddings(stack.table, MODEL).metas_json
    assert list(TrackMeta.from_json(entry).tags) == [f"tag{i}" for i in range(8, 8 - META_TOP_TAGS, -1)]


def test_parallel_scan_segments_read_every_page(stack: Stack) -> None:
    ids = {f"id{i:04d}" for i in range(1300)}
    with stack.table.table.batch_writer() as batch:
        for track_id in ids:
            batch.put_item(Item=stack.ready_item(track_id))
    assert "LastEvaluatedKey" in stack.table.table.scan(), "expected more than one scan page (1 MB each)"
    one = load_ready_embeddings(stack.table, MODEL, segments=1)
    four = load_ready_embeddings(stack.table, MODEL, segments=4)
    assert one.ids == four.ids == sorted(ids)
    np.testing.assert_array_equal(one.vectors, four.vectors)


def test_default_search_k_grows_with_the_index_from_its_floor() -> None:
    assert search_k_for(10) == search_k_for(100_000) == SEARCH_K
    assert search_k_for(1_000_000) == 20_000
