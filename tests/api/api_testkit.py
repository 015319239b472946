"""Helpers for the API's tests: index bundles written by catalog.bundle's writer, fakes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from api.served import ServedIndex
from catalog.bundle import BaseManifest, BaseReader, BaseRows, Delta, LatestPointer, TrackMeta, write_base
from catalog.keys import new_index_version
from catalog.model import MODEL_ID
from catalog.records import utc_now_iso

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


def as_served(vectors: np.ndarray) -> np.ndarray:
    """Raw vectors as a published index serves them: at the base's float16 precision, unit length."""
    from catalog.bundle import at_base_precision

    stored = at_base_precision(vectors)
    return stored / np.linalg.norm(stored, axis=-1, keepdims=True)


@dataclasses.dataclass
class PublishedBundle:
    manifest: BaseManifest
    pointer: LatestPointer
    vectors: np.ndarray
    track_ids: list[str]


def sample_meta(track_id: str, i: int, artists: list[str] | None = None) -> TrackMeta:
    return TrackMeta(
        track_id=track_id,
        title=f"Song {i}",
        artists=tuple(artists if artists is not None else [f"Artist {i}"]),
        album=f"Album {i // 3}",
        source="spotify",
        preview_source="deezer" if i % 2 else "spotify",
        tags={"rock": 0.5, "guitar": 0.25},
    )


def build_bundle(
    directory: Path,
    track_ids: list[str],
    vectors: np.ndarray,
    *,
    artists: list[list[str]] | None = None,
    descriptors: list[dict[str, Any] | None] | None = None,
    version: str | None = None,
    metas: list[TrackMeta] | None = None,
) -> BaseManifest:
    """A base written by the bundle's one writer, as the annoy_service writes it (``metas`` replace the made-up ones)."""
    rows = [meta.to_json() for meta in metas] if metas is not None else [
        dataclasses.replace(sample_meta(track_id, i, artists[i] if artists else None),
                            descriptors=descriptors[i] if descriptors else None).to_json()
        for i, track_id in enumerate(track_ids)
    ]
    return write_base(
        directory,
        [BaseRows(list(track_ids), rows, np.asarray(vectors, np.float32))],
        version=version or new_index_version(),
        created_at=utc_now_iso(),
        model=MODEL,
        n_trees=N_TREES,
        search_k=SEARCH_K,
    )


def open_bundle(directory: Path, manifest: BaseManifest, delta: Delta | None = None) -> ServedIndex:
    """What the API serves from a base written in ``directory`` (and a delta)."""
    version = manifest.version if delta is None else f"{manifest.version}+{delta.sequence}"
    return ServedIndex(BaseReader.open(directory, manifest), delta, version)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


