"""Query by example: the tracks whose embeddings lie nearest to one or several tracks in the index.

Everything comes from the served index (:class:`api.served.ServedIndex`); no
table read happens here. Every list follows the policy of :mod:`api.listing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from api.descriptor_filters import DescriptorFilter
from api.listing import ListPolicy, all_of
from api.served import Accept, Neighbour, ServedIndex
from api.vectors import unit
from catalog.bundle import TrackMeta


class TrackNotIndexedError(LookupError):
    """A track the request names is not in the index being served."""

    def __init__(self, track_id: str, role: str = "trackId") -> None:
        super().__init__(track_id)
        self.track_id = track_id
        self.role = role  # which part of the request named it: trackId, seeds, from, to ...


def require_served(index: ServedIndex, track_ids: Sequence[str], role: str) -> None:
    for track_id in track_ids:
        if track_id not in index:
            raise TrackNotIndexedError(track_id, role)


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


def seeds_query(index: ServedIndex, seeds: Sequence[str]) -> npt.NDArray[np.float32]:
    """The normalised mean of the seeds' vectors (one seed: its own vector)."""
    mean = unit(np.mean([index.vector(s) for s in seeds], axis=0))
    return mean if mean is not None else index.vector(seeds[0])  # opposite seeds cancel out: the first leads


def nearest(
    index: ServedIndex, seeds: Sequence[str], k: int, policy: ListPolicy, extra: Accept | None = None
) -> list[Neighbour]:
    """Up to ``k`` tracks nearest the seeds' mean, the seeds never among them, ``policy`` and ``extra`` applied.

    The seeds count towards the artist cap: maxPerArtist=1 (distinctArtists=true) means
    none by a seed's artists.
    """
    require_served(index, seeds, "trackId")
    acceptor = policy.acceptor(index, already=[index.meta(s) for s in seeds])
    return index.search(seeds_query(index, seeds), k, exclude=set(seeds) | policy.exclude, accept=all_of(extra, acceptor))


def recommendations(
    index: ServedIndex,
    seeds: Sequence[str],
    k: int,
    policy: ListPolicy | None = None,
    filters: DescriptorFilter | None = None,
) -> dict[str, Any]:
    """The body of GET /recommendations. ``trackId`` and ``query`` describe the first seed, as with one seed;
    descriptor ``filters`` are relative to the first seed's descriptors."""
    require_served(index, seeds, "trackId")
    extra = filters.accept(index.meta(seeds[0]).descriptors) if filters else None
    neighbours = nearest(index, seeds, k, policy or ListPolicy(), extra)
    return {
        "trackId": seeds[0],
        "seeds": list(seeds),
        "indexVersion": index.version,
        "model": index.model,
        "query": track_summary(index.meta(seeds[0])),
        "results": [{**track_summary(index.meta(n.track_id)), "similarity": n.similarity} for n in neighbours],
    }
