"""What the crawler answers when the API asks it to ingest one track now (PUT /tracks/{trackId}).

The crawler produces these and the API maps each to an HTTP status, so the
outcomes are one enum here rather than string literals on both sides.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from catalog.records import Status


class IngestStatus(enum.StrEnum):
    QUEUED = "queued"  # a preview was stored and extraction will follow
    KNOWN = "known"  # the track was already in the table (track_status says how far it got)
    NO_PREVIEW = "no_preview"  # neither Spotify nor Deezer has audio for it
    NOT_FOUND = "not_found"  # Spotify (Deezer, for a dz- id) has no such track, or the id is neither


@dataclass(frozen=True)
class IngestOutcome:
    track_id: str
    status: IngestStatus
    track_status: Status | None  # the item's status when the table has it
    message: str


class UpstreamUnavailableError(RuntimeError):
    """A service the ingest depends on (Spotify, Deezer, S3, DynamoDB) could not answer; trying later may work.

    The API turns exactly this into a 502; anything else raised while ingesting is
    a bug of ours and stays a 500.
    """
