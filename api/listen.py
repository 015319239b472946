"""GET /tracks/{trackId}/audio: something a browser can play, resolved when it is asked for.

- Spotify tracks: Spotify's ``preview_url`` when the crawl found one there, else Deezer by the
  Deezer id saved at crawl time, else Deezer by ISRC. Deezer's URLs are signed and expire, so
  they are resolved on every request and never stored. The answer is a redirect to a host on
  the crawler's preview allow-list, never to an address a third party chose.
- Local files: in the local stack (LOCAL_AUDIO_FILES=true), the file recorded at crawl time,
  and only after its bytes hash to the track id again (a file changed or replaced since is not
  served). In a deployed stack, the copy kept at listen/{id}.{ext} when the crawl ran with
  KEEP_LOCAL_PREVIEWS=true, through a short-lived presigned URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from api.constants import LISTEN_URL_TTL_S_DEFAULT
from api.errors import ApiError
from catalog.keys import local_track_id
from catalog.records import PreviewSource, Source, TrackRecord
from catalog.settings import NotConfiguredError, env_float, env_str
from catalog.storage import signing_client
from crawler.settings import CrawlerSettings, InsecureEndpointError, check_url, host_allowed

logger = Logger(child=True)

_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class FileAudio:
    data: bytes
    content_type: str


Playable = Redirect | FileAudio


class PreviewLookup(Protocol):
    """Fresh preview URLs from the music services ('' when the service has none)."""

    def spotify_preview(self, track_id: str) -> str: ...

    def deezer_preview_by_id(self, deezer_id: str) -> str: ...

    def deezer_preview_by_isrc(self, isrc: str) -> str: ...

    def allowed(self, url: str, source: str) -> bool: ...


class UpstreamError(RuntimeError):
    """A music service could not be asked (unreachable, error answer); missing credentials are a NotConfiguredError."""


class CrawlerLookup:
    """PreviewLookup on the crawler's own Spotify and Deezer clients and host allow-lists."""

    def __init__(self, settings: CrawlerSettings) -> None:
        from crawler.deezer import DeezerClient

        self.settings = settings
        self.deezer = DeezerClient(settings)
        self._spotify: Any | None = None

    def _catalog(self) -> Any:
        if self._spotify is None:
            from crawler.spotify import app_catalog_from_store, credential_store

            # ApiFunction may read the secret, not write it: a track lookup needs no user login.
            secret_id = env_str("SPOTIFY_SECRET_ID", "") or None
            self._spotify = app_catalog_from_store(self.settings, credential_store(secret_id))
        return self._spotify

    def spotify_preview(self, track_id: str) -> str:
        from crawler.spotify import SpotifyConfigError, SpotifyError

        try:
            track = self._catalog().track(track_id)
        except SpotifyConfigError:
            raise  # no or refused credentials: this deployment's to fix (a NotConfiguredError), not Spotify's
        except SpotifyError as exc:
            raise UpstreamError(str(exc)) from exc
        return (track.preview_url or "") if track else ""

    def deezer_preview_by_id(self, deezer_id: str) -> str:
        from crawler.deezer import DeezerError

        try:
            found = self.deezer.by_id(deezer_id)
        except DeezerError as exc:
            raise UpstreamError(str(exc)) from exc
        return found.preview_url if found else ""

    def deezer_preview_by_isrc(self, isrc: str) -> str:
        from crawler.deezer import DeezerError

        try:
            found = self.deezer.by_isrc(isrc)
        except DeezerError as exc:
            raise UpstreamError(str(exc)) from exc
        return found.preview_url if found else ""

    def allowed(self, url: str, source: str) -> bool:
        try:
            check_url(url, self.settings.allow_http_loopback)
        except InsecureEndpointError:
            return False
        return host_allowed(urlsplit(url).hostname or "", self.settings.preview_hosts(source))


def local_files_enabled() -> bool:
    """True where the API runs beside the files it crawled (config/local.env sets it)."""
    return env_str("LOCAL_AUDIO_FILES", "").lower() in _TRUE


