"""The served index: one verified bundle, never mutated, swapped whole by :mod:`api.index_cache`.

Every API feature (recommendations, discovery, filters, query by audio, the map)
asks this interface and nothing below it, so the bundle's layout can change
without touching a route.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from annoy import AnnoyIndex

from api.constants import SIMILARITY_DECIMALS
from catalog.bundle import Manifest, Projection, TrackMeta, Transform


@dataclass(frozen=True)
class Neighbour:
    track_id: str
    similarity: float  # cosine similarity in the searched space, rounded to SIMILARITY_DECIMALS


Accept = Callable[[TrackMeta], bool]


def cosine_similarity(angular_distance: float) -> float:
    """Annoy's angular distance is sqrt(2 - 2 cos θ) between unit vectors; this returns cos θ."""
    return round(1.0 - angular_distance * angular_distance / 2.0, SIMILARITY_DECIMALS)


class ServedIndex:
    """Annoy over the catalogue's vectors plus each track's :class:`TrackMeta`, opened from one bundle."""

    def __init__(self, manifest: Manifest, annoy: AnnoyIndex, directory: Path) -> None:
        self.version = manifest.version
        self.model = manifest.model
        self.dim = manifest.dim
        self.count = manifest.count
        self.created_at = manifest.created_at
        self.directory = directory
        self._annoy = annoy
        self._n_trees = max(1, manifest.n_trees)
        self._search_k = manifest.search_k if manifest.search_k > 0 else -1
        self._ids = manifest.track_ids
        self._metas = manifest.metas()
        self._items = {track_id: i for i, track_id in enumerate(self._ids)}
        self._transform = Transform.from_dict(manifest.transform)
        self._projection = Projection.from_dict(manifest.projection, manifest.dim) if manifest.projection else None

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._items

    def __len__(self) -> int:
        return self.count

    def track_ids(self) -> Iterator[str]:
        return iter(self._ids)

    def meta(self, track_id: str) -> TrackMeta:
        return self._metas[self._items[track_id]]

    def vector(self, track_id: str) -> npt.NDArray[np.float32]:
        """The track's unit vector in the searched space (what Annoy holds); KeyError when not served."""
        vector = np.asarray(self._annoy.get_item_vector(self._items[track_id]), dtype=np.float32)
        return vector / np.float32(np.linalg.norm(vector))

    def transform(self, raw: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return self._transform.apply(raw)

    def project(self, track_id: str) -> tuple[float, float]:
        """2-D map coordinates from the PCA basis fitted when the bundle was built."""
        if self._projection is None:
            raise LookupError(f"index {self.version} carries no projection basis")
        x, y = self._projection.apply(self.vector(track_id))[0]
        return float(x), float(y)

    def search(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        *,
        exclude: Collection[str] = (),
        accept: Accept | None = None,
    ) -> list[Neighbour]:
        """Up to ``k`` nearest tracks to ``query`` (a searched-space vector), nearest first.

        ``exclude`` ids are skipped without asking ``accept``; ``accept`` sees every other
        candidate once, in similarity order, and may keep state. The search widens until
        ``k`` are accepted or every track has been considered.
        """
        if k < 1:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.size != self.dim:
            raise ValueError(f"query has {query.size} values, the index has dim {self.dim}")
        picked: list[Neighbour] = []
        considered: set[int] = set()
        want = min(self.count, k + len(exclude) + (0 if accept is None else 3 * k))
        while True:
            search_k = -1 if self._search_k < 0 else max(self._search_k, want * self._n_trees)
            items, distances = self._annoy.get_nns_by_vector(query, want, search_k=search_k, include_distances=True)
            for item, distance in zip(items, distances, strict=True):
                if item in considered:
                    continue
                considered.add(item)
                track_id = self._ids[item]
                if track_id in exclude or (accept is not None and not accept(self._metas[item])):
                    continue
                picked.append(Neighbour(track_id, cosine_similarity(distance)))
                if len(picked) == k:
                    return picked
            if want >= self.count:
                return picked
            want = min(self.count, want * 2)
