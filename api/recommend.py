"""Query by example: the tracks whose embeddings lie nearest to a track already in the index.

Everything comes from the served index (:class:`api.served.ServedIndex`); no
table read happens here.
"""

from __future__ import annotations

from typing import Any

from api.descriptor_filters import DescriptorFilter
from api.served import Accept, ServedIndex
from catalog.bundle import TrackMeta


class TrackNotIndexedError(LookupError):
    """The track is not in the index being served."""


def track_summary(meta: TrackMeta) -> dict[str, Any]:
    """How every response shows a track (camelCase; empty optional fields left out)."""
    summary: dict[str, Any] = {"trackId": meta.track_id, "title": meta.title, "artists": list(meta.artists)}
    optional: dict[str, Any] = {
        "album": meta.album,
        "isrc": meta.isrc,
        "durationMs": meta.duration_ms,
        "source": meta.source,
        "previewSource": meta.preview_source,
        "tags": meta.tags,
        "descriptors": meta.descriptors,
    }
    summary.update({k: v for k, v in optional.items() if v not in (None, "", [], {})})
    return summary


def _artist_keys(meta: TrackMeta) -> set[str]:
    return {artist.casefold() for artist in meta.artists}


def distinct_artists_filter(query: TrackMeta) -> Accept:
    """Accepts a track only if it shares no artist with the query or with an accepted track."""
    seen = _artist_keys(query)

    def accept(meta: TrackMeta) -> bool:
        artists = _artist_keys(meta)
        if artists & seen:
            return False
        seen.update(artists)
        return True

    return accept


def all_of(*accepts: Accept | None) -> Accept | None:
    """One predicate that accepts what every given one accepts, asked in order and stopping at the first no.

    Put stateless predicates (descriptor filters) before stateful ones (artist caps), so
    that the stateful ones only count tracks that are accepted.
    """
    chain = [accept for accept in accepts if accept is not None]
    if not chain:
        return None
    if len(chain) == 1:
        return chain[0]
    return lambda meta: all(accept(meta) for accept in chain)


def recommendations(
    index: ServedIndex,
    track_id: str,
    k: int,
    distinct_artists: bool = False,
    filters: DescriptorFilter | None = None,
) -> dict[str, Any]:
    """The body of GET /recommendations: the query track itself is never among the results."""
    try:
        query = index.meta(track_id)
        vector = index.vector(track_id)
    except KeyError:
        raise TrackNotIndexedError(track_id) from None
    accept = all_of(
        filters.accept(query.descriptors) if filters else None,
        distinct_artists_filter(query) if distinct_artists else None,
    )
    neighbours = index.search(vector, k, exclude={track_id}, accept=accept)
    return {
        "trackId": track_id,
        "indexVersion": index.version,
        "model": index.model,
        "query": track_summary(query),
        "results": [{**track_summary(index.meta(n.track_id)), "similarity": n.similarity} for n in neighbours],
    }
