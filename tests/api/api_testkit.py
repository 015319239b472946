"""Helpers for the API's tests: index bundles built with Annoy as the annoy_service builds them, fakes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from catalog.bundle import LatestPointer, Manifest, sha256_file
from catalog.keys import new_index_version
from catalog.model import MODEL_ID
from catalog.records import utc_now_iso

DIM = 16
N_TREES = 10
# Large enough that Annoy visits every item of a test index: results are exact.
SEARCH_K = 100_000
MODEL = MODEL_ID


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
        {
            "title": f"Song {i}",
            "artists": (artists[i] if artists else [f"Artist {i}"]),
            "album": f"Album {i // 3}",
            "source": "spotify",
            "preview_source": "deezer" if i % 2 else "spotify",
            "tags": {"rock": 0.5, "guitar": 0.25},
        }
        for i in range(len(track_ids))
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
    )
    return manifest, ann_path


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclasses.dataclass(frozen=True)
class FakeIngestOutcome:
    """Same fields as crawler.pipeline.IngestOutcome."""

    track_id: str
    status: str
    track_status: str | None
    message: str


FAKE_INGEST_OUTCOMES = (
    ("queued", None),
    ("known", "ready"),
    ("known", "pending"),
    ("known", "failed"),
    ("no_preview", None),
    ("not_found", None),
)


def fake_ingest(track_id: str) -> FakeIngestOutcome:
    """Every outcome the crawler can give, chosen by the id so that answers are repeatable."""
    status, track_status = FAKE_INGEST_OUTCOMES[sum(track_id.encode()) % len(FAKE_INGEST_OUTCOMES)]
    return FakeIngestOutcome(track_id, status, track_status, f"fake crawler: {status}")
