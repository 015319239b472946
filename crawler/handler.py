"""CrawlerFunction: the EventBridge schedule's entry point.

Playlists come from the event's input ``{"playlists": [...]}`` when the rule sets one,
else from the SSM parameter PLAYLISTS_PARAM (comma-separated; "none" or empty: none).
Every remote reference kind is accepted: Spotify playlists, spotify:me:…, and Deezer's
(deezer:playlist:ID, deezer:album:ID, deezer:artist:ID, deezer:track:ID, deezer:chart, URLs).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog.settings import env_int, require_env
from crawler.deezer import is_deezer_ref
from crawler.pipeline import SOURCE_FORMS, CrawlSummary, crawl_sources, default_crawler
from crawler.spotify import is_library_ref, is_playlist_ref

logger = Logger(service="crawler")
metrics = Metrics(service="crawler")

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


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
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
