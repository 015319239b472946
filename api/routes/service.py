"""GET /health and GET /openapi.json: what is being served, and the API's description."""


from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api.deps import served_index
from api.errors import json_response
from api.served import ServedIndex

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"

router = APIGatewayHttpRouter()


@cache
def openapi_document() -> str:
    return OPENAPI_PATH.read_text(encoding="utf-8")


def _age_s(created_at: str, now: datetime) -> float | None:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (now - created).total_seconds())


@router.get("/health")
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


@router.get("/openapi.json")
def get_openapi() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=openapi_document())
