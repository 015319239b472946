"""The web page, served by the API itself: GET / and GET /map (one page, its views chosen by the URL),
its static assets under GET /app/{name}, and the listening route GET /tracks/{trackId}/audio.

The assets are plain files in api/static/ (HTML, CSS, JavaScript modules: no build step, no CDN),
shipped inside the api package so the Lambda zip carries them. They are read once per container.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from api import listen
from api.errors import ApiError, error_response
from catalog.keys import TRACK_ID_PATTERN
from catalog.settings import env_int, env_str, require_env
from catalog.storage import TrackTable

STATIC_DIR = Path(__file__).with_name("static")
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


@cache
def listen_table() -> TrackTable:
    return TrackTable(require_env("TRACKS_TABLE"))


@cache
def preview_lookup() -> listen.PreviewLookup:
    """The crawler's Spotify and Deezer clients, built on the first listen of a streamed track."""
    return listen.CrawlerLookup()


# No return annotation: Powertools validates an annotated route's body as JSON, and audio is bytes.
@router.get("/tracks/<trackId>/audio")
def get_track_audio(  # noqa: ANN201

    trackId: TrackIdPath,  # noqa: N803 - the name is the OpenAPI path parameter's
    table: Annotated[TrackTable, Depends(listen_table)],
):
    record = table.get(trackId)
    if record is None:
        raise ApiError(404, "track_not_found", "no track with this id is known")
    found = listen.playable(
        record,
        preview_lookup,
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
