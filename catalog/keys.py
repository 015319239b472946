"""Track ids and the S3 keys derived from them."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from urllib.parse import unquote_plus

TRACK_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_TRACK_ID_RE = re.compile(TRACK_ID_PATTERN)
LOCAL_ID_PREFIX = "local-"
LOCAL_ID_HEX_CHARS = 20
# Tracks reached only through Deezer: "dz-" + Deezer's numeric track id (e.g. dz-3135556).
DEEZER_ID_PREFIX = "dz-"
SPOTIFY_TRACK_ID_PATTERN = r"^[0-9A-Za-z]{22}$"
DEEZER_TRACK_ID_PATTERN = r"^dz-[1-9][0-9]{0,18}$"
# The ids PUT /tracks/{trackId} can ingest: a Spotify track id or a Deezer-only id.
INGESTABLE_ID_PATTERN = r"^(?:[0-9A-Za-z]{22}|dz-[1-9][0-9]{0,18})$"
_DEEZER_TRACK_ID_RE = re.compile(DEEZER_TRACK_ID_PATTERN)

PREVIEW_PREFIX = "previews/"
# Copies of local files kept for listening (opt-in): outside previews/, so no extraction is triggered.
LISTEN_PREFIX = "listen/"
INDEX_PREFIX = "index/"
LATEST_KEY = f"{INDEX_PREFIX}LATEST.json"
ANN_FILENAME = "tracks.ann"
MANIFEST_FILENAME = "manifest.json"
# The raw vectors of a base: float16 from bundle format 3 on, float32 in format 2 (still read).
VECTORS_FILENAME = "vectors.f16"
VECTORS_FILENAME_F32 = "vectors.f32"
META_FILENAME = "meta.sqlite"
SPACE_FILENAME = "space.npz"
DELTAS_DIRNAME = "deltas"
DELTA_SEQUENCE_DIGITS = 8

AUDIO_EXTENSIONS = ("mp3", "ogg", "flac", "wav", "m4a")


class InvalidTrackIdError(ValueError):
    """A string that is not a track id per ARCHITECTURE.md."""


def is_track_id(value: object) -> bool:
    return isinstance(value, str) and _TRACK_ID_RE.fullmatch(value) is not None


def validate_track_id(value: object) -> str:
    if not is_track_id(value):
        raise InvalidTrackIdError(
            f"track id must match {TRACK_ID_PATTERN} (letters, digits, '_' or '-', 1 to 64 characters)"
        )
    return value  # type: ignore[return-value]


def local_track_id(audio: bytes) -> str:
    """Stable id of a local file: 'local-' + the first 20 hex chars of SHA-256 of its bytes."""
    return LOCAL_ID_PREFIX + hashlib.sha256(audio).hexdigest()[:LOCAL_ID_HEX_CHARS]


def deezer_track_id(deezer_id: int | str) -> str:
    """The catalogue id of a track known only through Deezer."""
    return validate_track_id(f"{DEEZER_ID_PREFIX}{int(deezer_id)}")


def deezer_number(track_id: str) -> int | None:
    """Deezer's track id inside a ``dz-`` id; None for any other id."""
    return int(track_id[len(DEEZER_ID_PREFIX):]) if _DEEZER_TRACK_ID_RE.fullmatch(track_id) else None


def preview_key(track_id: str, ext: str) -> str:
    validate_track_id(track_id)
    ext = ext.lower().lstrip(".")
    if ext not in AUDIO_EXTENSIONS:
        raise ValueError(f"unsupported audio extension {ext!r}; expected one of {AUDIO_EXTENSIONS}")
    return f"{PREVIEW_PREFIX}{track_id}.{ext}"


def listen_key(track_id: str, ext: str) -> str:
    """listen/{track_id}.{ext}: the same rules as a preview key, under its own prefix."""
    return LISTEN_PREFIX + preview_key(track_id, ext)[len(PREVIEW_PREFIX):]


def parse_preview_key(key: str) -> tuple[str, str]:
    """(track_id, ext) of a previews/ key; accepts the URL-encoded form found in S3 events."""
    key = unquote_plus(key)
    if not key.startswith(PREVIEW_PREFIX):
        raise ValueError(f"not a preview key: {key!r}")
    stem, dot, ext = key[len(PREVIEW_PREFIX):].rpartition(".")
    if not dot or ext.lower() not in AUDIO_EXTENSIONS:
        raise ValueError(f"preview key has no supported audio extension: {key!r}")
    return validate_track_id(stem), ext.lower()


def new_index_version(now: datetime | None = None) -> str:
    """A unique version string whose lexical order is its time order (UTC, microseconds)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def bundle_prefix(version: str) -> str:
    return f"{INDEX_PREFIX}{version}/"


def manifest_key(version: str) -> str:
    return bundle_prefix(version) + MANIFEST_FILENAME


def deltas_prefix(base_version: str) -> str:
    return f"{bundle_prefix(base_version)}{DELTAS_DIRNAME}/"


def delta_key(base_version: str, sequence: int) -> str:
    """Zero-padded, so that listing a base's deltas returns them in sequence order."""
    return f"{deltas_prefix(base_version)}{sequence:0{DELTA_SEQUENCE_DIGITS}d}.npz"
