"""The index bundle: index/{version}/tracks.ann + manifest.json, and index/LATEST.json.

The annoy_service writes it, the api reads it; this module is the one place
that says what is inside.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalog.keys import ann_key, manifest_key

METRIC = "angular"
BUNDLE_FORMAT = 1


class BundleError(ValueError):
    """A bundle that must not be served: bad checksum, dim, or shape."""


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Manifest:
    """What a reader needs to serve an index without reading the table.

    ``track_ids[i]`` is Annoy item ``i``; ``tracks[i]`` holds its metadata
    (title, artists, album, source, tags, ...).
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
