"""The web page, served by the API itself: GET / and GET /map (one page, its views chosen by the URL),
its static assets under GET /app/{name}, the map's points (GET /map/points) and the listening route
GET /tracks/{trackId}/audio.

The assets are plain files in api/static/ (HTML, CSS, JavaScript modules: no build step, no CDN),
shipped inside the api package so the Lambda zip carries them. They are read once per container.
"""


import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api import listen
from api.deps import served_index, tracks_table
from api.errors import ApiError, error_response
from api.served import ServedIndex
from catalog.keys import TRACK_ID_PATTERN
from catalog.settings import env_int, env_str
from catalog.storage import TrackTable
from crawler.settings import CrawlerSettings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE_FILE = "index.html"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The page loads nothing from anywhere else; audio may come from the preview hosts (https) it is sent to.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' https: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Revalidate every time (the ETag makes that a 304): a new deployment is seen at once.
_CACHE_CONTROL = "no-cache"
LOCAL_MAX_BYTES_DEFAULT = 200 * 1024 * 1024
MAP_DECIMALS = 4
# The map shows at most this many tracks (MAP_MAX_POINTS): an even sample of a bigger catalogue. At
# about 110 bytes a point, 4000 keep the answer near 0.5 MB (Lambda answers at most 6 MB) and the
# page's SVG light; a million points would be 110 MB and a minute of metadata reads.
MAP_MAX_POINTS_DEFAULT = 4000
# Tracks the page asks to see whatever the sample (the path or station it draws): at most this many.
MAP_INCLUDE_MAX = 100

router = APIGatewayHttpRouter()
TrackIdPath = Annotated[str, PathParam(pattern=TRACK_ID_PATTERN)]


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@cache
def assets() -> Mapping[str, Asset]:
    """Every file of api/static/ by name: the only names GET /app/{name} answers (no path is ever built from the URL)."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        content_type = _CONTENT_TYPES.get(path.suffix)
        if path.is_file() and content_type:
            body = path.read_bytes()
            found[path.name] = Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


def _asset_response(asset: Asset) -> Response[str]:
    headers = {
        "ETag": asset.etag,
        "Cache-Control": _CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
    }
    if asset.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["Referrer-Policy"] = "no-referrer"
    if router.current_event.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers, body="")
    text = asset.content_type.startswith("text/")
    return Response(
        status_code=200,
        content_type=asset.content_type,
        headers=headers,
        body=asset.body.decode("utf-8") if text else asset.body,
    )


@router.get("/")
def get_page() -> Response[str]:
    return _asset_response(assets()[PAGE_FILE])


@router.get("/map")
def get_map_page() -> Response[str]:
    # The same page: its script renders the map view for this path.
    return _asset_response(assets()[PAGE_FILE])


@router.get("/app/<name>")
def get_asset(name: str) -> Response[str]:
    asset = assets().get(name)
    if asset is None or name == PAGE_FILE:
        return error_response(404, "asset_not_found", "the page has no such file")
    return _asset_response(asset)


def _map_point(index: ServedIndex, track_id: str) -> dict[str, Any]:
    meta = index.meta(track_id)
    x, y = index.project(track_id)
    top = max(meta.tags.items(), key=lambda kv: (kv[1], kv[0]))[0] if meta.tags else ""
    return {"trackId": track_id, "x": round(x, MAP_DECIMALS), "y": round(y, MAP_DECIMALS),
            "title": meta.title, "artists": list(meta.artists), "tag": top}


def map_points(index: ServedIndex, max_points: int) -> dict[str, Any]:
    """The served tracks at their 2-D projection (the basis fitted at build), with what the map
    shows of each: all of them, or an even sample of ``max_points`` (positions k * total // max_points
    in item order)."""
    total = len(index)
    wanted = range(total) if total <= max_points else {k * total // max_points for k in range(max_points)}
    try:
        points = [_map_point(index, track_id) for i, track_id in enumerate(index.track_ids()) if i in wanted]
    except LookupError:
        raise ApiError(503, "map_unavailable", "this index was built without a map projection; "
                       "the map appears once the index is next rebuilt") from None
    return {"indexVersion": index.version, "count": len(points), "total": total, "points": points}


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=1)
def _points_of(index: ServedIndex, max_points: int) -> tuple[dict[str, Any], str, frozenset[str]]:
    # A served index never changes, so its points (and their JSON) are computed once; only the one
    # being served is kept.
    body = map_points(index, max_points)
    return body, _json(body), frozenset(p["trackId"] for p in body["points"])


def map_max_points() -> int:
    return env_int("MAP_MAX_POINTS", MAP_MAX_POINTS_DEFAULT)


@router.get("/map/points")
def get_map_points(
    index: Annotated[ServedIndex, Depends(served_index)],
    max_points: Annotated[int, Depends(map_max_points)],
    include: Annotated[list[str] | None, Query(max_length=MAP_INCLUDE_MAX)] = None,
) -> Response[str]:
    body, text, sampled = _points_of(index, max_points)
    extra = [_map_point(index, t) for t in dict.fromkeys(include or ()) if t not in sampled and t in index]
    if extra:
        text = _json({**body, "count": body["count"] + len(extra), "points": body["points"] + extra})
    return Response(status_code=200, content_type="application/json", body=text)


@cache
def _lookup_for(settings: CrawlerSettings) -> listen.PreviewLookup:
    return listen.CrawlerLookup(settings)


def preview_lookup() -> Callable[[], listen.PreviewLookup]:
    """The crawler's Spotify and Deezer clients (memoised on their settings), built only when a streamed track is played."""
    return lambda: _lookup_for(CrawlerSettings.from_env())


# No return annotation: Powertools validates an annotated route's body as JSON, and audio is bytes.
@router.get("/tracks/<trackId>/audio")
def get_track_audio(  # noqa: ANN201

    trackId: TrackIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    table: Annotated[TrackTable, Depends(tracks_table)],
    lookup: Annotated[Callable[[], listen.PreviewLookup], Depends(preview_lookup)],
):
    record = table.get(trackId)
    if record is None:
        raise ApiError(404, "track_not_found", "no track with this id is known")
    found = listen.playable(
        record,
        lookup,
        audio_bucket=env_str("AUDIO_BUCKET", ""),
        local_max_bytes=env_int("LOCAL_MAX_BYTES", LOCAL_MAX_BYTES_DEFAULT),
    )
    if isinstance(found, listen.Redirect):
        # Resolved URLs expire: the browser must ask again next time, not reuse this answer.
        return Response(status_code=302, headers={"Location": found.url, "Cache-Control": "no-store"}, body=b"")
    return Response(
        status_code=200,
        content_type=found.content_type,
        headers={"Cache-Control": "private, max-age=3600", "Accept-Ranges": "none"},
        body=found.data,
    )
