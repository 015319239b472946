"""Which methods a path answers, from the OpenAPI document, and HEAD answered as GET.

API Gateway sends every request no route matches (other methods, other paths,
HEAD) to the ``$default`` route, so the function itself answers them in the
documented error shape: 405 with ``Allow`` when the path exists, 404 otherwise.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
_PATH_PARAMETER = re.compile(r"\{[^/}]+\}")
_OPERATIONS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})


@cache
def _documented_paths() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    paths = []
    for template, item in document["paths"].items():
        pattern = "".join(
            "[^/]+" if _PATH_PARAMETER.fullmatch(part) else re.escape(part)
            for part in re.split(r"(\{[^/}]+\})", template)
        )
        methods = {m.upper() for m in item if m in _OPERATIONS}
        if "GET" in methods:
            methods.add("HEAD")
        paths.append((re.compile(f"^{pattern}$"), tuple(sorted(methods))))
    return tuple(paths)


def allowed_methods(path: str) -> tuple[str, ...]:
    """The methods the API answers on ``path`` (HEAD wherever GET); empty for a path it does not know."""
    for pattern, methods in _documented_paths():
        if pattern.match(path):
            return methods
    return ()


def is_head(event: dict[str, Any]) -> bool:
    return str(event.get("requestContext", {}).get("http", {}).get("method", "")).upper() == "HEAD"


def head_as_get(event: dict[str, Any]) -> dict[str, Any]:
    """The same request as GET: HEAD answers what GET would, without the body."""
    http = {**event["requestContext"]["http"], "method": "GET"}
    return {**event, "requestContext": {**event["requestContext"], "http": http}}


def without_body(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "body": "", "isBase64Encoded": False}
