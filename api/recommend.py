"""Query by example: the tracks whose embeddings lie nearest to a track already in the index.

Everything comes from the loaded bundle (Annoy plus manifest metadata); no
table read happens here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.constants import DISTINCT_OVERFETCH_FACTOR, SIMILARITY_DECIMALS
from api.index_cache import LoadedIndex

# Manifest metadata keys (snake_case, as the Tracks table names them) → API field names.
_PUBLIC_FIELDS = (
    ("title", "title"),
    ("artists", "artists"),
    ("album", "album"),
    ("isrc", "isrc"),
    ("duration_ms", "durationMs"),
    ("source", "source"),
    ("preview_source", "previewSource"),
    ("tags", "tags"),
)


class TrackNotIndexedError(LookupError):
    """The track is not in the index being served."""


def cosine_similarity(angular_distance: float) -> float:
    """Annoy's angular distance is sqrt(2 - 2 cos θ) between unit vectors; this returns cos θ."""
    return round(1.0 - angular_distance * angular_distance / 2.0, SIMILARITY_DECIMALS)


def track_summary(track_id: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"trackId": track_id}
    for source_key, public_key in _PUBLIC_FIELDS:
        value = metadata.get(source_key)
        if value not in (None, "", [], {}):
            summary[public_key] = value
    summary.setdefault("title", "")
    summary.setdefault("artists", [])
    return summary


def _artist_keys(metadata: Mapping[str, Any]) -> set[str]:
    return {str(a).casefold() for a in metadata.get("artists") or ()}


def nearest(index: LoadedIndex, track_id: str, k: int, distinct_artists: bool = False) -> list[tuple[int, float]]:
    """(Annoy item, cosine similarity) of up to ``k`` neighbours of ``track_id``, nearest first.

    The query track itself is never among them. With ``distinct_artists`` a
    result shares no artist with the query or with a nearer result.
    """
    item = index.positions.get(track_id)
    if item is None:
        raise TrackNotIndexedError(track_id)
    count = index.manifest.count
    search_k = index.manifest.search_k if index.manifest.search_k > 0 else -1
    want = min(count, k + 1 if not distinct_artists else (k + 1) * DISTINCT_OVERFETCH_FACTOR)
    tracks = index.manifest.tracks
    while True:
        items, distances = index.annoy.get_nns_by_item(item, want, search_k=search_k, include_distances=True)
        picked: list[tuple[int, float]] = []
        seen_artists = _artist_keys(tracks[item]) if distinct_artists else set()
        for neighbour, distance in zip(items, distances, strict=True):
            if neighbour == item:
                continue
            if distinct_artists:
                artists = _artist_keys(tracks[neighbour])
                if artists & seen_artists:
                    continue
                seen_artists |= artists
            picked.append((neighbour, cosine_similarity(distance)))
            if len(picked) == k:
                return picked
        if want >= count or not distinct_artists:
            return picked
        want = min(count, want * 2)


def recommendations(index: LoadedIndex, track_id: str, k: int, distinct_artists: bool = False) -> dict[str, Any]:
    """The body of GET /recommendations."""
    neighbours = nearest(index, track_id, k, distinct_artists)
    manifest = index.manifest
    results = []
    for item, similarity in neighbours:
        result = track_summary(manifest.track_ids[item], manifest.tracks[item])
        result["similarity"] = similarity
        results.append(result)
    return {
        "trackId": track_id,
        "indexVersion": manifest.version,
        "model": manifest.model,
        "query": track_summary(track_id, manifest.tracks[index.positions[track_id]]),
        "results": results,
    }
