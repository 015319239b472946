"""The list policy every list of tracks follows: exclusions, artist caps, durations, duplicates.

One :class:`ListPolicy` describes what a caller asked for; :meth:`ListPolicy.acceptor`
turns it into the stateful predicate ``ServedIndex.search`` calls in similarity
order (``accept``). Other predicates (the descriptor filters) compose with it
through :func:`all_of`, ahead of it, so that the policy's state (artists
counted, recordings kept) only advances for a track they accepted too.

Duplicates are the same recording twice: the same ISRC, or the same folded title
and artists with embeddings at least ``DUPLICATE_MIN_SIMILARITY`` alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from api.search import fold
from catalog.bundle import TrackMeta

DUPLICATE_MIN_SIMILARITY = 0.99

Predicate = Callable[[TrackMeta], bool]


class VectorSource(Protocol):
    def vector(self, track_id: str) -> npt.NDArray[np.float32]: ...


def artist_keys(meta: TrackMeta) -> frozenset[str]:
    return frozenset(fold(artist) for artist in meta.artists if fold(artist))


def recording_key(meta: TrackMeta) -> tuple[str, frozenset[str]] | None:
    """(folded title, folded artists), or None when the title folds to nothing."""
    title = fold(meta.title)
    return (title, artist_keys(meta)) if title else None


@dataclass(frozen=True)
class ListPolicy:
    exclude: frozenset[str] = frozenset()
    max_per_artist: int | None = None  # None: no cap
    min_duration_ms: int | None = None
    max_duration_ms: int | None = None
    dedupe: bool = True

    def acceptor(self, vectors: VectorSource, already: Iterable[TrackMeta] = (), count_already: bool = True) -> Acceptor:
        """A fresh predicate for one list. ``already`` are tracks the list starts from (seeds, earlier
        picks): never accepted again, never duplicated, and, with ``count_already``, counted towards
        the artist cap (distinctArtists=true has always meant none by the query track's artists)."""
        acceptor = Acceptor(self, vectors)
        for meta in already:
            acceptor.remember(meta, count_artists=count_already)
        return acceptor


@dataclass
class Acceptor:
    """The stateful predicate of one list: call it in similarity order, once per candidate."""

    policy: ListPolicy
    vectors: VectorSource
    _artist_counts: Counter[str] = field(default_factory=Counter)
    _isrcs: set[str] = field(default_factory=set)
    _recordings: dict[tuple[str, frozenset[str]], list[str]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def __call__(self, meta: TrackMeta) -> bool:
        if not self.admits(meta):
            return False
        self.remember(meta)
        return True

    def admits(self, meta: TrackMeta) -> bool:
        """Whether ``meta`` may join the list now, without recording it."""
        policy = self.policy
        if meta.track_id in self._seen or meta.track_id in policy.exclude:
            return False
        if policy.min_duration_ms is not None or policy.max_duration_ms is not None:
            if meta.duration_ms is None:
                return False  # a duration filter cannot vouch for a track of unknown length
            if policy.min_duration_ms is not None and meta.duration_ms < policy.min_duration_ms:
                return False
            if policy.max_duration_ms is not None and meta.duration_ms > policy.max_duration_ms:
                return False
        cap = policy.max_per_artist
        if cap is not None and any(self._artist_counts[a] >= cap for a in artist_keys(meta)):
            return False
        return not (policy.dedupe and self.is_duplicate(meta))

    def is_duplicate(self, meta: TrackMeta) -> bool:
        if meta.isrc and meta.isrc.upper() in self._isrcs:
            return True
        key = recording_key(meta)
        if key is None or key not in self._recordings:
            return False
        vector = self.vectors.vector(meta.track_id)
        return any(
            float(vector @ self.vectors.vector(other)) >= DUPLICATE_MIN_SIMILARITY for other in self._recordings[key]
        )

    def remember(self, meta: TrackMeta, count_artists: bool = True) -> None:
        self._seen.add(meta.track_id)
        if count_artists:
            self._artist_counts.update(artist_keys(meta))
        if meta.isrc:
            self._isrcs.add(meta.isrc.upper())
        key = recording_key(meta)
        if key is not None:
            self._recordings.setdefault(key, []).append(meta.track_id)


def all_of(*predicates: Predicate | None) -> Predicate | None:
    """One predicate that accepts what every given one accepts, asked in order and stopping at the first no.

    Stateful predicates (an :class:`Acceptor`) belong last, so that they only record
    tracks the stateless ones let through.
    """
    present = [p for p in predicates if p is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return lambda meta: all(p(meta) for p in present)

