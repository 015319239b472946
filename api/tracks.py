"""The Tracks table side of the API: a track's status, and asking the crawler to ingest one now.

None of this runs on the recommendations hot path: the table is read only for
GET /tracks/{trackId} and to explain a 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from api.errors import ApiError
from api.served import ServedIndex
from catalog.ingest import IngestOutcome, IngestStatus, UpstreamUnavailableError
from catalog.keys import DEEZER_ID_PREFIX, INGESTABLE_ID_PATTERN
from catalog.records import Status, TrackRecord
from catalog.settings import NotConfiguredError
from catalog.storage import TrackTable

logger = Logger(child=True)

# The crawler's ingest_track, or a test's stand-in.
IngestFunction = Callable[[str], IngestOutcome]

_INGESTABLE_ID_RE = re.compile(INGESTABLE_ID_PATTERN)


def track_view(record: TrackRecord, index: ServedIndex | None) -> dict[str, Any]:
    """GET /tracks/{trackId}: metadata and status, never the embedding."""
    view: dict[str, Any] = {
        "trackId": record.track_id,
        "status": record.status.value,
        "source": record.source.value,
        "title": record.title,
        "artists": list(record.artists),
        "album": record.album,
        "indexed": index is not None and record.track_id in index,
    }
    optional: dict[str, Any] = {
        "isrc": record.isrc,
        "durationMs": record.duration_ms,
        "previewSource": record.preview_source.value if record.preview_source else None,
        "playlists": sorted(record.playlists),
        "refs": record.refs,
        "model": record.model,
        "dim": record.dim,
        "tags": record.tags,
        "descriptors": record.descriptors.to_json() if record.descriptors else None,
        "error": record.error,
        "crawledAt": record.crawled_at,
        "extractedAt": record.extracted_at,
        "indexVersion": index.version if index is not None else None,
    }
    view.update({k: v for k, v in optional.items() if v not in (None, "", [], {})})
    return view


def get_track(table: TrackTable, track_id: str, index: ServedIndex | None) -> dict[str, Any]:
    record = table.get(track_id)
    if record is None:
        raise ApiError(404, "track_not_found", "no track with this id is known")
    return track_view(record, index)


def not_indexed_error(table: TrackTable, track_id: str) -> ApiError:
    """The 404 for a track missing from the index, saying what the table knows about it."""
    try:
        record = table.get(track_id)
    except (ClientError, BotoCoreError):
        logger.exception("Tracks table read failed while explaining a 404")
        record = None
    if record is None:
        return ApiError(404, "track_not_found", "the track is not in the index and not known to the catalogue")
    if record.status is Status.PENDING:
        return ApiError(404, "track_pending", "the track is known but its audio has not been analysed yet (status pending)")
    if record.status is Status.FAILED:
        return ApiError(404, "track_failed", "the track is known but its audio could not be analysed (status failed)")
    return ApiError(
        404, "track_not_indexed", "the track is analysed (status ready) but not in the index yet; try again shortly"
    )


def request_ingest(track_id: str, ingest: IngestFunction) -> tuple[int, dict[str, Any]]:
    """PUT /tracks/{trackId}: (HTTP status, body) for asking the crawler to ingest one Spotify
    track (22 letters and digits) or one Deezer track (dz- and Deezer's numeric id).

    Only an upstream failure is a 502; any other exception is a bug and reaches the 500 handler.
    """
    if not _INGESTABLE_ID_RE.fullmatch(track_id):
        raise ApiError(400, "invalid_track_id", "expected a Spotify track id (22 letters and digits) or dz- and a Deezer track number")
    try:
        outcome = ingest(track_id)
    except NotConfiguredError as exc:
        # Missing or refused credentials are this deployment's to fix, not the music services' fault.
        logger.warning("ingest is not configured", extra={"setting": exc.setting})
        raise ApiError(503, "not_configured", f"the server is not configured for this: set {exc.setting}") from exc
    except UpstreamUnavailableError as exc:
        logger.warning("ingest upstream unavailable", extra={"error": str(exc)})
        raise ApiError(502, "ingest_unavailable", "the track could not be fetched from the music services; try again later") from exc
    track_status = outcome.track_status or Status.PENDING
    body = {"trackId": track_id, "status": track_status.value, "message": outcome.message}
    match outcome.status:
        case IngestStatus.QUEUED:
            return 202, {**body, "status": Status.PENDING.value}
        case IngestStatus.KNOWN if track_status is Status.READY:
            return 200, body
        case IngestStatus.KNOWN if track_status is Status.PENDING:
            return 202, body
        case IngestStatus.KNOWN:
            raise ApiError(409, "track_failed", "the track is known but its audio could not be analysed")
        case IngestStatus.NO_PREVIEW:
            raise ApiError(422, "no_preview", "no audio preview can be found for this track on Spotify or Deezer")
        case IngestStatus.NOT_FOUND if track_id.startswith(DEEZER_ID_PREFIX):
            raise ApiError(404, "deezer_track_not_found", "Deezer has no track with this id")
        case IngestStatus.NOT_FOUND:
            raise ApiError(404, "spotify_track_not_found", "Spotify has no track with this id")
