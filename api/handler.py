"""ApiFunction: the HTTP API (payload format 2.0) behind API Gateway.

A table of contents: each group of routes is a Powertools Router in
:mod:`api.routes`, and what routes depend on (settings, the served index, the
tables, the crawler) is declared in :mod:`api.deps` and resolved with
``Depends``. Errors are {"error": {"code", "message"}} and never repeat the request.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from api.constants import CORS_ALLOW_ORIGIN_DEFAULT, CORS_MAX_AGE_S
from api.errors import ApiError, error_response
from api.methods import allowed_methods, head_as_get, is_head, without_body
from api.routes import recommendations, service, tracks
from catalog.settings import env_str
from catalog.storage import is_unreachable

logger = Logger()
app = APIGatewayHttpResolver(
    enable_validation=True,
    cors=CORSConfig(
        allow_origin=env_str("CORS_ALLOW_ORIGIN", CORS_ALLOW_ORIGIN_DEFAULT),
        allow_headers=["content-type"],
        max_age=CORS_MAX_AGE_S,
    ),
)

app.include_router(recommendations.router)
app.include_router(tracks.router)
app.include_router(service.router)


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
