"""ApiFunction: the HTTP API (payload format 2.0) behind API Gateway.

A table of contents: each group of routes is a Powertools Router in
:mod:`api.routes`, and what routes depend on (settings, the served index, the
tables, the crawler) is declared in :mod:`api.deps` and resolved with
``Depends``. The resolver and its error handling come from :mod:`api.app`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from threadpoolctl import threadpool_limits

from api.app import create_app, resolve
from api.routes import history, path, playlists, recommendations, search, service, stations, tracks, users, web

# The exact search over the index delta is one small matrix-vector product per request: a second
# BLAS thread only adds synchronisation (on a loaded 2-core host, 10k x 200: 72 ms with 2 OpenBLAS
# threads, 13 ms with 1; bench/RESULTS.md, "bench/index.py").
threadpool_limits(limits=1)

logger = Logger()
app = create_app(
    recommendations.router,
    search.router,
    stations.router,
    playlists.router,
    path.router,
    tracks.router,
    service.router,
    users.router,  # a listener's own models: GET /users/{userId}, .../recommendations, .../affinity
    history.router,  # POST /users/{userId}/history: import an export (ApiWriteFunction, SigV4)
    web.router,  # the web page, its assets, the map's points and GET /tracks/{trackId}/audio
)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
