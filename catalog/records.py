"""The Tracks table item layout (ARCHITECTURE.md, "Keys and records").

Embeddings are stored as Binary: little-endian float32, L2-normalised. They are
never stored as lists of numbers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.descriptors import Descriptors
from catalog.keys import validate_track_id

EMBEDDING_DTYPE = np.dtype("<f4")
TAG_DECIMALS = 4


class Status(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class Source(enum.StrEnum):
    """The service the catalogue entry was first reached through (its id's namespace)."""

    SPOTIFY = "spotify"
    DEEZER = "deezer"
    LOCAL = "local"


# Record attribute -> key in ``refs`` (TrackMeta.refs): the track's id in each service.
REF_ATTRIBUTES = {"spotify_id": "spotify", "deezer_id": "deezer"}


class PreviewSource(enum.StrEnum):
    SPOTIFY = "spotify"
    DEEZER = "deezer"
    FILE = "file"


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def l2_normalise(vector: npt.ArrayLike) -> npt.NDArray[np.float32]:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("embedding must be a non-empty vector of finite numbers")
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        raise ValueError("embedding has zero length and cannot be normalised")
    return (v / norm).astype(np.float32)


def encode_embedding(vector: npt.ArrayLike) -> bytes:
    """L2-normalise and pack as little-endian float32 bytes."""
    return l2_normalise(vector).astype(EMBEDDING_DTYPE).tobytes()


def decode_embedding(data: bytes, dim: int | None = None) -> npt.NDArray[np.float32]:
    if len(data) % EMBEDDING_DTYPE.itemsize:
        raise ValueError(f"embedding has {len(data)} bytes, not a whole number of float32 values")
    vector = np.frombuffer(data, dtype=EMBEDDING_DTYPE).astype(np.float32)
    if dim is not None and vector.size != dim:
        raise ValueError(f"embedding has {vector.size} values, expected dim {dim}")
    return vector


def _plain(value: Any) -> Any:
    """DynamoDB resource values (Decimal, Binary, set) to plain Python."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "value") and isinstance(value.value, (bytes, bytearray)):
        return bytes(value.value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class TrackRecord:
    """One Tracks item. Optional fields are left out of the item when empty."""

    track_id: str
    source: Source
    status: Status = Status.PENDING
    title: str = ""
    artists: list[str] = field(default_factory=list)
    album: str = ""
    isrc: str = ""
    duration_ms: int | None = None
    playlists: set[str] = field(default_factory=set)
    preview_source: PreviewSource | None = None
    audio_key: str = ""
    # Local files only: the absolute path the file was crawled from. The API serves it for listening
    # in the local stack, and only after checking that the bytes still hash to the track id.
    local_path: str = ""
    # Local files only, opt-in (KEEP_LOCAL_PREVIEWS): a copy kept for listening at listen/{id}.{ext},
    # outside previews/ so that the extractor neither sees nor deletes it.
    listen_key: str = ""
    embedding: bytes | None = None
    model: str = ""
    dim: int | None = None
    tags: dict[str, float] = field(default_factory=dict)
    # Absent on items extracted before descriptors existed; filled when their audio is next extracted.
    descriptors: Descriptors | None = None
    error: str = ""
    crawled_at: str = ""
    extracted_at: str = ""
    # PUT /tracks/{trackId} asked for it at this instant (ISO 8601 UTC); crawled_at stays empty until crawled.
    requested_at: str = ""
    # The same recording's id in each service (one catalogue entry per ISRC): the Deezer id
    # lets a preview, whose signed URL expires, be resolved again for extraction or playback.
    spotify_id: str = ""
    deezer_id: str = ""

    def __post_init__(self) -> None:
        validate_track_id(self.track_id)
        self.source = Source(self.source)
        self.status = Status(self.status)
        if self.preview_source is not None:
            self.preview_source = PreviewSource(self.preview_source)

    @property
    def refs(self) -> dict[str, str]:
        """{"spotify": "...", "deezer": "3135556"}: the services this recording was reached through."""
        return {key: getattr(self, attr) for attr, key in REF_ATTRIBUTES.items() if getattr(self, attr)}

    def vector(self) -> npt.NDArray[np.float32] | None:
        return None if self.embedding is None else decode_embedding(self.embedding, self.dim)

    def to_item(self) -> dict[str, Any]:
        """The item as boto3's DynamoDB resource layer takes it."""
        item: dict[str, Any] = {
            "track_id": self.track_id,
            "source": self.source.value,
            "status": self.status.value,
        }
        optional: dict[str, Any] = {
            "title": self.title,
            "artists": list(self.artists),
            "album": self.album,
            "isrc": self.isrc,
            "duration_ms": self.duration_ms,
            "playlists": set(self.playlists),
            "preview_source": self.preview_source.value if self.preview_source else None,
            "audio_key": self.audio_key,
            "local_path": self.local_path,
            "listen_key": self.listen_key,
            "embedding": self.embedding,
            "model": self.model,
            "dim": self.dim,
            "tags": tags_to_item(self.tags),
            "descriptors": self.descriptors.to_item() if self.descriptors else None,
            "error": self.error,
            "crawled_at": self.crawled_at,
            "extracted_at": self.extracted_at,
            "requested_at": self.requested_at,
            "spotify_id": self.spotify_id,
            "deezer_id": self.deezer_id,
        }
        for name, value in optional.items():
            if value is None or (isinstance(value, (str, list, set, dict, bytes)) and not value):
                continue
            item[name] = value
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> TrackRecord:
        plain = {k: _plain(v) for k, v in item.items()}
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in plain.items() if k in known}
        values["artists"] = list(values.get("artists", []))
        values["playlists"] = set(values.get("playlists", set()))
        values["tags"] = {k: float(v) for k, v in values.get("tags", {}).items()}
        if values.get("descriptors") is not None:
            values["descriptors"] = Descriptors.from_json(values["descriptors"])
        return cls(**values)


def tags_to_item(tags: Mapping[str, float]) -> dict[str, Decimal]:
    """Tag probabilities as DynamoDB numbers (Decimal, rounded: floats are not accepted)."""
    return {str(k): Decimal(str(round(float(v), TAG_DECIMALS))) for k, v in tags.items()}