def _local_file(record: TrackRecord, max_bytes: int) -> FileAudio:
    from crawler.audio import NotAudioError, sniff

    gone = ApiError(404, "audio_unavailable", "the file this track was crawled from is no longer where it was")
    if not record.local_path:
        raise ApiError(404, "audio_unavailable", "no file was recorded for this track when it was crawled")
    path = Path(record.local_path)
    try:
        if not path.is_file() or path.stat().st_size > max_bytes:
            raise gone
        data = path.read_bytes()
    except OSError:
        raise gone from None
    if local_track_id(data) != record.track_id:
        raise ApiError(404, "audio_unavailable", "the file this track was crawled from has changed since")
    try:
        fmt = sniff(data)
    except NotAudioError:
        raise gone from None
    return FileAudio(data, fmt.content_type)


def _presigned(record: TrackRecord, bucket: str, s3: Any | None) -> Redirect:
    ttl = env_float("LISTEN_URL_TTL_S", LISTEN_URL_TTL_S_DEFAULT)
    url = (s3 or signing_client()).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": record.listen_key}, ExpiresIn=int(ttl)
    )
    return Redirect(url)


def _streamed(record: TrackRecord, lookup: PreviewLookup) -> Redirect:
    """Spotify's preview_url, then Deezer by saved id, then Deezer by ISRC: the first allowed URL."""
    candidates: list[tuple[str, Callable[[], str]]] = []
    if record.preview_source is PreviewSource.SPOTIFY:
        candidates.append(("spotify", lambda: lookup.spotify_preview(record.track_id)))
    deezer_id = deezer_ref(record)
    if deezer_id:
        candidates.append(("deezer", lambda: lookup.deezer_preview_by_id(deezer_id)))
    if record.isrc:
        candidates.append(("deezer", lambda: lookup.deezer_preview_by_isrc(record.isrc)))
    failures = 0
    not_configured: NotConfiguredError | None = None
    for source, resolve in candidates:
        try:
            url = resolve()
        except NotConfiguredError as exc:
            # Another service may still have the preview; if none has, the setting is what to fix.
            logger.warning("preview lookup not configured", extra={"source": source, "setting": exc.setting})
            not_configured = exc
            continue
        except UpstreamError as exc:
            logger.warning("preview lookup failed", extra={"source": source, "error": str(exc)})
            failures += 1
            continue
        if url and lookup.allowed(url, source):
            return Redirect(url)
        if url:
            logger.warning("preview URL refused: host not on the allow-list", extra={"source": source})
    if not_configured is not None:
        raise not_configured  # api.app answers it: 503 not_configured naming the setting
    if failures and failures == len(candidates):
        raise ApiError(502, "preview_unavailable", "the music services could not be reached for a preview; try again later")
    raise ApiError(404, "no_preview", "no playable preview of this track can be found on Spotify or Deezer")


def deezer_ref(record: TrackRecord) -> str:
    """The Deezer track id saved at crawl time, where the record carries one."""
    refs = getattr(record, "refs", None) or {}
    value = str(refs.get("deezer", "")) if isinstance(refs, dict) else ""
    return value if value.isdigit() else ""


def playable(
    record: TrackRecord,
    lookup: Callable[[], PreviewLookup],
    *,
    audio_bucket: str,
    local_max_bytes: int,
    s3: Any | None = None,
) -> Playable:
    """What GET /tracks/{trackId}/audio answers for this track; raises ApiError when nothing is playable."""
    if record.source is Source.LOCAL:
        if local_files_enabled() and record.local_path:
            return _local_file(record, local_max_bytes)
        if record.listen_key and audio_bucket:
            return _presigned(record, audio_bucket, s3)
        raise ApiError(
            404,
            "audio_unavailable",
            "this track came from a local folder; its audio plays in the local stack, or in a deployed one "
            "when it was crawled with KEEP_LOCAL_PREVIEWS=true",
        )
    return _streamed(record, lookup())
