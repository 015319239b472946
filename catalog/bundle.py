"""The index bundle: index/{version}/tracks.ann + manifest.json, and index/LATEST.json.

The annoy_service writes it, the api reads it; this module is the one place
that says what is inside.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.keys import ann_key, manifest_key
from catalog.records import TrackRecord

METRIC = "angular"
BUNDLE_FORMAT = 1
# A bundle carries only each track's strongest tags: all 50 musicnn tags for every track
# would multiply its size for no use in a results list.
META_TOP_TAGS = 5
PROJECTION_DIMS = 2
# The 2-D map's PCA basis is fitted on at most this many vectors (a random sample, fixed seed):
# two principal axes are stable long before 1M vectors, and the SVD stays seconds long.
PROJECTION_FIT_MAX_ITEMS = 50_000
PROJECTION_SEED = 0


class BundleError(ValueError):
    """A bundle that must not be served: bad checksum, dim, or shape."""


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class TrackMeta:
    """What a bundle carries per track: everything a response shows, nothing it does not.

    Built from the Tracks record by :meth:`from_record` only, so the builder (from a
    table scan or a stream image) and every reader agree on it.
    """

    track_id: str
    title: str = ""
    artists: tuple[str, ...] = ()
    album: str = ""
    isrc: str = ""
    duration_ms: int | None = None
    source: str = ""
    preview_source: str | None = None
    tags: dict[str, float] = field(default_factory=dict)
    descriptors: dict[str, Any] | None = None
    refs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: TrackRecord) -> TrackMeta:
        top_tags = sorted(record.tags.items(), key=lambda kv: (-kv[1], kv[0]))[:META_TOP_TAGS]
        return cls(
            track_id=record.track_id,
            title=record.title,
            artists=tuple(record.artists),
            album=record.album,
            isrc=record.isrc,
            duration_ms=record.duration_ms,
            source=record.source.value,
            preview_source=record.preview_source.value if record.preview_source else None,
            tags=dict(top_tags),
            descriptors=record.descriptors.to_json() if record.descriptors else None,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["artists"] = list(self.artists)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackMeta:
        try:
            values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            values["artists"] = tuple(str(a) for a in values.get("artists") or ())
            values["tags"] = {str(k): float(v) for k, v in (values.get("tags") or {}).items()}
            values["refs"] = {str(k): str(v) for k, v in (values.get("refs") or {}).items()}
            return cls(**values)
        except (TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"track metadata is not valid: {exc}") from exc


@dataclass(frozen=True)
class Projection:
    """The 2-D map's PCA basis: ``(v - mean) @ components.T`` places a searched-space vector."""

    mean: npt.NDArray[np.float32]
    components: npt.NDArray[np.float32]  # PROJECTION_DIMS x dim

    @classmethod
    def fit(cls, vectors: npt.NDArray[np.float32]) -> Projection:
        count, dim = vectors.shape
        if count > PROJECTION_FIT_MAX_ITEMS:
            rows = np.random.default_rng(PROJECTION_SEED).choice(count, PROJECTION_FIT_MAX_ITEMS, replace=False)
            vectors = vectors[np.sort(rows)]
        mean = vectors.mean(axis=0, dtype=np.float64)
        _, _, vt = np.linalg.svd(vectors - mean, full_matrices=False)
        components = np.zeros((PROJECTION_DIMS, dim), np.float64)
        components[: min(PROJECTION_DIMS, vt.shape[0])] = vt[:PROJECTION_DIMS]
        # SVD signs are arbitrary: fix them so the same data always draws the same map.
        signs = np.where(components[np.arange(PROJECTION_DIMS), np.abs(components).argmax(axis=1)] < 0, -1.0, 1.0)
        return cls(mean.astype(np.float32), (components * signs[:, None]).astype(np.float32))

    def apply(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return ((np.atleast_2d(vectors) - self.mean) @ self.components.T).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "components": self.components.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], dim: int) -> Projection:
        try:
            mean = np.asarray(data["mean"], np.float32)
            components = np.asarray(data["components"], np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"projection is not valid: {exc}") from exc
        if mean.shape != (dim,) or components.shape != (PROJECTION_DIMS, dim):
            raise BundleError(f"projection shapes {mean.shape}, {components.shape} do not fit dim {dim}")
        return cls(mean, components)


