"""GET and PUT /tracks/{trackId}: a track's status in the Tracks table, and asking for one to be crawled."""


from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api import tracks
from api.deps import current_index, tracks_table
from api.errors import json_response
from api.served import ServedIndex
from catalog.crawl_requests import CrawlQueue, pending_stale_after_s
from catalog.keys import TRACK_ID_PATTERN
from catalog.settings import require_env
from catalog.storage import TrackTable, client

router = APIGatewayHttpRouter()

TrackIdPath = Annotated[str, PathParam(pattern=TRACK_ID_PATTERN)]


# Dependencies of PUT alone, kept here rather than in api.deps so that a function serving
# other routes from api.deps (ByAudioFunction) needs no CrawlQueue setting.
@cache
def _crawl_queue_on(sqs: Any, url: str) -> CrawlQueue:
    return CrawlQueue(url, sqs)


def crawl_queue() -> CrawlQueue:
    """CrawlQueue, where PUT /tracks/{trackId} leaves its request for the crawler."""
    return _crawl_queue_on(client("sqs"), require_env("CRAWL_QUEUE_URL"))


def stale_after_s() -> float:
    """When a pending track counts as lost and may be requested again (shared with the crawler)."""
    return pending_stale_after_s()


@router.get("/tracks/<trackId>")
def get_track(
    trackId: TrackIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    table: Annotated[TrackTable, Depends(tracks_table)],
    index: Annotated[ServedIndex | None, Depends(current_index)],
) -> Response[str]:
    return json_response(200, tracks.get_track(table, trackId, index))


@router.put("/tracks/<trackId>")
def put_track(
    trackId: TrackIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    table: Annotated[TrackTable, Depends(tracks_table)],
    queue: Annotated[CrawlQueue, Depends(crawl_queue)],
    stale_s: Annotated[float, Depends(stale_after_s)],
) -> Response[str]:
    status, body = tracks.request_ingest(table, queue, trackId, stale_s)
    return json_response(status, body)
