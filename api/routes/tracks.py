"""GET and PUT /tracks/{trackId}: a track's status in the Tracks table, and ingesting one now."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api import tracks
from api.deps import current_index, tracks_table
from api.errors import json_response
from api.served import ServedIndex
from api.tracks import IngestFunction
from catalog.keys import TRACK_ID_PATTERN
from catalog.storage import TrackTable

router = APIGatewayHttpRouter()

TrackIdPath = Annotated[str, PathParam(pattern=TRACK_ID_PATTERN)]


# A dependency of PUT alone, kept here rather than in api.deps so that a function serving
# other routes from api.deps (ByAudioFunction) does not reach the crawler's code.
def ingest_function() -> IngestFunction:
    """The crawler's ingest_track, imported on the first PUT so that GET requests never load spotipy."""
    from crawler.pipeline import ingest_track

    return ingest_track


@router.get("/tracks/<trackId>")
def get_track(
    trackId: TrackIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    table: Annotated[TrackTable, Depends(tracks_table)],
    index: Annotated[ServedIndex | None, Depends(current_index)],
) -> Response[str]:
    return json_response(200, tracks.get_track(table, trackId, index))


@router.put("/tracks/<trackId>")
def put_track(
    trackId: TrackIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    ingest: Annotated[IngestFunction, Depends(ingest_function)],
) -> Response[str]:
    status, body = tracks.request_ingest(trackId, ingest)
    return json_response(status, body)
