"""POST /users/{userId}/history: import a Spotify export for a listener (a protected write: ApiWriteFunction, SigV4)."""


from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api.deps import served_index, tracks_table
from api.errors import json_response
from api.history_import import MAX_CRAWL_REQUESTS_DEFAULT, MAX_EXPORT_BYTES_DEFAULT, CrawlUnmatched, post_history
from api.request_body import body_bytes
from api.routes.tracks import crawl_queue, stale_after_s
from api.served import ServedIndex
from catalog.crawl_requests import CrawlQueue
from catalog.listens import USER_ID_PATTERN, ListenTable
from catalog.settings import env_int, require_env
from catalog.storage import TrackTable, client, resource
from catalog.train_requests import TrainQueue

router = APIGatewayHttpRouter()


# Dependencies of this write route alone (ApiFunction, which serves the reads, has neither setting).
@cache
def _listens_on(endpoint: str | None, name: str) -> ListenTable:
    return ListenTable(name)


def listens_table() -> ListenTable:
    # Keyed on the endpoint, as api.deps keys the Tracks table: the local stack may move it.
    return _listens_on(resource("dynamodb").meta.client.meta.endpoint_url, require_env("LISTENS_TABLE"))


@cache
def _train_queue_on(sqs: Any, url: str) -> TrainQueue:
    return TrainQueue(url, sqs)


def train_queue() -> TrainQueue:
    """TrainQueue, where an import leaves its training request for HistoryTrainFunction."""
    return _train_queue_on(client("sqs"), require_env("TRAIN_QUEUE_URL"))


def max_export_bytes() -> int:
    return env_int("HISTORY_MAX_EXPORT_BYTES", MAX_EXPORT_BYTES_DEFAULT)


def max_crawl_requests() -> int:
    return env_int("HISTORY_MAX_CRAWL_REQUESTS", MAX_CRAWL_REQUESTS_DEFAULT)


@router.post("/users/<userId>/history")
def post_user_history(
    userId: Annotated[str, PathParam(pattern=USER_ID_PATTERN)],  # noqa: N803 - the name is the OpenAPI path parameter's
    index: Annotated[ServedIndex, Depends(served_index)],
    table: Annotated[ListenTable, Depends(listens_table)],
    queue: Annotated[TrainQueue, Depends(train_queue)],
    max_bytes: Annotated[int, Depends(max_export_bytes)],
    tracks: Annotated[TrackTable, Depends(tracks_table)],
    crawls: Annotated[CrawlQueue, Depends(crawl_queue)],
    stale_s: Annotated[float, Depends(stale_after_s)],
    crawl_limit: Annotated[int, Depends(max_crawl_requests)],
    crawl: Annotated[bool, Query()] = False,
) -> Response[str]:
    event = router.current_event
    body = body_bytes(event.body, event.is_base64_encoded)
    unmatched = CrawlUnmatched(tracks, crawls, stale_s, crawl_limit) if crawl else None
    return json_response(200, post_history(userId, body, event.headers.get("content-type"), max_bytes, table, index, queue, unmatched))
