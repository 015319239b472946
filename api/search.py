"""GET /search: tracks whose title, artists or album match a text, from the served bundle.

Matching is on folded text (case, accents and punctuation removed). A track
matches when every word of the query is a prefix of a word in its title,
artists or album (word-prefix matching), or, failing that, appears inside one
of those words (substring). Best first: an exact title, then an exact artist
or album, then prefix matches (the title first), then substring matches.

The structure is built once per served index (:func:`search_structure` keeps
the one for the index being served) and never per request: a sorted word list
with the tracks of each word, so a prefix is two binary searches and the
substring tier scans distinct words, not tracks.
"""

from __future__ import annotations

import bisect
import functools
import re
import threading
import unicodedata
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from catalog.bundle import TrackMeta

_NON_WORD = re.compile(r"[^\w]+")
FOLD_CACHE_SIZE = 1 << 16  # names, about 6 MB at most


@functools.lru_cache(maxsize=FOLD_CACHE_SIZE)
def fold(text: str) -> str:
    """Lower case, accents removed, runs of punctuation and space made one space.

    Cached: every list a request builds folds each candidate's title and artists for its
    artist cap and duplicate check, and a catalogue's names repeat from request to request."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", stripped).replace("_", " ").strip()


class Field(IntEnum):
    """Which part of a track matched; lower ranks first."""

    TITLE = 0
    ARTIST = 1
    ALBUM = 2


class Tier(IntEnum):
    """How well a track matched; lower ranks first."""

    EXACT_TITLE = 0
    EXACT_OTHER = 1
    PREFIX = 2
    SUBSTRING = 3


@dataclass(frozen=True)
class Match:
    track_id: str
    tier: Tier
    field: Field

    @property
    def kind(self) -> str:
        return "exact" if self.tier <= Tier.EXACT_OTHER else self.tier.name.lower()


@dataclass(frozen=True)
class _Entry:
    track_id: str
    title: str  # folded
    fields: tuple[tuple[Field, str], ...]  # every folded field text: the title, each artist, the album
    words: tuple[frozenset[str], ...]  # words per Field value


class SearchStructure:
    """Folded fields of every served track, and the sorted vocabulary with the entries of each word."""

    def __init__(self, metas: Iterable[TrackMeta]) -> None:
        self._entries: list[_Entry] = []
        postings: dict[str, set[int]] = {}
        self._exact: dict[str, list[tuple[int, Field]]] = {}
        for meta in metas:
            fields = [(Field.TITLE, fold(meta.title))]
            fields += [(Field.ARTIST, fold(artist)) for artist in meta.artists]
            if meta.album:
                fields.append((Field.ALBUM, fold(meta.album)))
            fields = [(field, text) for field, text in fields if text]
            words = tuple(
                frozenset(word for field, text in fields if field is f for word in text.split()) for f in Field
            )
            position = len(self._entries)
            self._entries.append(_Entry(meta.track_id, fields[0][1] if fields and fields[0][0] is Field.TITLE else "",
                                        tuple(fields), words))
            for word in set().union(*words):
                postings.setdefault(word, set()).add(position)
            for field, text in fields:
                self._exact.setdefault(text, []).append((position, field))
        self._vocabulary = sorted(postings)
        self._postings = [postings[word] for word in self._vocabulary]

    def __len__(self) -> int:
        return len(self._entries)

    def _with_prefix(self, prefix: str) -> Iterator[int]:
        start = bisect.bisect_left(self._vocabulary, prefix)
        end = bisect.bisect_left(self._vocabulary, prefix + "\U0010ffff")
        return iter(range(start, end))

    def _entries_where_words(self, query_words: list[str], substring: bool) -> set[int]:
        """Entries in which every query word starts (or, with ``substring``, occurs in) some word."""
        found: set[int] | None = None
        for word in sorted(set(query_words), key=len, reverse=True):  # longest first: smallest sets
            if substring:
                vocabulary = (i for i, known in enumerate(self._vocabulary) if word in known)
            else:
                vocabulary = self._with_prefix(word)
            entries: set[int] = set()
            for i in vocabulary:
                entries |= self._postings[i]
            found = entries if found is None else found & entries
            if not found:
                return set()
        return found or set()

    def search(self, query: str, limit: int) -> list[Match]:
        """Up to ``limit`` matches for ``query`` (already checked to fold to some words), best first."""
        folded = fold(query)
        words = folded.split()
        ranked: dict[int, tuple[Tier, Field]] = {}
        for position, field in self._exact.get(folded, ()):
            rank = (Tier.EXACT_TITLE if field is Field.TITLE else Tier.EXACT_OTHER, field)
            ranked[position] = min(rank, ranked.get(position, rank))
        for position in self._entries_where_words(words, substring=False):
            if position not in ranked:
                ranked[position] = (Tier.PREFIX, self._prefix_field(self._entries[position], words))
        # A lower tier cannot outrank what is already found, so the substring scan runs only when needed.
        if len(ranked) < limit:
            for position in self._entries_where_words(words, substring=True):
                ranked.setdefault(position, (Tier.SUBSTRING, self._substring_field(self._entries[position], words)))
        order = sorted(
            ranked.items(),
            key=lambda item: (item[1], len(self._entries[item[0]].title), self._entries[item[0]].title,
                              self._entries[item[0]].track_id),
        )
        return [Match(self._entries[position].track_id, tier, field) for position, (tier, field) in order[:limit]]

    @staticmethod
    def _prefix_field(entry: _Entry, words: list[str]) -> Field:
        """The first field whose own words take every query word as a prefix; else the first that takes one."""
        for field in Field:
            own = entry.words[field]
            if all(any(known.startswith(word) for known in own) for word in words):
                return field
        return next(f for f in Field if any(k.startswith(w) for k in entry.words[f] for w in words))

    @staticmethod
    def _substring_field(entry: _Entry, words: list[str]) -> Field:
        for field in Field:
            if any(word in known for known in entry.words[field] for word in words):
                return field
        return Field.TITLE


class _Memo:
    """The structure for the index being served; rebuilt only when another index is served.

    The index is held weakly, so a swapped-out index is not kept alive by its search structure.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: weakref.ref[object] | None = None
        self._structure: SearchStructure | None = None

    def get(self, key: object, metas: Iterable[TrackMeta]) -> SearchStructure:
        with self._lock:
            if self._structure is None or self._key is None or self._key() is not key:
                self._structure = SearchStructure(metas)
                self._key = weakref.ref(key)
            return self._structure


_memo = _Memo()


def search_structure(index_key: object, metas: Iterable[TrackMeta]) -> SearchStructure:
    """The search structure of the index identified by ``index_key`` (the served index object itself)."""
    return _memo.get(index_key, metas)
