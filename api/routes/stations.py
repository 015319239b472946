"""Station routes: create, read, change and delete a station; its next tracks; feedback on them.

Listener routes: open to the web page, guarded by throttling and by the
unguessable stationId.
"""


from functools import cache
from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from api import stations
from api.constants import (
    ARTIST_CAP_MAX,
    STATION_MAX_SEEDS,
    STATION_NAME_MAX_CHARS,
    STATION_NEXT_DEFAULT,
    STATION_NEXT_MAX,
    STATION_WEIGHT_MAX,
)
from api.deps import served_index
from api.descriptor_filters import BodyFilters
from api.errors import ApiError, json_response
from api.recommend import track_summary
from api.served import ServedIndex
from api.stations_store import (
    BatchConflictError,
    Signal,
    Station,
    StationDefinition,
    StationNotFoundError,
    StationStore,
)
from catalog.keys import TRACK_ID_PATTERN
from catalog.settings import require_env
from catalog.storage import resource

STATION_ID_PATTERN = r"^[A-Za-z0-9_-]{22}$"
# Two `next` calls racing for one batch number: the loser reads again, at most this often.
NEXT_ATTEMPTS = 5

router = APIGatewayHttpRouter()


@cache
def _stations_on(endpoint: str | None, name: str) -> StationStore:
    # Keyed on the endpoint, not the resource object (see api.deps._table_on).
    return StationStore(resource("dynamodb").Table(name))


def stations_store() -> StationStore:
    """The Stations table: a dependency of these routes only, so no other function needs STATIONS_TABLE."""
    return _stations_on(resource("dynamodb").meta.client.meta.endpoint_url, require_env("STATIONS_TABLE"))

StationIdPath = Annotated[str, PathParam(pattern=STATION_ID_PATTERN)]
TrackId = Annotated[str, Field(pattern=TRACK_ID_PATTERN)]
Weight = Annotated[float, Field(ge=0.0, le=STATION_WEIGHT_MAX, allow_inf_nan=False)]
ArtistCap = Annotated[int, Field(ge=1, le=ARTIST_CAP_MAX)]


class StationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=STATION_NAME_MAX_CHARS)]
    seeds: Annotated[list[TrackId], Field(min_length=1, max_length=STATION_MAX_SEEDS)]
    style_weight: Weight = Field(1.0, alias="styleWeight")
    like_weight: Weight = Field(0.5, alias="likeWeight")
    dislike_weight: Weight = Field(0.5, alias="dislikeWeight")
    max_per_artist: ArtistCap | None = Field(2, alias="maxPerArtist")


class StationChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=STATION_NAME_MAX_CHARS)] | None = None
    style_weight: Weight | None = Field(None, alias="styleWeight")
    like_weight: Weight | None = Field(None, alias="likeWeight")
    dislike_weight: Weight | None = Field(None, alias="dislikeWeight")
    max_per_artist: ArtistCap | None = Field(None, alias="maxPerArtist")


class NextRequest(BodyFilters):
    """How many tracks, and descriptor filters for this batch (key=compatible relative to the first seed)."""

    model_config = ConfigDict(extra="forbid")

    n: Annotated[int, Field(ge=1, le=STATION_NEXT_MAX)] = STATION_NEXT_DEFAULT


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track_id: TrackId = Field(alias="trackId")
    signal: Signal


def station_view(station: Station) -> dict[str, object]:
    definition = station.definition
    return {
        "stationId": station.station_id,
        "name": definition.name,
        "seeds": list(definition.seeds),
        "styleWeight": definition.style_weight,
        "likeWeight": definition.like_weight,
        "dislikeWeight": definition.dislike_weight,
        "maxPerArtist": definition.max_per_artist,
        "createdAt": definition.created_at,
        "updatedAt": definition.updated_at,
        "feedback": station.feedback_counts(),
        "historyLength": station.history_length,
        "cycle": station.cycle,
    }


def _load(store: StationStore, station_id: str) -> Station:
    try:
        return store.load(station_id)
    except StationNotFoundError:
        raise ApiError(404, "station_not_found", "no station has this id") from None


