"""API errors: an HTTP status and a stable code, rendered as {"error": {"code", "message"}}.

Messages are written here, never built from the request, so nothing the
caller sent is echoed back.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response, content_types


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":"))
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def json_response(status: int, body: object) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    )
