"""GET /recommendations: query by example from the served index."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api import tracks
from api.constants import K_DEFAULT, K_MAX, K_MIN
from api.deps import served_index, tracks_table
from api.descriptor_filters import parse_filters
from api.errors import json_response
from api.recommend import TrackNotIndexedError, recommendations
from api.served import ServedIndex
from catalog.keys import TRACK_ID_PATTERN
from catalog.storage import TrackTable

router = APIGatewayHttpRouter()


@router.get("/recommendations")
def get_recommendations(
    index: Annotated[ServedIndex, Depends(served_index)],
    table: Annotated[TrackTable, Depends(tracks_table)],
    track_id: Annotated[str, Query(alias="trackId", pattern=TRACK_ID_PATTERN)],
    k: Annotated[int, Query(ge=K_MIN, le=K_MAX)] = K_DEFAULT,
    distinct_artists: Annotated[bool, Query(alias="distinctArtists")] = False,
) -> Response[str]:
    # minTempo, maxTempo, tempoOctaves, key, minLoudness, maxLoudness, mode: parsed by the one
    # function every list endpoint shares (the OpenAPI document lists them).
    filters = parse_filters(router.current_event.query_string_parameters or {})
    try:
        body = recommendations(index, track_id, k, distinct_artists, filters)
    except TrackNotIndexedError:
        # Only a miss reads the table, to say whether the track is pending, failed or unknown.
        raise tracks.not_indexed_error(table, track_id) from None
    return json_response(200, body)
