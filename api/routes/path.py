"""GET /path: tracks that move from one sound to another. A listener route."""


from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api.constants import PATH_LENGTH_DEFAULT, PATH_LENGTH_MAX, PATH_LENGTH_MIN
from api.deps import served_index, tracks_table
from api.descriptor_filters import parse_filters
from api.discovery import PathTooLongError, SameEndsError, path
from api.errors import ApiError, json_response
from api.recommend import TrackNotIndexedError, require_served, track_summary
from api.routes.recommendations import not_served_error
from api.served import ServedIndex
from catalog.keys import TRACK_ID_PATTERN
from catalog.storage import TrackTable

router = APIGatewayHttpRouter()


@router.get("/path")
def get_path(
    index: Annotated[ServedIndex, Depends(served_index)],
    table: Annotated[TrackTable, Depends(tracks_table)],
    start: Annotated[str, Query(alias="from", pattern=TRACK_ID_PATTERN)],
    end: Annotated[str, Query(alias="to", pattern=TRACK_ID_PATTERN)],
    length: Annotated[int, Query(ge=PATH_LENGTH_MIN, le=PATH_LENGTH_MAX)] = PATH_LENGTH_DEFAULT,
) -> Response[str]:
    # minTempo, maxTempo, tempoOctaves, key, minLoudness, maxLoudness, mode apply to the steps
    # between the two ends (the ends are the listener's); key=compatible is relative to `from`.
    filters = parse_filters(router.current_event.query_string_parameters or {})
    try:
        require_served(index, [start], "from")
        found = path(index, start, end, length, filters.accept(index.meta(start).descriptors))
    except TrackNotIndexedError as exc:
        raise not_served_error(table, exc) from None
    except SameEndsError:
        raise ApiError(400, "same_track", "from and to are the same track; a path needs two") from None
    except PathTooLongError:
        raise ApiError(400, "path_too_long", "the index holds fewer tracks than the path's length") from None
    tracks = [
        {**track_summary(index.meta(s.track_id)), "similarityToTo": s.similarity_to_end, "stepSimilarity": s.step_similarity}
        for s in found.steps
    ]
    return json_response(
        200,
        {
            "indexVersion": index.version,
            "from": start,
            "to": end,
            "tracks": tracks,
            "meanStepSimilarity": found.mean_step_similarity,
            "monotoneShare": found.monotone_share,
        },
    )
