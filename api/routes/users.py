"""GET /users/{userId}, /users/{userId}/recommendations and /users/{userId}/affinity: a listener's own models."""


from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api import personal, tracks
from api.constants import (
    ARTIST_CAP_MAX,
    DURATION_MAX_MS,
    EXCLUDE_MAX,
    K_MAX,
    K_MIN,
    PERSONAL_K_DEFAULT,
    PERSONAL_MAX_PER_ARTIST_DEFAULT,
)
from api.deps import served_index, tracks_table, user_store
from api.descriptor_filters import parse_filters
from api.errors import json_response
from api.recommend import TrackNotIndexedError
from api.routes.recommendations import list_policy
from api.served import ServedIndex
from catalog.keys import TRACK_ID_PATTERN
from catalog.listens import USER_ID_PATTERN
from catalog.storage import TrackTable
from catalog.user_models import UserModelStore

router = APIGatewayHttpRouter()

UserIdPath = Annotated[str, PathParam(pattern=USER_ID_PATTERN)]


@router.get("/users/<userId>")
def get_user(
    userId: UserIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    store: Annotated[UserModelStore, Depends(user_store)],
) -> Response[str]:
    profile = store.profile(userId)
    if profile is None:
        raise personal.user_not_found()
    return json_response(200, profile)


@router.get("/users/<userId>/recommendations")
def get_user_recommendations(
    userId: UserIdPath,  # noqa: N803
    index: Annotated[ServedIndex, Depends(served_index)],
    store: Annotated[UserModelStore, Depends(user_store)],
    k: Annotated[int, Query(ge=K_MIN, le=K_MAX)] = PERSONAL_K_DEFAULT,
    distinct_artists: Annotated[bool, Query(alias="distinctArtists")] = False,
    max_per_artist: Annotated[int, Query(alias="maxPerArtist", ge=1, le=ARTIST_CAP_MAX)] = PERSONAL_MAX_PER_ARTIST_DEFAULT,
    exclude: Annotated[list[str] | None, Query(max_length=EXCLUDE_MAX)] = None,
    min_duration_ms: Annotated[int | None, Query(alias="minDurationMs", ge=0, le=DURATION_MAX_MS)] = None,
    max_duration_ms: Annotated[int | None, Query(alias="maxDurationMs", ge=0, le=DURATION_MAX_MS)] = None,
    dedupe: bool = True,
) -> Response[str]:
    # Every filter of GET /recommendations, parsed by the same functions.
    policy = list_policy(exclude, max_per_artist, min_duration_ms, max_duration_ms, dedupe, distinct_artists)
    filters = parse_filters(router.current_event.query_string_parameters or {})
    body = personal.for_you(index, personal.model_of(store, userId), k, policy, filters)
    return json_response(200, {"userId": userId, **body})


@router.get("/users/<userId>/affinity")
def get_user_affinity(
    userId: UserIdPath,  # noqa: N803
    index: Annotated[ServedIndex, Depends(served_index)],
    store: Annotated[UserModelStore, Depends(user_store)],
    table: Annotated[TrackTable, Depends(tracks_table)],
    track_id: Annotated[str, Query(alias="trackId", pattern=TRACK_ID_PATTERN)],
) -> Response[str]:
    model = personal.model_of(store, userId)
    profile = store.profile(userId) or {"userId": userId, "models": {"affinity": None}}
    try:
        body = personal.affinity(index, model, profile, track_id)
    except TrackNotIndexedError:
        raise tracks.not_indexed_error(table, track_id) from None
    return json_response(200, body)
