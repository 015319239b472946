"""Deezer's public API as a preview resolver: ISRC lookup, then a strict artist + title search.

Deezer reports errors as JSON bodies with HTTP 200 (``{"error": {"type", "message", "code"}}``);
they are errors here too. Preview URLs are signed and expire, so callers resolve right before
downloading and never keep them.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from crawler.download import pooled_session
from crawler.settings import CrawlerSettings

# https://developers.deezer.com/api/errors
DEEZER_QUOTA_EXCEEDED = 4
DEEZER_NO_DATA = 800
SEARCH_LIMIT = 10

_BRACKETED_EXTRA = re.compile(r"[\(\[][^\)\]]*\b(feat|ft|featuring|with|remaster(ed)?)\b[^\)\]]*[\)\]]")
_DASH_EXTRA = re.compile(r"\s+-\s+.*\b(remaster(ed)?|feat|ft|featuring)\b.*$")
_TRAILING_FEAT = re.compile(r"\s+(feat|ft|featuring)\.?\s.*$")
_NON_WORD = re.compile(r"[^\w]+")


class DeezerError(RuntimeError):
    """Deezer answered with an error (an HTTP error or a JSON error body)."""


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


def _track(raw: dict[str, Any]) -> DeezerTrack | None:
    preview = raw.get("preview") or ""
    if not preview:
        return None
    return DeezerTrack(
        id=int(raw.get("id", 0)),
        title=str(raw.get("title", "")),
        artist=str((raw.get("artist") or {}).get("name", "")),
        preview_url=preview,
    )


def matches(track: dict[str, Any], title: str, artists: list[str]) -> bool:
    wanted_title = normalise(title)
    titles = {normalise(str(track.get(k, ""))) for k in ("title", "title_short")}
    artist = normalise(str((track.get("artist") or {}).get("name", "")))
    return bool(wanted_title) and wanted_title in titles and artist in {normalise(a) for a in artists}


class DeezerClient:
    def __init__(self, settings: CrawlerSettings) -> None:
        self.settings = settings
        self._local = threading.local()

    @property
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = pooled_session(1)
        return self._local.session

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The JSON body; None when Deezer says it has no data; DeezerError otherwise."""
        url = self.settings.deezer_api_url + path
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
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
                raise DeezerError(f"Deezer answered HTTP {response.status_code} for {path}")
            try:
                body = response.json()
            except ValueError:
                raise DeezerError(f"Deezer answered non-JSON for {path}") from None
            error = body.get("error") if isinstance(body, dict) else None
            if not error:
                return body
            code = error.get("code")
            if code == DEEZER_NO_DATA:
                return None
            if code == DEEZER_QUOTA_EXCEEDED and not last:
                self._backoff(attempt)
                continue
            raise DeezerError(f"Deezer error {code} {error.get('type', '')}: {error.get('message', '')}".strip())
        raise DeezerError(f"Deezer kept failing for {path}")

    def _backoff(self, attempt: int) -> None:
        time.sleep(self.settings.backoff_s * 2**attempt)

    def by_isrc(self, isrc: str) -> DeezerTrack | None:
        body = self._get("track/isrc:" + quote(isrc.strip().upper(), safe=""))
        return _track(body) if body else None

    def by_id(self, deezer_id: str | int) -> DeezerTrack | None:
        """The track by its Deezer id, with a freshly signed preview URL (they expire)."""
        body = self._get("track/" + quote(str(deezer_id).strip(), safe=""))
        return _track(body) if body else None

    def search(self, title: str, artists: list[str]) -> DeezerTrack | None:
        """The first result whose artist and title both match after normalisation."""
        if not title or not artists:
            return None
        query = f'artist:"{artists[0]}" track:"{title}"'
        body = self._get("search", {"q": query, "limit": SEARCH_LIMIT})
        for raw in (body or {}).get("data", []):
            if matches(raw, title, artists):
                found = _track(raw)
                if found:
                    return found
        return None
