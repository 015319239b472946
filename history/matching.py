"""Plays to catalogue tracks: by Spotify track URI where the export has one, else by artist and title.

The catalogue is the index being served (only indexed tracks have the embedding every
personal model needs). Names are compared folded as GET /search folds them and
without what Spotify appends to one recording's title and not another's ("- Remastered
2011", "(feat. X)", "- Radio Edit"), so an export's name finds the catalogue's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from api.search import fold
from api.served import ServedIndex
from catalog.bundle import TrackMeta
from catalog.keys import SPOTIFY_TRACK_ID_PATTERN
from history.exports import SPOTIFY_TRACK_URI_PREFIX

_SPOTIFY_ID_RE = re.compile(SPOTIFY_TRACK_ID_PATTERN)
_FEATURING = re.compile(r"[(\[]\s*(?:feat|ft|featuring|with)\b[^)\]]*[)\]]", re.IGNORECASE)
_VERSION_SUFFIX = re.compile(r"\s+-\s+(?:[^-]*\b(?:remaster(?:ed)?|radio edit|single version|mono|stereo|live)\b.*)$", re.IGNORECASE)


def normalise_title(title: str) -> str:
    return fold(_VERSION_SUFFIX.sub("", _FEATURING.sub("", title)))


def name_key(artist: str, title: str) -> tuple[str, str]:
    return fold(artist), normalise_title(title)


def spotify_id_of(uri: str) -> str:
    """The id in spotify:track:ID, or "" when the URI is not a track's."""
    track_id = uri[len(SPOTIFY_TRACK_URI_PREFIX):] if uri.startswith(SPOTIFY_TRACK_URI_PREFIX) else ""
    return track_id if _SPOTIFY_ID_RE.fullmatch(track_id) else ""


class CatalogueMatcher:
    """Spotify id and (artist, title) lookups over the served tracks, built once per import."""

    def __init__(self, metas: Iterable[TrackMeta]) -> None:
        self._by_spotify: dict[str, str] = {}
        self._by_name: dict[tuple[str, str], str] = {}
        for meta in metas:
            spotify = meta.refs.get("spotify") or (meta.track_id if meta.source == "spotify" else "")
            if spotify:
                self._by_spotify.setdefault(spotify, meta.track_id)
            for artist in meta.artists:
                self._by_name.setdefault(name_key(artist, meta.title), meta.track_id)

    def __len__(self) -> int:
        return len(self._by_name)

    def match(self, spotify_uri: str, artist: str, title: str) -> str:
        """The catalogue track id, or ""."""
        spotify = spotify_id_of(spotify_uri)
        if spotify and spotify in self._by_spotify:
            return self._by_spotify[spotify]
        return self._by_name.get(name_key(artist, title), "")


def matcher_for(index: ServedIndex) -> CatalogueMatcher:
    """The matcher over every track of the served index."""
    return CatalogueMatcher(index.meta(track_id) for track_id in index.track_ids())
