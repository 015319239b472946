"""CrawlerFunction: the EventBridge schedule's entry point, and CrawlQueue's consumer.

Scheduled: playlists come from the event's input ``{"playlists": [...]}`` when the rule
sets one, else from the SSM parameter PLAYLISTS_PARAM (comma-separated; "none" or empty: none).

CrawlQueue (PUT /tracks/{trackId}): each message asks for one Spotify track. A track
Spotify does not know or that has no preview anywhere is marked failed with the
reason (GET /tracks/{trackId} shows it); an error that may pass (Spotify rate limit,
a 5xx, throttling) fails the message, which SQS retries and then moves to CrawlDLQ.
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
from catalog.records import Source, TrackRecord
from catalog.settings import env_int, require_env
from crawler.pipeline import CrawlSummary, crawl_sources, default_crawler, ingest_track
from crawler.spotify import parse_playlist_ref

logger = Logger(service="crawler")
metrics = Metrics(service="crawler")

# Each crawl request is its own item: one that keeps failing does not hold back the rest.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
SQS_EVENT_SOURCE = "aws:sqs"

NO_PLAYLISTS = "none"
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
            raise BadEventError('event "playlists" must be a list of Spotify playlist ids, URIs or URLs')
    else:
        items = split_playlists(parameters.get_parameter(require_env("PLAYLISTS_PARAM"), max_age=PARAMETER_MAX_AGE_S) or "")
    for item in items:
        try:
            parse_playlist_ref(item)
        except ValueError as exc:
            raise BadEventError(str(exc)) from None
    return items


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
    outcome = ingest_track(request.track_id)
    metrics.add_metric(f"CrawlRequest_{outcome.status}", MetricUnit.Count, 1)
    if outcome.status in (IngestStatus.NOT_FOUND, IngestStatus.NO_PREVIEW):
        # The item may not exist yet (the API records the request after queueing it): say what it is.
        fallback = TrackRecord(request.track_id, Source.SPOTIFY)
        default_crawler().table.mark_failed(request.track_id, outcome.message, fallback)
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
