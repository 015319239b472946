"""A request body as bytes, however API Gateway passed it (text as is, binary base64-encoded)."""

from __future__ import annotations

import base64
import binascii

from api.errors import ApiError


def body_bytes(body: str | None, is_base64: bool) -> bytes:
    if not body:
        return b""
    if not is_base64:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_request", "the request body is not valid base64") from None
