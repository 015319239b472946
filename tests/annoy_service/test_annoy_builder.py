"""Reading ready embeddings from Tracks and building the index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from annoy import AnnoyIndex
from annoy_helpers import DIM, MODEL, Stack

from annoy_service.builder import (
    N_TREES,
    SEARCH_K,
    build_index,
    content_fingerprint,
    load_ready_embeddings,
    search_k_for,
)
from bench.index import embedding_like_vectors, exact_neighbours
from catalog.bundle import META_TOP_TAGS
from catalog.records import decode_embedding

RECALL_ITEMS = 10_000
RECALL_QUERIES = 300


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
    assert ready.metadata[0]["title"] == "title of t00"
    assert set(ready.metadata[0]) >= {"title", "artists", "album", "source", "preview_source", "tags"}


def test_index_dim_is_the_commonest_dim_in_the_data(stack: Stack) -> None:
    for i in range(3):
        stack.put_ready(f"small{i}", dim=8)
    stack.put_ready("big", dim=DIM)
    ready = load_ready_embeddings(stack.table, MODEL, segments=1)
    assert ready.vectors.shape == (3, 8)
    assert ready.skipped == {"other_dim": 1}


def test_manifest_metadata_keeps_only_the_strongest_tags(stack: Stack) -> None:
    tags = {f"tag{i}": i / 10 for i in range(9)}
    stack.put_ready("tagged", tags=tags)
    (entry,) = load_ready_embeddings(stack.table, MODEL).metadata
    assert list(entry["tags"]) == [f"tag{i}" for i in range(8, 8 - META_TOP_TAGS, -1)]


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


def test_fingerprint_changes_with_any_embedding_or_id_but_not_otherwise() -> None:
    vectors = embedding_like_vectors(20, seed=1)
    ids = [f"t{i}" for i in range(20)]
    base = content_fingerprint(MODEL, ids, vectors, N_TREES, SEARCH_K)
    assert base == content_fingerprint(MODEL, list(ids), vectors.copy(), N_TREES, SEARCH_K)
    changed = vectors.copy()
    changed[7, 3] += 1e-3
    assert base != content_fingerprint(MODEL, ids, changed, N_TREES, SEARCH_K)
    assert base != content_fingerprint(MODEL, ids[:-1] + ["other"], vectors, N_TREES, SEARCH_K)
    assert base != content_fingerprint("musicnn-mtt-v1", ids, vectors, N_TREES, SEARCH_K)


def test_on_disk_and_in_memory_builds_give_loadable_files_that_find_each_item_first(tmp_path: Path) -> None:
    vectors = embedding_like_vectors(2000, seed=3)
    for on_disk in (False, True):
        path = tmp_path / f"{on_disk}.ann"
        build_index(vectors, 10, path, on_disk=on_disk).unload()
        index = AnnoyIndex(DIM, "angular")
        index.load(str(path))
        assert index.get_n_items() == 2000 and index.get_n_trees() == 10
        assert [index.get_nns_by_item(i, 1)[0] for i in range(0, 2000, 97)] == list(range(0, 2000, 97))


def test_recall_at_10_is_at_least_0_95_against_exact_cosine_search_at_the_chosen_settings(tmp_path: Path) -> None:
    vectors = embedding_like_vectors(RECALL_ITEMS, seed=11)
    queries = np.random.default_rng(2).choice(RECALL_ITEMS, RECALL_QUERIES, replace=False)
    truth = exact_neighbours(vectors, queries)
    index = build_index(vectors, N_TREES, tmp_path / "tracks.ann")
    search_k = search_k_for(RECALL_ITEMS)
    hits = 0
    for i, expected in zip(queries, truth, strict=True):
        found = [j for j in index.get_nns_by_item(int(i), 11, search_k=search_k) if j != i][:10]
        hits += len(set(found) & set(expected.tolist()))
    recall = hits / (10 * RECALL_QUERIES)
    assert recall >= 0.95, f"recall@10 {recall:.3f} at n_trees={N_TREES}, search_k={search_k}"


def test_default_search_k_grows_with_the_index_from_its_floor() -> None:
    assert search_k_for(10) == search_k_for(100_000) == SEARCH_K
    assert search_k_for(1_000_000) == 20_000
