"""POST /recommendations/by-audio: the tracks that sound like an uploaded clip.

Served by ByAudioFunction (the extractor's image, TensorFlow included), not by
the ApiFunction zip: see :mod:`api.by_audio_handler`.
"""


from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api.audio_query import (
    MAX_SECONDS_DEFAULT,
    MAX_UPLOAD_BYTES_DEFAULT,
    AudioQueryError,
    ClipAnalyser,
    UploadLimits,
    recommendations_by_audio,
)
from api.constants import ARTIST_CAP_MAX, DURATION_MAX_MS, EXCLUDE_MAX, K_DEFAULT, K_MAX, K_MIN
from api.deps import served_index
from api.descriptor_filters import parse_filters
from api.errors import ApiError, json_response
from api.request_body import body_bytes
from api.routes.recommendations import list_policy
from api.served import ServedIndex
from catalog.settings import env_float

router = APIGatewayHttpRouter()


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


def audio_analyser() -> ClipAnalyser:
    """The extractor's own analysis with its embedder (built once per container): embedding, tags, descriptors."""
    from extractor.analysis import analyse

    embedder = _embedder()
    return lambda clip: analyse(embedder, clip)


@router.post("/recommendations/by-audio")
def post_recommendations_by_audio(
    index: Annotated[ServedIndex, Depends(served_index)],
    analyser: Annotated[ClipAnalyser, Depends(audio_analyser)],
    limits: Annotated[UploadLimits, Depends(upload_limits)],
    k: Annotated[int, Query(ge=K_MIN, le=K_MAX)] = K_DEFAULT,
    distinct_artists: Annotated[bool, Query(alias="distinctArtists")] = False,
    max_per_artist: Annotated[int | None, Query(alias="maxPerArtist", ge=1, le=ARTIST_CAP_MAX)] = None,
    exclude: Annotated[list[str] | None, Query(max_length=EXCLUDE_MAX)] = None,
    min_duration_ms: Annotated[int | None, Query(alias="minDurationMs", ge=0, le=DURATION_MAX_MS)] = None,
    max_duration_ms: Annotated[int | None, Query(alias="maxDurationMs", ge=0, le=DURATION_MAX_MS)] = None,
    dedupe: bool = True,
) -> Response[str]:
    event = router.current_event
    policy = list_policy(exclude, max_per_artist, min_duration_ms, max_duration_ms, dedupe, distinct_artists)
    # minTempo, maxTempo, tempoOctaves, key (compatible with the upload's), minLoudness,
    # maxLoudness, mode: parsed as for GET /recommendations.
    filters = parse_filters(event.query_string_parameters or {})
    body = body_bytes(event.body, event.is_base64_encoded)
    try:
        answer = recommendations_by_audio(
            index, analyser, body, event.headers.get("content-type"), k,
            limits=limits, policy=policy, filters=filters,
        )
    except AudioQueryError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return json_response(200, answer)
