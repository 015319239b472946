"""What the crawler's ingest of one track (a CrawlQueue request from PUT /tracks/{trackId}) comes to.

The crawler produces these; its CrawlQueue consumer marks the track failed for
NOT_FOUND and NO_PREVIEW, so GET /tracks/{trackId} shows the reason.
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

    The crawler's CrawlQueue consumer lets it fail the message, so SQS retries it (then
    CrawlDLQ); anything else raised while ingesting is a bug of ours.
    """
