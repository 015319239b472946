"""Reading the ready embeddings of one model from Tracks and building the Annoy index over them."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from annoy import AnnoyIndex
from boto3.dynamodb.conditions import Attr

from catalog.bundle import METRIC, TrackMeta
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
# Fixed so that the same input builds the same file (Annoy picks split points at random).
ANNOY_SEED = 42
# Above this many items Annoy writes the index straight to its file while building, so
# a Lambda's memory holds the vectors once (numpy) instead of twice (numpy + Annoy heap).
ON_DISK_BUILD_MIN_ITEMS = 200_000
SCAN_SEGMENTS = 4
PROGRESS_EVERY_ITEMS = 10_000

# Attributes the index and the manifest need; "status", "source" and others are
# DynamoDB reserved words, hence placeholders.
_PROJECTED = (
    "track_id", "status", "source", "title", "artists", "album", "isrc", "duration_ms",
    "preview_source", "embedding", "model", "dim", "tags", "descriptors",
)

Progress = Callable[[str], None]


class ReadyEmbeddings(NamedTuple):
    """The index's input: ``ids[i]`` has vector ``vectors[i]`` and manifest entry ``metadata[i]``."""

    ids: list[str]
    vectors: npt.NDArray[np.float32]
    metadata: list[dict[str, Any]]
    skipped: dict[str, int]


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
        metadata=[TrackMeta.from_record(record).to_dict() for record, _ in chosen],
        skipped=dict(skipped),
    )


def search_k_for(count: int) -> int:
    """The default search_k of an index of ``count`` items (see SEARCH_K)."""
    return max(SEARCH_K, count // SEARCH_K_ITEMS_PER_NODE)


def content_fingerprint(model_id: str, ids: list[str], vectors: npt.NDArray[np.float32], n_trees: int, search_k: int) -> str:
    """SHA-256 of everything an index is built from; equal fingerprints mean equal indexes."""
    digest = hashlib.sha256()
    digest.update(f"{model_id}\n{vectors.shape}\n{n_trees}\n{search_k}\n{ANNOY_SEED}\n".encode())
    digest.update("\n".join(ids).encode())
    digest.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
    return digest.hexdigest()


def build_index(
    vectors: npt.NDArray[np.float32],
    n_trees: int,
    path: str | Path,
    on_disk: bool | None = None,
    progress: Progress | None = None,
) -> AnnoyIndex:
    """Build an angular Annoy index of ``vectors`` (item ``i`` = row ``i``) and save it at ``path``.

    ``on_disk=None`` builds on disk from ON_DISK_BUILD_MIN_ITEMS items up. The returned
    index is loaded (memory-mapped from ``path``) and ready for queries.
    """
    if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] == 0:
        raise ValueError(f"need a non-empty 2-d array of vectors, got shape {vectors.shape}")
    if n_trees < 1:
        raise ValueError(f"n_trees must be at least 1, got {n_trees}")
    count, dim = vectors.shape
    if on_disk is None:
        on_disk = count >= ON_DISK_BUILD_MIN_ITEMS
    index = AnnoyIndex(dim, METRIC)
    index.set_seed(ANNOY_SEED)
    if on_disk:
        index.on_disk_build(str(path))
    for i, vector in enumerate(vectors):
        index.add_item(i, vector)
        if progress and (i + 1) % (10 * PROGRESS_EVERY_ITEMS) == 0:
            progress(f"added {i + 1:,} of {count:,} vectors")
    if progress:
        progress(f"building {n_trees} trees over {count:,} vectors (dim {dim}, {'on disk' if on_disk else 'in memory'})")
    index.build(n_trees, n_jobs=-1)
    if not on_disk:
        index.save(str(path))
    return index
