"""POST /playlists/continue: a playlist that carries on from a few tracks (content only, or with userId the listener's own way). A listener route."""


from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import ConfigDict, Field

from api import personal
from api.constants import ARTIST_CAP_MAX, CONTINUE_LENGTH_DEFAULT, CONTINUE_LENGTH_MAX, EXCLUDE_MAX, MAX_SEEDS
from api.deps import served_index, tracks_table, user_store
from api.descriptor_filters import BodyFilters
from api.discovery import ContinuationRequest, continue_playlist
from api.errors import json_response
from api.listing import ListPolicy
from api.recommend import TrackNotIndexedError, require_served, track_summary
from api.routes.recommendations import not_served_error
from api.served import ServedIndex
from catalog.keys import TRACK_ID_PATTERN
from catalog.listens import USER_ID_PATTERN
from catalog.storage import TrackTable
from catalog.user_models import UserModelStore

router = APIGatewayHttpRouter()

TrackId = Annotated[str, Field(pattern=TRACK_ID_PATTERN)]


class ContinueBody(BodyFilters):
    """The continuation's request; the descriptor filters are relative to the first seed."""

    model_config = ConfigDict(extra="forbid")

    seeds: Annotated[list[TrackId], Field(min_length=1, max_length=MAX_SEEDS)]
    length: Annotated[int, Field(ge=1, le=CONTINUE_LENGTH_MAX)] = CONTINUE_LENGTH_DEFAULT
    max_per_artist: Annotated[int, Field(ge=1, le=ARTIST_CAP_MAX)] | None = Field(2, alias="maxPerArtist")
    exclude: Annotated[list[TrackId], Field(max_length=EXCLUDE_MAX)] = Field(default_factory=list)
    dedupe: bool = True
    # The listener whose continuation model (trained by make history) picks each next track.
    user_id: Annotated[str, Field(pattern=USER_ID_PATTERN)] | None = Field(None, alias="userId")


@router.post("/playlists/continue")
def post_continue(
    index: Annotated[ServedIndex, Depends(served_index)],
    table: Annotated[TrackTable, Depends(tracks_table)],
    store: Annotated[UserModelStore, Depends(user_store)],
    body: Annotated[ContinueBody, Body()],
) -> Response[str]:
    seeds = tuple(dict.fromkeys(body.seeds))
    policy = ListPolicy(exclude=frozenset(body.exclude), max_per_artist=body.max_per_artist, dedupe=body.dedupe)
    request = ContinuationRequest(seeds, body.length, policy)
    try:
        require_served(index, seeds, "seeds")
        extra = body.filters().accept(index.meta(seeds[0]).descriptors)
        if body.user_id is None:
            continuation = continue_playlist(index, request, extra)
        else:
            model = personal.model_of(store, body.user_id)
            continuation = personal.continue_for_listener(index, request, model, extra)
    except TrackNotIndexedError as exc:
        raise not_served_error(table, exc) from None
    tracks = [
        {**track_summary(index.meta(s.track_id)), "similarity": s.similarity, "stepSimilarity": s.step_similarity}
        for s in continuation.steps
    ]
    return json_response(
        200,
        {
            "indexVersion": index.version,
            "seeds": list(seeds),
            **({"userId": body.user_id} if body.user_id is not None else {}),
            "tracks": tracks,
            "meanStepSimilarity": continuation.mean_step_similarity,
        },
    )
