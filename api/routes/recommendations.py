"""GET /recommendations: tracks near one or several seeds, with exclusions, artist caps, durations, dedupe."""


from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api import tracks
from api.constants import ARTIST_CAP_MAX, DURATION_MAX_MS, EXCLUDE_MAX, K_DEFAULT, K_MAX, K_MIN, MAX_SEEDS
from api.deps import served_index, tracks_table
from api.descriptor_filters import parse_filters
from api.errors import ApiError, json_response
from api.listing import ListPolicy
from api.recommend import TrackNotIndexedError, recommendations
from api.served import ServedIndex
from catalog.keys import is_track_id
from catalog.storage import TrackTable

router = APIGatewayHttpRouter()

def not_served_error(table: TrackTable, exc: TrackNotIndexedError) -> ApiError:
    """The 404 for a named track missing from the index: which parameter named it, and what the table knows."""
    error = tracks.not_indexed_error(table, exc.track_id)
    return ApiError(error.status, error.code, f"{exc.role}: {error.message}")


def list_policy(
    exclude: list[str] | None,
    max_per_artist: int | None,
    min_ms: int | None,
    max_ms: int | None,
    dedupe: bool,
    distinct_artists: bool = False,
) -> ListPolicy:
    """The list policy of the query parameters every list endpoint shares; 400 for ids or ranges that cannot hold."""
    exclude = [t for t in exclude or [] if t]  # comma-separated values arrive split; empty entries mean nothing
    if not all(is_track_id(t) for t in exclude):
        raise ApiError(400, "bad_request", "exclude takes track ids (letters, digits, _ and -, up to 64)")
    if min_ms is not None and max_ms is not None and min_ms > max_ms:
        raise ApiError(400, "bad_request", "minDurationMs is above maxDurationMs")
    if distinct_artists:
        max_per_artist = 1 if max_per_artist is None else min(max_per_artist, 1)  # the old name for maxPerArtist=1
    return ListPolicy(
        exclude=frozenset(exclude), max_per_artist=max_per_artist, min_duration_ms=min_ms, max_duration_ms=max_ms,
        dedupe=dedupe,
    )


@router.get("/recommendations")
def get_recommendations(
    index: Annotated[ServedIndex, Depends(served_index)],
    table: Annotated[TrackTable, Depends(tracks_table)],
    track_ids: Annotated[list[str], Query(alias="trackId", min_length=1, max_length=MAX_SEEDS)],
    k: Annotated[int, Query(ge=K_MIN, le=K_MAX)] = K_DEFAULT,
    distinct_artists: Annotated[bool, Query(alias="distinctArtists")] = False,
    max_per_artist: Annotated[int | None, Query(alias="maxPerArtist", ge=1, le=ARTIST_CAP_MAX)] = None,
    exclude: Annotated[list[str] | None, Query(max_length=EXCLUDE_MAX)] = None,
    min_duration_ms: Annotated[int | None, Query(alias="minDurationMs", ge=0, le=DURATION_MAX_MS)] = None,
    max_duration_ms: Annotated[int | None, Query(alias="maxDurationMs", ge=0, le=DURATION_MAX_MS)] = None,
    dedupe: bool = True,
) -> Response[str]:
    # Repeated keys and comma-separated values arrive as one list; empty entries mean nothing.
    seeds = list(dict.fromkeys(t for t in track_ids if t))
    if not seeds or not all(is_track_id(t) for t in seeds):
        raise ApiError(400, "bad_request", "trackId takes track ids (letters, digits, _ and -, up to 64)")
    policy = list_policy(exclude, max_per_artist, min_duration_ms, max_duration_ms, dedupe, distinct_artists)
    # minTempo, maxTempo, tempoOctaves, key, minLoudness, maxLoudness, mode: parsed by the one
    # function every list endpoint shares (the OpenAPI document lists them).
    filters = parse_filters(router.current_event.query_string_parameters or {})
    try:
        body = recommendations(index, seeds, k, policy, filters)
    except TrackNotIndexedError as exc:
        # Only a miss reads the table, to say whether the track is pending, failed or unknown.
        raise not_served_error(table, exc) from None
    return json_response(200, body)
