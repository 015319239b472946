"""Deezer's public API: a source of its own (playlists, albums, artists' top tracks, the chart,
single tracks) and a preview resolver for Spotify tracks (ISRC lookup, then a strict artist +
title search).

Deezer reports errors as JSON bodies with HTTP 200 (``{"error": {"type", "message", "code"}}``);
they are errors here too. Its quota error (code 4) pauses every worker (the shared pacer) and is
retried; a run that keeps meeting it stops. Preview URLs are signed and expire, so callers
resolve right before downloading and keep only the Deezer track id (``track`` resolves it again).
Lists are paged with ``next`` links, which are followed only on the configured API host.

Response shapes follow https://developers.deezer.com/api (playlist, album, artist/top,
chart, track, search, errors). Assumed where the documentation is silent: playlist and album
track lists carry ``isrc`` (public samples show it), chart and artist top lists may not (the
crawler then asks /track/{id}); a private playlist answers an error of code 200.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests

from crawler.download import pooled_session
from crawler.pacing import RequestPacer
from crawler.settings import CrawlerSettings

# https://developers.deezer.com/api/errors
DEEZER_QUOTA_EXCEEDED = 4
DEEZER_PERMISSION = 200
DEEZER_NO_DATA = 800
SEARCH_LIMIT = 10
PAGE_LIMIT = 100
MAX_PAGES = 1000  # a list longer than 100k entries, or a `next` that never ends, is cut here

DeezerKind = Literal["playlist", "album", "artist", "chart", "track"]
_ID = r"(?P<id>[1-9][0-9]{0,18})"
_REF_URI = re.compile(rf"^deezer:(?P<kind>playlist|album|artist|track):{_ID}$", re.IGNORECASE)
_REF_CHART = re.compile(r"^deezer:chart$", re.IGNORECASE)
_REF_URL = re.compile(
    rf"^(?:https?://)?(?:www\.)?deezer\.com/(?:[a-z]{{2}}(?:-[a-z]{{2}})?/)?(?P<kind>playlist|album|artist|track)/{_ID}/?(?:[?#].*)?$",
    re.IGNORECASE,
)

_BRACKETED_EXTRA = re.compile(r"[\(\[][^\)\]]*\b(feat|ft|featuring|with|remaster(ed)?)\b[^\)\]]*[\)\]]")
_DASH_EXTRA = re.compile(r"\s+-\s+.*\b(remaster(ed)?|feat|ft|featuring)\b.*$")
_TRAILING_FEAT = re.compile(r"\s+(feat|ft|featuring)\.?\s.*$")
_NON_WORD = re.compile(r"[^\w]+")


class DeezerError(RuntimeError):
    """Deezer answered with an error (an HTTP error or a JSON error body)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class DeezerQuotaError(DeezerError):
    """Deezer kept answering its quota error after the pauses: the run stops here."""


class DeezerUnavailableError(DeezerError):
    """This reference cannot be crawled (unknown id, private playlist); others may be."""


@dataclass(frozen=True)
class DeezerRef:
    kind: DeezerKind
    id: int | None = None  # None for the chart

    @property
    def label(self) -> str:
        """The membership a crawled track gains (``deezer:playlist:908622995``, ``deezer:chart``)."""
        return f"deezer:{self.kind}" if self.id is None else f"deezer:{self.kind}:{self.id}"


def parse_deezer_ref(ref: str) -> DeezerRef:
    """deezer:playlist|album|artist|track:ID, deezer:chart, or a deezer.com URL of one."""
    text = ref.strip()
    if _REF_CHART.match(text):
        return DeezerRef("chart")
    match = _REF_URI.match(text) or _REF_URL.match(text)
    if not match:
        raise ValueError(
            f"{ref!r} is not a Deezer reference: expected deezer:playlist:ID, deezer:album:ID, deezer:artist:ID, "
            "deezer:track:ID, deezer:chart or https://www.deezer.com/playlist/ID (album/ID, artist/ID, track/ID)"
        )
    return DeezerRef(match.group("kind").lower(), int(match.group("id")))  # type: ignore[arg-type]


def is_deezer_ref(ref: str) -> bool:
    try:
        parse_deezer_ref(ref)
    except ValueError:
        return False
    return True


