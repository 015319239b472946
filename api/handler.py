"""ApiFunction: the HTTP API (payload format 2.0) behind API Gateway.

Routes parse and validate the request, call plain functions in
:mod:`api.recommend` / :mod:`api.tracks`, and shape the reply; errors are
{"error": {"code", "message"}} and never repeat the request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Depends, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from api import tracks
from api.constants import CORS_ALLOW_ORIGIN_DEFAULT, CORS_MAX_AGE_S, K_DEFAULT, K_MAX, K_MIN
from api.errors import ApiError, error_response, json_response
from api.index_cache import IndexCache
from api.recommend import TrackNotIndexedError, recommendations
from api.served import ServedIndex
from catalog.keys import TRACK_ID_PATTERN
from catalog.settings import env_str, require_env
from catalog.storage import TrackTable

OPENAPI_PATH = Path(__file__).with_name("openapi.json")

logger = Logger()
app = APIGatewayHttpResolver(
    enable_validation=True,
    cors=CORSConfig(
        allow_origin=env_str("CORS_ALLOW_ORIGIN", CORS_ALLOW_ORIGIN_DEFAULT),
        allow_headers=["content-type"],
        max_age=CORS_MAX_AGE_S,
    ),
)
index_cache = IndexCache.from_env(require_env("INDEX_BUCKET"))
TRACKS_TABLE = require_env("TRACKS_TABLE")

TrackIdPath = Annotated[str, PathParam(pattern=TRACK_ID_PATTERN)]


@cache
def tracks_table() -> TrackTable:
    return TrackTable(TRACKS_TABLE)


@cache
def openapi_document() -> str:
    return OPENAPI_PATH.read_text(encoding="utf-8")


def current_index() -> ServedIndex | None:
    """The index being served, or None before the first one is published."""
    return index_cache.current()


def served_index(index: Annotated[ServedIndex | None, Depends(current_index)]) -> ServedIndex:
    """The dependency of every route that answers from the index: 503 until one is published."""
    if index is None:
        raise ApiError(503, "index_unavailable", "no recommendation index has been published yet; try again later")
    return index


def _age_s(created_at: str, now: datetime) -> float | None:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (now - created).total_seconds())


@app.get("/recommendations")
def get_recommendations(
    track_id: Annotated[str, Query(alias="trackId", pattern=TRACK_ID_PATTERN)],
    index: Annotated[ServedIndex, Depends(served_index)],
    k: Annotated[int, Query(ge=K_MIN, le=K_MAX)] = K_DEFAULT,
    distinct_artists: Annotated[bool, Query(alias="distinctArtists")] = False,
) -> Response[str]:
    try:
        body = recommendations(index, track_id, k, distinct_artists)
    except TrackNotIndexedError:
        raise tracks.not_indexed_error(tracks_table(), track_id) from None
    return json_response(200, body)


@app.get("/health")
def get_health(index: Annotated[ServedIndex, Depends(served_index)]) -> Response[str]:
    age_s = _age_s(index.created_at, datetime.now(UTC))
    return json_response(
        200,
        {
            "status": "ok",
            "indexVersion": index.version,
            "count": index.count,
            "model": index.model,
            "dim": index.dim,
            "createdAt": index.created_at,
            "ageSeconds": None if age_s is None else round(age_s, 3),
        },
    )


@app.get("/tracks/<trackId>")
def get_track(
    trackId: TrackIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    index: Annotated[ServedIndex | None, Depends(current_index)],
) -> Response[str]:
    return json_response(200, tracks.get_track(tracks_table(), trackId, index))


@app.put("/tracks/<trackId>")
def put_track(trackId: TrackIdPath) -> Response[str]:  # noqa: N803 - the name is the OpenAPI path parameter's
    status, body = tracks.request_ingest(trackId)
    return json_response(status, body)


@app.get("/openapi.json")
def get_openapi() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=openapi_document())


@app.exception_handler(ApiError)
def handle_api_error(exc: ApiError) -> Response[str]:
    return error_response(exc.status, exc.code, exc.message)


@app.exception_handler(RequestValidationError)
def handle_validation_error(exc: RequestValidationError) -> Response[str]:
    # pydantic's messages name the parameter and the rule; its "input" (the request) is left out.
    problems = [
        f"{err['loc'][0]} parameter {err['loc'][-1]!s}: {err['msg']}" if len(err.get("loc", ())) >= 2 else err["msg"]
        for err in exc.errors()
    ]
    return error_response(400, "bad_request", "; ".join(problems) or "the request is not valid")


@app.not_found
def handle_not_found(_exc: Exception) -> Response[str]:
    return error_response(404, "route_not_found", "no such route")


@app.exception_handler(Exception)
def handle_unexpected(exc: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return error_response(500, "internal_error", "the server could not answer this request")


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
