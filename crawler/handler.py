"""CrawlerFunction: the EventBridge schedule's entry point, and CrawlQueue's consumer.

Scheduled: playlists come from the event's input ``{"playlists": [...]}`` when the rule
sets one, else from the SSM parameter PLAYLISTS_PARAM (comma-separated; "none" or empty: none).
Every remote reference kind is accepted: Spotify playlists, spotify:me:…, and Deezer's
(deezer:playlist:ID, deezer:album:ID, deezer:artist:ID, deezer:track:ID, deezer:chart, URLs).

CrawlQueue (PUT /tracks/{trackId}): each message asks for one track (a Spotify id, or dz-
and a Deezer id). A track the service does not know or that has no preview anywhere is
marked failed with the reason (GET /tracks/{trackId} shows it), as is one that needs a
setting this deployment lacks ("not_configured: set ..."); an error that may pass
(a rate limit, a 5xx, throttling) fails the message, which SQS retries and then moves to
CrawlDLQ.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog.crawl_requests import BadCrawlRequestError, CrawlRequest
from catalog.ingest import IngestStatus
from catalog.keys import deezer_number
from catalog.records import Source, TrackRecord
from catalog.settings import NotConfiguredError, env_int, require_env
from crawler.deezer import is_deezer_ref
from crawler.pipeline import SOURCE_FORMS, CrawlSummary, crawl_sources, default_crawler, ingest_track
from crawler.spotify import is_library_ref, is_playlist_ref

logger = Logger(service="crawler")
metrics = Metrics(service="crawler")

# Each crawl request is its own item: one that keeps failing does not hold back the rest.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
SQS_EVENT_SOURCE = "aws:sqs"

NO_PLAYLISTS = "none"
# The reason a crawl request fails with when this deployment lacks a setting (README, PUT /tracks).
NOT_CONFIGURED = "not_configured"
PARAMETER_MAX_AGE_S = env_int("PLAYLISTS_PARAM_MAX_AGE_S", 60)


class BadEventError(ValueError):
    """The event's ``playlists`` is not a list of playlist references."""


def split_playlists(value: str) -> list[str]:
    """The parameter's comma-separated playlists; "none" or empty means none."""
    items = [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
    return [] if [i.lower() for i in items] in ([], [NO_PLAYLISTS]) else items


def playlists_from(event: dict[str, Any]) -> list[str]:
    if "playlists" in event:
        raw = event["playlists"]
        items = split_playlists(raw) if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise BadEventError('event "playlists" must be a list of playlist references')
    else:
        items = split_playlists(parameters.get_parameter(require_env("PLAYLISTS_PARAM"), max_age=PARAMETER_MAX_AGE_S) or "")
    for item in items:
        if not is_remote_ref(item):
            raise BadEventError(f"{item!r} is not a playlist reference: expected {SOURCE_FORMS.split('; ', 1)[1]}")
    return items


def is_remote_ref(ref: str) -> bool:
    """A reference the scheduled crawl can read (a Lambda has no local folders)."""
    return is_playlist_ref(ref) or is_library_ref(ref) or is_deezer_ref(ref)


def _record_metrics(summary: CrawlSummary) -> None:
    metrics.add_metric("TracksNew", MetricUnit.Count, summary.new)
    metrics.add_metric("TracksKnown", MetricUnit.Count, summary.known)
    metrics.add_metric("TracksNoPreview", MetricUnit.Count, sum(summary.no_preview.values()))
    metrics.add_metric("TracksFailed", MetricUnit.Count, sum(summary.failed.values()))
    metrics.add_metric("PlaylistErrors", MetricUnit.Count, len(summary.errors))


def crawl_request_handler(record: SQSRecord) -> None:
    """One CrawlQueue message: crawl the track; a permanent miss marks it failed with the reason."""
    try:
        request = CrawlRequest.from_body(record.body)
    except BadCrawlRequestError:
        logger.warning("dropping a CrawlQueue message that is not a crawl request", extra={"id": record.message_id})
        return
    # The item may not exist yet (the API records the request after queueing it): say what it is.
    source = Source.DEEZER if deezer_number(request.track_id) is not None else Source.SPOTIFY
    fallback = TrackRecord(request.track_id, source)
    try:
        outcome = ingest_track(request.track_id)
    except NotConfiguredError as exc:
        # No or refused credentials: retrying cannot help until the operator sets them, and a PUT
        # after that queues the failed track again. The reason names the setting, never a value.
        logger.warning("crawl request failed: not configured", extra={"track_id": request.track_id, "setting": exc.setting})
        metrics.add_metric("CrawlRequest_not_configured", MetricUnit.Count, 1)
        default_crawler().table.mark_failed(request.track_id, f"{NOT_CONFIGURED}: set {exc.setting}", fallback)
        return
    metrics.add_metric(f"CrawlRequest_{outcome.status}", MetricUnit.Count, 1)
    if outcome.status in (IngestStatus.NOT_FOUND, IngestStatus.NO_PREVIEW):
        default_crawler().table.mark_failed(request.track_id, outcome.message, fallback)
    elif outcome.track_id != request.track_id:
        # The recording is in the catalogue under another id (one entry per ISRC): the requested
        # id's item would otherwise stay pending for ever; its reason names the entry to ask for.
        reason = f"the same recording is in the catalogue as {outcome.track_id}; GET /tracks/{outcome.track_id}"
        default_crawler().table.mark_failed(request.track_id, reason, fallback)
    logger.info("crawl request done", extra={"track_id": request.track_id, "outcome": outcome.status})


def _is_sqs_event(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and bool(records) and records[0].get("eventSource") == SQS_EVENT_SOURCE


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _is_sqs_event(event):
        return process_partial_response(event=event, record_handler=crawl_request_handler, processor=processor,
                                        context=context)
    playlists = playlists_from(event)
    if not playlists:
        logger.info("no playlists configured; nothing to crawl")
        summary = CrawlSummary()
    else:
        summary = crawl_sources(default_crawler(), playlists)
    _record_metrics(summary)
    if summary.errors:
        logger.error("crawl finished with errors", extra={"summary": summary.to_dict()})
    else:
        logger.info("crawl finished", extra={"summary": summary.to_dict()})
    return summary.to_dict()
