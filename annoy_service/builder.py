"""A full read of the ready embeddings of one model from Tracks: recovery, the weekly reconcile, a fresh stack."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from boto3.dynamodb.conditions import Attr

from catalog.bundle import TrackMeta
from catalog.records import Status, TrackRecord
from catalog.storage import TrackTable

# Chosen with bench/index.py (see bench/RESULTS.md, "bench/index.py") on embedding-like 200-d vectors.
# At 100k, 50 trees with search_k 2000 gave recall@10 0.98 at 0.26 ms a query (56x faster
# than exact numpy search); 25 trees lost recall at every search_k (0.91 vs 0.93 at 1000)
# for a 25% smaller file, and 100 trees bought little (0.986 at 2000) for 1.5x the file
# and 1.6x the build time. A fixed
# search_k loses recall as the index grows (0.84 at 1M), so it grows with the item count
# (1M: search_k 20000 gave 0.993 at 3 ms a query, 46x faster than exact search):
# each query inspects at least 1/SEARCH_K_ITEMS_PER_NODE of the items.
N_TREES = 50
SEARCH_K = 2000
SEARCH_K_ITEMS_PER_NODE = 50
SCAN_SEGMENTS = 4
PROGRESS_EVERY_ITEMS = 10_000

# Attributes the index and the manifest need; "status", "source" and others are
# DynamoDB reserved words, hence placeholders.
_PROJECTED = (
    "track_id", "status", "source", "title", "artists", "album", "isrc", "duration_ms",
    "preview_source", "embedding", "model", "dim", "tags", "descriptors", "spotify_id", "deezer_id",
)

Progress = Callable[[str], None]


class ReadyEmbeddings(NamedTuple):
    """A base's input from the table: ``ids[i]`` has raw vector ``vectors[i]`` and TrackMeta ``metas_json[i]``."""

    ids: list[str]
    vectors: npt.NDArray[np.float32]
    metas_json: list[str]
    skipped: dict[str, int]
    scanned: int  # ready Tracks items the scan returned


def _usable_vector(record: TrackRecord) -> npt.NDArray[np.float32] | None:
    if record.embedding is None:
        return None
    try:
        vector = record.vector()
    except ValueError:
        return None
    if vector is None or vector.size == 0 or not np.all(np.isfinite(vector)) or not np.any(vector):
        return None
    return vector


def load_ready_embeddings(
    table: TrackTable,
    model_id: str,
    segments: int = SCAN_SEGMENTS,
    progress: Progress | None = None,
) -> ReadyEmbeddings:
    """Every ready embedding of ``model_id``, sorted by track id.

    The index's dim is the commonest dim among them; items of another model or dim,
    and ready items whose embedding cannot be used, are left out and counted in
    ``skipped``.
    """
    if segments < 1:
        raise ValueError(f"segments must be at least 1, got {segments}")
    names = {f"#p{i}": name for i, name in enumerate(_PROJECTED)}
    scan_args = {
        "FilterExpression": Attr("status").eq(Status.READY.value),
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    lock = threading.Lock()
    scanned = 0

    def scan_segment(segment: int) -> tuple[list[tuple[TrackRecord, npt.NDArray[np.float32]]], Counter[str]]:
        nonlocal scanned
        kept: list[tuple[TrackRecord, npt.NDArray[np.float32]]] = []
        skipped: Counter[str] = Counter()
        for item in table.scan(segment, segments, **scan_args):
            with lock:
                scanned += 1
                if progress and scanned % PROGRESS_EVERY_ITEMS == 0:
                    progress(f"read {scanned:,} ready items")
            try:
                record = TrackRecord.from_item(item)
            except (TypeError, ValueError):
                skipped["invalid_item"] += 1
                continue
            if record.model != model_id:
                skipped["other_model"] += 1
                continue
            vector = _usable_vector(record)
            if vector is None:
                skipped["bad_embedding"] += 1
                continue
            kept.append((record, vector))
        return kept, skipped

    with ThreadPoolExecutor(max_workers=segments) as pool:
        results = list(pool.map(scan_segment, range(segments)))

    skipped: Counter[str] = Counter()
    candidates: list[tuple[TrackRecord, npt.NDArray[np.float32]]] = []
    for kept, segment_skipped in results:
        candidates.extend(kept)
        skipped.update(segment_skipped)
    dims = Counter(vector.size for _, vector in candidates)
    dim = max(dims, key=lambda d: (dims[d], d)) if dims else 0
    chosen = sorted((pair for pair in candidates if pair[1].size == dim), key=lambda pair: pair[0].track_id)
    if len(chosen) < len(candidates):
        skipped["other_dim"] += len(candidates) - len(chosen)
    vectors = np.stack([v for _, v in chosen]).astype(np.float32) if chosen else np.zeros((0, 0), np.float32)
    if progress:
        progress(f"read {scanned:,} ready items: {len(chosen):,} of model {model_id} (dim {dim}), skipped {dict(skipped)}")
    return ReadyEmbeddings(
        ids=[record.track_id for record, _ in chosen],
        vectors=vectors,
        metas_json=[TrackMeta.from_record(record).to_json() for record, _ in chosen],
        skipped=dict(skipped),
        scanned=scanned,
    )


def search_k_for(count: int) -> int:
    """The default search_k of an index of ``count`` items (see SEARCH_K)."""
    return max(SEARCH_K, count // SEARCH_K_ITEMS_PER_NODE)
