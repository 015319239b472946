"""Helpers for the API's tests: index bundles built with Annoy as the annoy_service builds them, fakes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from annoy import AnnoyIndex

from catalog.bundle import LatestPointer, Manifest, Projection, TrackMeta, sha256_file
from catalog.ingest import IngestOutcome, IngestStatus
from catalog.keys import new_index_version
from catalog.model import MODEL_ID
from catalog.records import Status, utc_now_iso

DIM = 16
N_TREES = 10
# Large enough that Annoy visits every item of a test index: results are exact.
SEARCH_K = 100_000
MODEL = MODEL_ID


def override(app: Any, dependency: Callable[..., Any], value: Any) -> None:
    """Serve ``value`` wherever a route depends on ``dependency``.

    Powertools resolves the original's own dependencies and passes them to the override,
    so the override takes and ignores them.
    """
    app.dependency_overrides[dependency] = lambda **_: value


def spotify_like_id(i: int) -> str:
    """A 22-character base62 id, distinct per i."""
    return f"T{i:021d}"


def clustered_vectors(n: int, dim: int = DIM, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@dataclasses.dataclass
class PublishedBundle:
    manifest: Manifest
    pointer: LatestPointer
    vectors: np.ndarray


def build_bundle(
    directory: Path,
    track_ids: list[str],
    vectors: np.ndarray,
    *,
    artists: list[list[str]] | None = None,
    version: str | None = None,
) -> tuple[Manifest, Path]:
    """tracks.ann + its Manifest, built the way the annoy_service publishes them."""
    dim = int(vectors.shape[1])
    index = AnnoyIndex(dim, "angular")
    for i, vector in enumerate(vectors):
        index.add_item(i, vector.tolist())
    index.build(N_TREES)
    directory.mkdir(parents=True, exist_ok=True)
    ann_path = directory / "tracks.ann"
    index.save(str(ann_path))
    index.unload()
    version = version or new_index_version()
    tracks = [
        TrackMeta(
            track_id=track_id,
            title=f"Song {i}",
            artists=tuple(artists[i] if artists else [f"Artist {i}"]),
            album=f"Album {i // 3}",
            source="spotify",
            preview_source="deezer" if i % 2 else "spotify",
            tags={"rock": 0.5, "guitar": 0.25},
        ).to_dict()
        for i, track_id in enumerate(track_ids)
    ]
    manifest = Manifest(
        version=version,
        created_at=utc_now_iso(),
        model=MODEL,
        dim=dim,
        n_trees=N_TREES,
        search_k=SEARCH_K,
        count=len(track_ids),
        ann_sha256=sha256_file(ann_path),
        ann_bytes=ann_path.stat().st_size,
        track_ids=list(track_ids),
        tracks=tracks,
        projection=Projection.fit(vectors).to_dict(),
    )
    return manifest, ann_path


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


FAKE_INGEST_OUTCOMES = (
    (IngestStatus.QUEUED, None),
    (IngestStatus.KNOWN, Status.READY),
    (IngestStatus.KNOWN, Status.PENDING),
    (IngestStatus.KNOWN, Status.FAILED),
    (IngestStatus.NO_PREVIEW, None),
    (IngestStatus.NOT_FOUND, None),
)


def fake_ingest(track_id: str) -> IngestOutcome:
    """Every outcome the crawler can give, chosen by the id so that answers are repeatable."""
    status, track_status = FAKE_INGEST_OUTCOMES[sum(track_id.encode()) % len(FAKE_INGEST_OUTCOMES)]
    return IngestOutcome(track_id, status, track_status, f"fake crawler: {status}")