def _require_served(index: ServedIndex, track_ids: list[str], what: str) -> None:
    if any(track_id not in index for track_id in track_ids):
        raise ApiError(404, "track_not_indexed", f"a track named in {what} is not in the index being served")


@router.post("/stations")
def create_station(
    index: Annotated[ServedIndex, Depends(served_index)],
    store: Annotated[StationStore, Depends(stations_store)],
    body: Annotated[StationCreate, Body()],
) -> Response[str]:
    _require_served(index, body.seeds, "seeds")
    definition = StationDefinition(
        name=body.name,
        seeds=tuple(dict.fromkeys(body.seeds)),
        style_weight=body.style_weight,
        like_weight=body.like_weight,
        dislike_weight=body.dislike_weight,
        max_per_artist=body.max_per_artist,
    )
    return json_response(201, station_view(store.create(definition)))


@router.get("/stations/<stationId>")
def get_station(
    stationId: StationIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    store: Annotated[StationStore, Depends(stations_store)],
) -> Response[str]:
    return json_response(200, station_view(_load(store, stationId)))


@router.patch("/stations/<stationId>")
def change_station(
    stationId: StationIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    store: Annotated[StationStore, Depends(stations_store)],
    body: Annotated[StationChange, Body()],
) -> Response[str]:
    given = body.model_fields_set
    if not given:
        raise ApiError(400, "nothing_to_change", "name, styleWeight, likeWeight, dislikeWeight or maxPerArtist")
    changes = {name: getattr(body, name) for name in given}
    if "name" in changes and changes["name"] is None:
        raise ApiError(400, "bad_request", "name cannot be removed")
    if any(changes.get(w, 0.0) is None for w in ("style_weight", "like_weight", "dislike_weight")):
        raise ApiError(400, "bad_request", "a weight cannot be removed; set it to 0 instead")
    try:
        store.update(stationId, changes)  # maxPerArtist: null removes the cap
    except StationNotFoundError:
        raise ApiError(404, "station_not_found", "no station has this id") from None
    return json_response(200, station_view(_load(store, stationId)))


@router.delete("/stations/<stationId>")
def delete_station(
    stationId: StationIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    store: Annotated[StationStore, Depends(stations_store)],
) -> Response[str]:
    try:
        store.delete(stationId)
    except StationNotFoundError:
        raise ApiError(404, "station_not_found", "no station has this id") from None
    return Response(status_code=204, body="")


@router.post("/stations/<stationId>/next")
def station_next(
    stationId: StationIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    index: Annotated[ServedIndex, Depends(served_index)],
    store: Annotated[StationStore, Depends(stations_store)],
    body: Annotated[NextRequest | None, Body()] = None,
) -> Response[str]:
    request = body or NextRequest()
    filters = request.filters()
    for _ in range(NEXT_ATTEMPTS):
        station = _load(store, stationId)
        seed = station.definition.seeds[0]
        accept = filters.accept(index.meta(seed).descriptors if seed in index else None)
        try:
            batch, picks = stations.next_batch(index, station, request.n, accept)
        except stations.NoReachableTracksError as exc:
            raise ApiError(409, "station_exhausted", str(exc)) from None  # our own wording, never the request's
        try:
            store.record_batch(stationId, batch)
        except BatchConflictError:
            continue
        tracks = [{**track_summary(index.meta(p.track_id)), "similarity": p.similarity} for p in picks]
        return json_response(200, {"stationId": stationId, "indexVersion": index.version, "cycle": batch.cycle, "tracks": tracks})
    raise ApiError(409, "station_busy", "other requests kept taking this station's next batch; try again")


@router.post("/stations/<stationId>/feedback")
def station_feedback(
    stationId: StationIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    index: Annotated[ServedIndex, Depends(served_index)],
    store: Annotated[StationStore, Depends(stations_store)],
    body: Annotated[FeedbackRequest, Body()],
) -> Response[str]:
    _load(store, stationId)
    _require_served(index, [body.track_id], "trackId")
    store.add_feedback(stationId, body.track_id, body.signal)
    return Response(status_code=204, body="")
