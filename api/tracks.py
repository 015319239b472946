"""The Tracks table side of the API: a track's status, and asking the crawler to ingest one.

None of this runs on the recommendations hot path: the table is read only for
GET /tracks/{trackId} and to explain a 404.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from api.errors import ApiError
from api.served import ServedIndex
from catalog.crawl_requests import CrawlQueue, stale_before
from catalog.keys import INGESTABLE_ID_PATTERN
from catalog.records import Status, TrackRecord
from catalog.storage import TrackTable

logger = Logger(child=True)

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
        "requestedAt": record.requested_at,
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


def _is_lost(record: TrackRecord, stale: str) -> bool:
    return record.status is Status.PENDING and (record.crawled_at or record.requested_at) < stale


def request_ingest(table: TrackTable, queue: CrawlQueue, track_id: str, stale_after_s: float) -> tuple[int, dict[str, Any]]:
    """PUT /tracks/{trackId}: (HTTP status, body). Records the request and queues the crawl; never waits for it.

    The crawler's CrawlQueue consumer fetches the track; GET /tracks/{trackId} then
    shows it pending, ready, or failed with the reason.
    """
    if not _INGESTABLE_ID_RE.fullmatch(track_id):
        raise ApiError(400, "invalid_track_id", "expected a Spotify track id (22 letters and digits) or dz- and a Deezer track number")
    stale = stale_before(stale_after_s)
    existing = table.get(track_id, consistent=True)
    if existing is not None and existing.status is Status.READY:
        return 200, {"trackId": track_id, "status": Status.READY.value, "message": "track is already analysed"}
    if existing is not None and existing.status is Status.PENDING and not _is_lost(existing, stale):
        return 202, {"trackId": track_id, "status": Status.PENDING.value, "message": "track is already waiting"}
    # The message goes first: a crash after it still gets the track crawled (the crawler creates the item).
    try:
        request = queue.send(track_id)
        table.put_requested(track_id, request.requested_at, stale)
    except (ClientError, BotoCoreError) as exc:
        logger.exception("could not queue a crawl request")
        raise ApiError(503, "ingest_unavailable", "the request could not be queued; try again shortly") from exc
    return 202, {
        "trackId": track_id,
        "status": Status.PENDING.value,
        "message": "queued for crawling; GET /tracks/{trackId} shows its progress",
        "requestedAt": request.requested_at,
    }


def request_unmatched(table: TrackTable, queue: CrawlQueue, track_ids: Iterable[str], stale_after_s: float, limit: int) -> int:
    """POST /users/{userId}/history?crawl=true: queue crawls of up to ``limit`` of ``track_ids``
    (the import's unmatched Spotify tracks, most played first); returns how many were queued.

    Only a track the Tracks table does not know, or knows as pending since before the stale
    time, is asked for. A ready one waits for the index; a failed one was refused for a reason
    (no preview anywhere, most often) that posting the same export again would meet again:
    PUT /tracks/{trackId} asks for it again on purpose. The rest of a long list is asked for by
    posting the export again (it adds no plays twice). SQS or DynamoDB failing raises ApiError 503.
    """
    stale = stale_before(stale_after_s)
    queued = 0
    try:
        for track_id in track_ids:
            if queued >= limit:
                break
            if not _INGESTABLE_ID_RE.fullmatch(track_id):
                continue
            existing = table.get(track_id, consistent=True)
            if existing is not None and not _is_lost(existing, stale):
                continue
            # As PUT does: the message first, so a crash between the two still gets the track crawled.
            request = queue.send(track_id)
            table.put_requested(track_id, request.requested_at, stale)
            queued += 1
    except (ClientError, BotoCoreError) as exc:
        logger.exception("could not queue the import's crawl requests")
        raise ApiError(
            503, "crawl_unavailable",
            f"the plays are imported but only {queued} crawl requests could be queued; post the export again to retry (it adds nothing twice)",
        ) from exc
    return queued