def normalise(text: str) -> str:
    """Title or artist in a form where Spotify's and Deezer's spellings of the same song agree:
    case, accents, "feat." credits and " - Remastered …" / "(Remastered …)" suffixes removed."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _BRACKETED_EXTRA.sub(" ", text)
    text = _DASH_EXTRA.sub("", text)
    text = _TRAILING_FEAT.sub("", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


@dataclass(frozen=True)
class DeezerTrack:
    id: int
    title: str
    artist: str
    preview_url: str
    artists: tuple[str, ...] = ()
    album: str = ""
    isrc: str = ""
    duration_ms: int | None = None
    title_short: str = ""


@dataclass
class DeezerListing:
    ref: DeezerRef
    name: str
    tracks: list[DeezerTrack]
    skipped: Counter[str] = field(default_factory=Counter)


def parse_track(raw: dict[str, Any], album: str = "") -> DeezerTrack | str:
    """A track object of any Deezer list, or the reason it is skipped."""
    if str(raw.get("type") or "track") != "track":
        return str(raw.get("type"))
    if raw.get("readable") is False:
        return "unavailable"
    try:
        track_id = int(raw.get("id") or 0)
    except (TypeError, ValueError):
        return "unavailable"
    if track_id <= 0:
        return "unavailable"
    artist = str((raw.get("artist") or {}).get("name") or "")
    contributors = tuple(str(c.get("name")) for c in raw.get("contributors") or [] if isinstance(c, dict) and c.get("name"))
    duration = raw.get("duration")
    try:
        duration_ms = int(duration) * 1000 if duration not in (None, "") else None
    except (TypeError, ValueError):
        duration_ms = None
    return DeezerTrack(
        id=track_id,
        title=str(raw.get("title") or ""),
        title_short=str(raw.get("title_short") or ""),
        artist=artist,
        artists=contributors or ((artist,) if artist else ()),
        album=str((raw.get("album") or {}).get("title") or album),
        isrc=str(raw.get("isrc") or "").strip().upper(),
        duration_ms=duration_ms,
        preview_url=str(raw.get("preview") or ""),
    )


def _with_preview(raw: dict[str, Any] | None) -> DeezerTrack | None:
    parsed = parse_track(raw) if raw else None
    return parsed if isinstance(parsed, DeezerTrack) and parsed.preview_url else None


def matches(track: dict[str, Any], title: str, artists: list[str]) -> bool:
    wanted_title = normalise(title)
    titles = {normalise(str(track.get(k, ""))) for k in ("title", "title_short")}
    artist = normalise(str((track.get("artist") or {}).get("name", "")))
    return bool(wanted_title) and wanted_title in titles and artist in {normalise(a) for a in artists}


class DeezerClient:
    """Every request waits for its slot on one pacer, shared by all the crawl's workers."""

    def __init__(self, settings: CrawlerSettings, pacer: RequestPacer | None = None) -> None:
        self.settings = settings
        self.pacer = pacer or RequestPacer(settings.deezer_max_rps)
        self._local = threading.local()

    @property
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = pooled_session(1)
        return self._local.session

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The JSON body of ``path`` (or of a full ``next`` URL on the API host); None when
        Deezer says it has no data; DeezerError otherwise."""
        url = path if "://" in path else self.settings.deezer_api_url + path
        what = urlsplit(url).path
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            self.pacer.acquire()
            try:
                response = self._session.get(url, params=params, timeout=self.settings.timeout)
            except requests.RequestException as exc:
                if last:
                    raise DeezerError(f"Deezer unreachable: {exc}") from None
                self._backoff(attempt)
                continue
            if response.status_code >= 500 and not last:
                self._backoff(attempt)
                continue
            if response.status_code != 200:
                raise DeezerError(f"Deezer answered HTTP {response.status_code} for {what}")
            try:
                body = response.json()
            except ValueError:
                raise DeezerError(f"Deezer answered non-JSON for {what}") from None
            error = body.get("error") if isinstance(body, dict) else None
            if not error:
                if not isinstance(body, dict):
                    raise DeezerError(f"Deezer answered {type(body).__name__} JSON for {what}, not an object")
                return body
            code = error.get("code") if isinstance(error, dict) else None
            if code == DEEZER_NO_DATA:
                return None
            if code == DEEZER_QUOTA_EXCEEDED:
                # Every worker pauses: the quota is the client's, not this request's.
                self.pacer.hold(self.settings.deezer_quota_cooldown_s * 2**attempt)
                if last:
                    raise DeezerQuotaError(
                        f"Deezer kept answering its quota error (code 4) after {attempt + 1} pauses; "
                        "stopping this run, crawl again later (DEEZER_MAX_RPS lowers the request rate)",
                        code,
                    )
                continue
            message = f"Deezer error {code} {error.get('type', '')}: {error.get('message', '')}" if isinstance(error, dict) else str(error)
            raise DeezerError(message.strip(), code)
        raise DeezerError(f"Deezer kept failing for {what}")

    def _backoff(self, attempt: int) -> None:
        self.pacer.sleep(self.settings.backoff_s * 2**attempt)

    def by_isrc(self, isrc: str) -> DeezerTrack | None:
        return _with_preview(self._get("track/isrc:" + quote(isrc.strip().upper(), safe="")))

    def track(self, track_id: int) -> DeezerTrack | None:
        """The track with a freshly signed preview URL; None when Deezer does not know it.
        Also the source of a track's ISRC when a list left it out."""
        body = self._get(f"track/{int(track_id)}")
        parsed = parse_track(body) if body else None
        return parsed if isinstance(parsed, DeezerTrack) else None

    def by_id(self, deezer_id: str | int) -> DeezerTrack | None:
        """The track by its Deezer id, with a freshly signed preview URL (they expire)."""
        body = self._get("track/" + quote(str(deezer_id).strip(), safe=""))
        return _with_preview(body)

    def search(self, title: str, artists: list[str]) -> DeezerTrack | None:
        """The first result whose artist and title both match after normalisation."""
        if not title or not artists:
            return None
        query = f'artist:"{artists[0]}" track:"{title}"'
        body = self._get("search", {"q": query, "limit": SEARCH_LIMIT})
        for raw in (body or {}).get("data", []):
            if matches(raw, title, artists):
                found = _with_preview(raw)
                if found:
                    return found
        return None

    # -- lists ----------------------------------------------------------------------------

    def _checked_next(self, next_url: str) -> str:
        api = urlsplit(self.settings.deezer_api_url)
        parts = urlsplit(next_url)
        if (parts.scheme, parts.netloc) != (api.scheme, api.netloc):
            raise DeezerError(f"Deezer's next page {next_url!r} is outside {self.settings.deezer_api_url}")
        return next_url

    def _pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every entry of a paged list, following ``next`` until there is none."""
        entries: list[dict[str, Any]] = []
        url: str | None = path
        seen: set[str] = set()
        query: dict[str, Any] | None = params
        for _ in range(MAX_PAGES):
            if url is None:
                return entries
            page = self._get(url, query)
            if page is None:
                return entries
            entries += [e for e in page.get("data") or [] if isinstance(e, dict)]
            next_url = page.get("next")
            if not next_url or next_url in seen:
                return entries
            seen.add(next_url)
            url, query = self._checked_next(str(next_url)), None
        return entries

    def _unavailable(self, ref: DeezerRef, exc: DeezerError) -> DeezerUnavailableError:
        if ref.kind == "playlist" and exc.code == DEEZER_PERMISSION:
            return DeezerUnavailableError(
                f"{ref.label} is private: Deezer's public API lists only public playlists ({exc}). "
                "Make it public in Deezer, or add its tracks to a public playlist.",
                exc.code,
            )
        return DeezerUnavailableError(f"{ref.label}: {exc}", exc.code)

    def _metadata(self, ref: DeezerRef) -> dict[str, Any]:
        try:
            body = self._get(f"{ref.kind}/{ref.id}")
        except DeezerQuotaError:
            raise
        except DeezerError as exc:
            raise self._unavailable(ref, exc) from None
        if body is None:
            raise DeezerUnavailableError(f"{ref.label} not found: Deezer has no {ref.kind} with id {ref.id}; check the id", DEEZER_NO_DATA)
        if ref.kind == "playlist" and body.get("public") is False:
            raise DeezerUnavailableError(
                f"{ref.label} is private: Deezer's public API lists only public playlists. "
                "Make it public in Deezer, or add its tracks to a public playlist."
            )
        return body

    def listing(self, ref: DeezerRef) -> DeezerListing:
        """The tracks a reference reaches, every page of them; raises DeezerUnavailableError
        for a reference that cannot be read and DeezerQuotaError when the run must stop."""
        if ref.kind == "track":
            found = self.track(int(ref.id or 0))
            if found is None:
                raise DeezerUnavailableError(f"{ref.label} not found: Deezer has no track with id {ref.id}; check the id", DEEZER_NO_DATA)
            return DeezerListing(ref, found.title, [found])
        album = ""
        if ref.kind == "chart":
            name, path = "Deezer chart", "chart/0/tracks"
        else:
            meta = self._metadata(ref)
            name = str(meta.get("title") or meta.get("name") or ref.label)
            album = name if ref.kind == "album" else ""
            path = f"artist/{ref.id}/top" if ref.kind == "artist" else f"{ref.kind}/{ref.id}/tracks"
        try:
            entries = self._pages(path, {"index": 0, "limit": PAGE_LIMIT})
        except DeezerQuotaError:
            raise
        except DeezerError as exc:
            raise self._unavailable(ref, exc) from None
        listing = DeezerListing(ref, name, [])
        for raw in entries:
            parsed = parse_track(raw, album)
            if isinstance(parsed, str):
                listing.skipped[parsed] += 1
            else:
                listing.tracks.append(parsed)
        return listing
