"""GET /search: find tracks to start from by title, artist or album."""


from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api.constants import SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX, SEARCH_QUERY_MAX_CHARS
from api.deps import served_index
from api.errors import ApiError, json_response
from api.recommend import track_summary
from api.search import fold, search_structure
from api.served import ServedIndex

router = APIGatewayHttpRouter()


@router.get("/search")
def get_search(
    index: Annotated[ServedIndex, Depends(served_index)],
    q: Annotated[str, Query(min_length=1, max_length=SEARCH_QUERY_MAX_CHARS)],
    limit: Annotated[int, Query(ge=1, le=SEARCH_LIMIT_MAX)] = SEARCH_LIMIT_DEFAULT,
) -> Response[str]:
    if not fold(q):
        raise ApiError(400, "empty_query", "the query has no letters or digits to search for")
    structure = search_structure(index, (index.meta(t) for t in index.track_ids()))
    matches = structure.search(q, limit)
    results = [{**track_summary(index.meta(m.track_id)), "match": m.kind, "field": m.field.name.lower()} for m in matches]
    return json_response(200, {"indexVersion": index.version, "results": results})
