"""The resolver every API function serves: CORS, request validation and the error shape.

ApiFunction (api.handler) and ByAudioFunction (api.by_audio_handler) each
build one from their own routers, so both answer errors the same way,
{"error": {"code", "message"}}, never repeating the request: 404 for a path
the API does not know, 405 with ``Allow`` for a method a known path does not
answer, 503 ``not_configured`` naming a setting this deployment lacks, 503 when storage
cannot be reached, and HEAD wherever GET works
(:func:`resolve`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from api.constants import CORS_ALLOW_ORIGIN_DEFAULT, CORS_MAX_AGE_S
from api.errors import ApiError, error_response
from api.methods import allowed_methods, head_as_get, is_head, without_body
from catalog.settings import NotConfiguredError, env_str
from catalog.storage import is_transient, is_unreachable

logger = Logger(child=True)


def create_app(*routers: APIGatewayHttpRouter) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(
        enable_validation=True,
        cors=CORSConfig(
            allow_origin=env_str("CORS_ALLOW_ORIGIN", CORS_ALLOW_ORIGIN_DEFAULT),
            allow_headers=["content-type"],
            max_age=CORS_MAX_AGE_S,
        ),
    )
    for router in routers:
        app.include_router(router)

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

    @app.exception_handler(NotConfiguredError)
    def handle_not_configured(exc: NotConfiguredError) -> Response[str]:
        # A setting this deployment lacks is the operator's to fix; the message names it, never a value.
        logger.warning("not configured", extra={"setting": exc.setting})
        return error_response(503, "not_configured", f"the server is not configured for this: set {exc.setting}")

    @app.exception_handler([BotoCoreError, ClientError])
    def handle_storage_error(exc: BotoCoreError | ClientError) -> Response[str]:
        if is_unreachable(exc) or is_transient(exc):
            logger.warning("storage unreachable", extra={"error": type(exc).__name__})
            return error_response(503, "storage_unavailable", "storage (tracks, stations or the index) cannot be reached right now; try again shortly")
        return handle_unexpected(exc)

    @app.exception_handler(UnicodeDecodeError)
    def handle_undecodable_body(_exc: UnicodeDecodeError) -> Response[str]:
        # Powertools decodes the body as UTF-8 before it can parse JSON; a binary body fails there.
        return error_response(400, "bad_request", "the request body is not UTF-8 JSON")

    @app.not_found
    def handle_not_found(_exc: Exception) -> Response[str]:
        # API Gateway's $default route brings every request no route matches here.
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

    return app


def resolve(app: APIGatewayHttpResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The app's answer to one event; HEAD is answered as GET would be, without the body."""
    if is_head(event):
        return without_body(app.resolve(head_as_get(event), context))
    return app.resolve(event, context)
