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
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from api import tracks
from api.constants import CORS_ALLOW_ORIGIN_DEFAULT, CORS_MAX_AGE_S, K_DEFAULT, K_MAX, K_MIN
from api.errors import ApiError, error_response, json_response
from api.index_cache import IndexCache, LoadedIndex
from api.methods import allowed_methods, head_as_get, is_head, without_body
from api.recommend import TrackNotIndexedError, recommendations
from catalog.keys import TRACK_ID_PATTERN
from catalog.settings import env_str, require_env
from catalog.storage import TrackTable, is_unreachable

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


def _serving_index() -> LoadedIndex:
    index = index_cache.current()
    if index is None:
        raise ApiError(503, "index_unavailable", "no recommendation index has been published yet; try again later")
    return index


@app.get("/recommendations")
def get_recommendations(
    track_id: Annotated[str, Query(alias="trackId", pattern=TRACK_ID_PATTERN)],
    k: Annotated[int, Query(ge=K_MIN, le=K_MAX)] = K_DEFAULT,
    distinct_artists: Annotated[bool, Query(alias="distinctArtists")] = False,
) -> Response[str]:
    index = _serving_index()
    try:
        body = recommendations(index, track_id, k, distinct_artists)
    except TrackNotIndexedError:
        raise tracks.not_indexed_error(tracks_table(), track_id) from None
    return json_response(200, body)


@app.get("/health")
def get_health() -> Response[str]:
    index = _serving_index()
    manifest = index.manifest
    age_s = index.age_s(datetime.now(UTC))
    return json_response(
        200,
        {
            "status": "ok",
            "indexVersion": manifest.version,
            "count": manifest.count,
            "model": manifest.model,
            "dim": manifest.dim,
            "createdAt": manifest.created_at,
            "ageSeconds": None if age_s is None else round(age_s, 3),
        },
    )


@app.get("/tracks/<trackId>")
def get_track(trackId: TrackIdPath) -> Response[str]:  # noqa: N803 - the name is the OpenAPI path parameter's
    return json_response(200, tracks.get_track(tracks_table(), trackId, index_cache.current()))


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


@app.exception_handler([BotoCoreError, ClientError])
def handle_storage_error(exc: BotoCoreError | ClientError) -> Response[str]:
    if is_unreachable(exc):
        logger.warning("storage unreachable", extra={"error": type(exc).__name__})
        return error_response(503, "storage_unavailable", "the track catalogue cannot be reached right now; try again shortly")
    return handle_unexpected(exc)


@app.not_found
def handle_not_found(_exc: Exception) -> Response[str]:
    allowed = allowed_methods(app.current_event.path)
    if allowed:
        response = error_response(405, "method_not_allowed", f"this path answers {', '.join(allowed)} only")
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error_response(404, "route_not_found", "no such route")


@app.exception_handler(Exception)
def handle_unexpected(exc: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return error_response(500, "internal_error", "the server could not answer this request")


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_head(event):
        return without_body(app.resolve(head_as_get(event), context))
    return app.resolve(event, context)