IDENTITY_TRANSFORM = "identity"


@dataclass(frozen=True)
class Transform:
    """The catalogue-level transform from a raw model embedding to the searched space.

    Named and versioned so that a reader can refuse one it does not know. Identity
    (then L2 normalisation) until a fitted one (whitening) is added here; the bundle's
    raw vectors stay as the model gave them, so a transform can be refitted at compaction.
    """

    name: str = IDENTITY_TRANSFORM
    version: int = 1

    def validate(self) -> None:
        if (self.name, self.version) != (IDENTITY_TRANSFORM, 1):
            raise BundleError(f"unknown catalogue transform {self.name!r} version {self.version}")

    def apply(self, raw: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Rows (or one vector) of raw embeddings → unit vectors in the searched space."""
        vectors = np.asarray(raw, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transform:
        try:
            transform = cls(name=str(data.get("name", IDENTITY_TRANSFORM)), version=int(data.get("version", 1)))
        except (TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"transform is not valid: {exc}") from exc
        transform.validate()
        return transform


@dataclass
class Manifest:
    """What a reader needs to serve an index without reading the table.

    ``track_ids[i]`` is Annoy item ``i``; ``tracks[i]`` holds its metadata
    (:class:`TrackMeta` as a dict).
    """

    version: str
    created_at: str
    model: str
    dim: int
    n_trees: int
    search_k: int
    count: int
    ann_sha256: str
    ann_bytes: int
    track_ids: list[str]
    tracks: list[dict[str, Any]]
    metric: str = METRIC
    skipped: dict[str, int] = field(default_factory=dict)
    format: int = BUNDLE_FORMAT
    # SHA-256 of what the index was built from (model, dim, settings, ids, embeddings):
    # the builder skips a rebuild whose input matches LATEST's, so redelivered batches publish nothing new.
    content_sha256: str = ""
    projection: dict[str, Any] = field(default_factory=dict)
    transform: dict[str, Any] = field(default_factory=lambda: Transform().to_dict())

    def metas(self) -> list[TrackMeta]:
        return [TrackMeta.from_dict({**entry, "track_id": tid}) for tid, entry in zip(self.track_ids, self.tracks, strict=True)]

    def validate(self) -> None:
        if self.metric != METRIC:
            raise BundleError(f"bundle metric is {self.metric!r}, expected {METRIC!r}")
        if self.dim <= 0:
            raise BundleError(f"bundle dim must be positive, got {self.dim}")
        if not (len(self.track_ids) == len(self.tracks) == self.count):
            raise BundleError(
                f"bundle count {self.count} does not match {len(self.track_ids)} ids and {len(self.tracks)} tracks"
            )
        if len(set(self.track_ids)) != len(self.track_ids):
            raise BundleError("bundle lists a track id twice")

    @property
    def ann_key(self) -> str:
        return ann_key(self.version)

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.version)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        try:
            raw = json.loads(data)
            known = set(cls.__dataclass_fields__)
            manifest = cls(**{k: v for k, v in raw.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise BundleError(f"manifest is not valid: {exc}") from exc
        manifest.validate()
        return manifest


@dataclass
class LatestPointer:
    """index/LATEST.json: the only mutable key of the index bucket, written last."""

    version: str
    created_at: str
    model: str
    dim: int
    count: int
    manifest_key: str
    ann_key: str
    ann_sha256: str
    content_sha256: str = ""

    @classmethod
    def for_manifest(cls, manifest: Manifest) -> LatestPointer:
        return cls(
            version=manifest.version,
            created_at=manifest.created_at,
            model=manifest.model,
            dim=manifest.dim,
            count=manifest.count,
            manifest_key=manifest.manifest_key,
            ann_key=manifest.ann_key,
            ann_sha256=manifest.ann_sha256,
            content_sha256=manifest.content_sha256,
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> LatestPointer:
        try:
            raw = json.loads(data)
            return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        except (TypeError, ValueError) as exc:
            raise BundleError(f"LATEST.json is not valid: {exc}") from exc
