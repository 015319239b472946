"""Asking the crawler to ingest one track: the CrawlQueue message, written by the API, read by the crawler.

PUT /tracks/{trackId} records the request in the Tracks item (status pending, no
``crawled_at`` yet) and sends this message; the crawler's CrawlQueue consumer
runs the slow part (Spotify, Deezer, the download) outside the API's 29 s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from catalog.keys import validate_track_id
from catalog.records import utc_now_iso
from catalog.settings import env_float
from catalog.storage import client

# A pending track crawled or requested longer ago than this counts as lost and may be crawled again
# (the crawler and PUT /tracks/{trackId} both read env PENDING_STALE_AFTER_S).
PENDING_STALE_AFTER_S_DEFAULT = 6 * 3600.0
PENDING_STALE_AFTER_S_VARIABLE = "PENDING_STALE_AFTER_S"


def pending_stale_after_s() -> float:
    return env_float(PENDING_STALE_AFTER_S_VARIABLE, PENDING_STALE_AFTER_S_DEFAULT)


def stale_before(stale_after_s: float) -> str:
    """The instant (ISO 8601 UTC, to the second) before which a pending track counts as lost."""
    return (datetime.now(UTC) - timedelta(seconds=stale_after_s)).isoformat(timespec="seconds").replace("+00:00", "Z")


class BadCrawlRequestError(ValueError):
    """A CrawlQueue message that is not a crawl request: retrying cannot fix it."""


@dataclass(frozen=True)
class CrawlRequest:
    track_id: str
    requested_at: str

    def to_body(self) -> str:
        return json.dumps({"trackId": self.track_id, "requestedAt": self.requested_at}, separators=(",", ":"))

    @classmethod
    def from_body(cls, body: str) -> CrawlRequest:
        try:
            raw = json.loads(body)
            request = cls(track_id=str(raw["trackId"]), requested_at=str(raw["requestedAt"]))
            validate_track_id(request.track_id)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadCrawlRequestError(f"not a crawl request: {exc}") from None
        return request


class CrawlQueue:
    """The SQS queue of crawl requests (template.yaml: CrawlQueue, with CrawlDLQ behind it)."""

    def __init__(self, url: str, sqs: Any | None = None) -> None:
        self.url = url
        self.sqs = sqs or client("sqs")

    def send(self, track_id: str) -> CrawlRequest:
        request = CrawlRequest(track_id=track_id, requested_at=utc_now_iso())
        self.sqs.send_message(QueueUrl=self.url, MessageBody=request.to_body())
        return request
