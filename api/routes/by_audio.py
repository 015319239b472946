"""POST /recommendations/by-audio: the tracks that sound like an uploaded clip.

Served by ByAudioFunction (the extractor's image, TensorFlow included), not by
the ApiFunction zip: see :mod:`api.by_audio_handler`.
"""

from __future__ import annotations

import base64
import binascii
from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api.audio_query import (
    MAX_SECONDS_DEFAULT,
    MAX_UPLOAD_BYTES_DEFAULT,
    AudioQueryError,
    ClipEmbedder,
    UploadLimits,
    recommendations_by_audio,
)
from api.constants import K_DEFAULT, K_MAX, K_MIN
from api.deps import served_index
from api.errors import ApiError, json_response
from api.recommend import distinct_artists_filter
from api.served import ServedIndex
from catalog.bundle import TrackMeta
from catalog.settings import env_float

router = APIGatewayHttpRouter()

# The upload stands for no track: an artist cap starts from nobody.
_NO_TRACK = TrackMeta(track_id="upload", title="", artists=())


# Dependencies of this route only: they live here, not in api.deps, because they need
# librosa and TensorFlow, which the ApiFunction zip does not carry.
def upload_limits() -> UploadLimits:
    """Query-by-audio limits (env BY_AUDIO_MAX_BYTES, BY_AUDIO_MAX_SECONDS)."""
    return UploadLimits(
        max_bytes=int(env_float("BY_AUDIO_MAX_BYTES", MAX_UPLOAD_BYTES_DEFAULT)),
        max_seconds=env_float("BY_AUDIO_MAX_SECONDS", MAX_SECONDS_DEFAULT),
    )


@cache
def _embedder() -> Any:
    # TensorFlow loads on the first upload of a container, not at import.
    from extractor.embed import Embedder

    return Embedder()


def audio_embedder() -> ClipEmbedder:
    """The extractor's own embedder, built once per container: samples → raw embedding and tags."""
    return _embedder().embed_samples


def _body_bytes(body: str | None, is_base64: bool) -> bytes:
    if not body:
        return b""
    if not is_base64:
        # API Gateway passes only text content types as text; those are refused as not audio anyway.
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_request", "the request body is not valid base64") from None


@router.post("/recommendations/by-audio")
def post_recommendations_by_audio(
    index: Annotated[ServedIndex, Depends(served_index)],
    embedder: Annotated[ClipEmbedder, Depends(audio_embedder)],
    limits: Annotated[UploadLimits, Depends(upload_limits)],
    k: Annotated[int, Query(ge=K_MIN, le=K_MAX)] = K_DEFAULT,
    distinct_artists: Annotated[bool, Query(alias="distinctArtists")] = False,
) -> Response[str]:
    event = router.current_event
    body = _body_bytes(event.body, event.is_base64_encoded)
    accept = distinct_artists_filter(_NO_TRACK) if distinct_artists else None
    try:
        answer = recommendations_by_audio(
            index, embedder, body, event.headers.get("content-type"), k, limits=limits, accept=accept
        )
    except AudioQueryError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return json_response(200, answer)
