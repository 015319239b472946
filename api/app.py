"""The resolver every API function serves: CORS, request validation and the error shape.

ApiFunction (api.handler) and ByAudioFunction (api.by_audio_handler) each
build one from their own routers, so both answer errors the same way,
{"error": {"code", "message"}}, never repeating the request.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api.constants import CORS_ALLOW_ORIGIN_DEFAULT, CORS_MAX_AGE_S
from api.errors import ApiError, error_response
from catalog.settings import env_str

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

    @app.exception_handler(UnicodeDecodeError)
    def handle_undecodable_body(_exc: UnicodeDecodeError) -> Response[str]:
        # Powertools decodes the body as UTF-8 before it can parse JSON; a binary body fails there.
        return error_response(400, "bad_request", "the request body is not UTF-8 JSON")

    @app.not_found
    def handle_not_found(_exc: Exception) -> Response[str]:
        return error_response(404, "route_not_found", "no such route")

    @app.exception_handler(Exception)
    def handle_unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "the server could not answer this request")

    return app
