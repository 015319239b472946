"""The served index: one verified base + delta pair, never mutated, swapped whole by :mod:`api.index_cache`.

Every API feature (recommendations, discovery, filters, query by audio, the map)
asks this interface and nothing below it. The base is Annoy over the searched
space plus per-track metadata opened from SQLite by item number; the delta is
searched exactly (it is small) and its ids, with the tombstones, hide the base's
copies. Results of both are merged by similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from api.constants import SIMILARITY_DECIMALS
from catalog.bundle import BaseReader, BundleError, Delta, TrackMeta

Accept = Callable[[TrackMeta], bool]


@dataclass(frozen=True)
class Neighbour:
    track_id: str
    similarity: float  # cosine similarity in the searched space, rounded to SIMILARITY_DECIMALS


def cosine_similarity(angular_distance: float) -> float:
    """Annoy's angular distance is sqrt(2 - 2 cos θ) between unit vectors; this returns cos θ."""
    return round(1.0 - angular_distance * angular_distance / 2.0, SIMILARITY_DECIMALS)


def descending(values: npt.NDArray[np.float32], first: int) -> Iterator[int]:
    """Positions of ``values``, largest first, ties in position order: a stable argsort's order, sorted lazily.

    A search needs the delta's few nearest, not all of it in order: each block
    holds the next ``first``, 2 × ``first`` ... largest values (every value tied
    with a block's smallest goes in with it), found by a partition and sorted on
    its own, so a 10k delta costs a tenth of a full argsort.
    """
    n = int(values.size)
    upper = np.inf
    size = max(1, first)
    while size < n:
        threshold = np.partition(values, n - size)[n - size]  # the size-th largest value
        block = np.flatnonzero((values >= threshold) & (values < upper))
        yield from block[np.argsort(-values[block], kind="stable")].tolist()
        upper = threshold
        size *= 2
    rest = np.flatnonzero(values < upper)
    yield from rest[np.argsort(-values[rest], kind="stable")].tolist()


class _DeltaPart:
    """The delta in the searched space, held in memory (it is small by construction)."""

    def __init__(self, delta: Delta | None, base: BaseReader) -> None:
        entries = delta.entries if delta is not None else {}
        self.ids = list(entries)
        self.positions = {track_id: i for i, track_id in enumerate(self.ids)}
        self.metas = [entry.meta for entry in entries.values()]
        raw = np.stack([entry.vector for entry in entries.values()]) if entries else np.zeros((0, base.manifest.dim), np.float32)
        self.vectors = base.transform.apply(raw)
        self.hidden = frozenset(entries) | frozenset(delta.tombstones if delta is not None else ())


class ServedIndex:
    """A base and its delta, opened and verified; what every route answers from."""

    def __init__(self, base: BaseReader, delta: Delta | None, version: str) -> None:
        manifest = base.manifest
        if delta is not None and (delta.base_version != manifest.version or delta.dim != manifest.dim or delta.model != manifest.model):
            raise BundleError(f"delta of base {delta.base_version} cannot be served with base {manifest.version}")
        self.version = version
        self.model = manifest.model
        self.dim = manifest.searched_dim  # of the searched space; the raw vectors' is manifest.dim
        self.space = manifest.transform.space  # vectors of indexes with the same space are comparable
        self.created_at = delta.created_at if delta is not None and delta.created_at else manifest.created_at
        self.base_version = manifest.version
        self.delta_sequence = delta.sequence if delta is not None else 0
        self._base = base
        self._delta = _DeltaPart(delta, base)
        self._hidden_items = frozenset(base.items_of(self._delta.hidden).values())
        self.count = manifest.count - len(self._hidden_items) + len(self._delta.ids)
        self._n_trees = max(1, manifest.n_trees)
        self._search_k = manifest.search_k if manifest.search_k > 0 else -1

    @property
    def base(self) -> BaseReader:
        return self._base

    def close(self) -> None:
        self._base.close()

    def _base_item(self, track_id: str) -> int | None:
        if track_id in self._delta.hidden:
            return None
        return self._base.item_of(track_id)

    def __contains__(self, track_id: object) -> bool:
        return isinstance(track_id, str) and (track_id in self._delta.positions or self._base_item(track_id) is not None)

    def __len__(self) -> int:
        return self.count

    def track_ids(self) -> Iterator[str]:
        """Every servable id: the base's in item order (hidden ones skipped), then the delta's."""
        for rows in self._base.iter_rows():
            for item, track_id, _ in rows:
                if item not in self._hidden_items:
                    yield track_id
        yield from self._delta.ids

    def meta(self, track_id: str) -> TrackMeta:
        position = self._delta.positions.get(track_id)
        if position is not None:
            return self._delta.metas[position]
        item = self._base_item(track_id)
        if item is None:
            raise KeyError(track_id)
        return self._base.meta(item)

    def vector(self, track_id: str) -> npt.NDArray[np.float32]:
        """The track's unit vector in the searched space; KeyError when not served."""
        position = self._delta.positions.get(track_id)
        if position is not None:
            return self._delta.vectors[position].copy()
        item = self._base_item(track_id)
        if item is None:
            raise KeyError(track_id)
        vector = np.asarray(self._base.annoy.get_item_vector(item), dtype=np.float32)
        return vector / np.float32(np.linalg.norm(vector))

    def transform(self, raw: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return self._base.transform.apply(raw)

    def project(self, track_id: str) -> tuple[float, float]:
        """2-D map coordinates from the PCA basis fitted at base build (delta tracks use the same basis)."""
        x, y = self._base.projection.apply(self.vector(track_id))[0]
        return float(x), float(y)

    def _base_candidates(self, query: npt.NDArray[np.float32], want: int) -> Iterator[tuple[float, int, str]]:
        """(similarity, item, track id) of visible base items, nearest first, each once, widening until exhausted."""
        total = self._base.manifest.count
        seen: set[int] = set()
        want = max(1, min(total, want))
        while True:
            search_k = -1 if self._search_k < 0 else max(self._search_k, want * self._n_trees)
            items, distances = self._base.annoy.get_nns_by_vector(query, want, search_k=search_k, include_distances=True)
            fresh = [(item, distance) for item, distance in zip(items, distances, strict=True) if item not in seen]
            seen.update(item for item, _ in fresh)
            ids = self._base.track_ids_of([item for item, _ in fresh if item not in self._hidden_items])
            for item, distance in fresh:
                if item in ids:
                    yield cosine_similarity(distance), item, ids[item]
            if want >= total:
                return
            want = min(total, want * 2)

    def search(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        *,
        exclude: Collection[str] = (),
        accept: Accept | None = None,
    ) -> list[Neighbour]:
        """Up to ``k`` nearest tracks to ``query`` (a searched-space vector), nearest first.

        Base and delta results are merged by similarity; tombstoned and replaced base items
        never appear. ``exclude`` ids are skipped without asking ``accept``; ``accept`` sees
        every other candidate once, in similarity order, and may keep state. The search
        widens until ``k`` are accepted or every track has been considered.
        """
        if k < 1:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.size != self.dim:
            raise ValueError(f"query has {query.size} values, the index has dim {self.dim}")
        # Enough for k when nothing is filtered out; the candidates widen themselves if more are needed.
        want = k + len(exclude) + min(len(self._hidden_items), k) + (0 if accept is None else 3 * k)
        delta_sims = self._delta.vectors @ query
        delta_order = descending(delta_sims, want)
        next_delta = next(delta_order, None)
        base = self._base_candidates(query, want)
        next_base = next(base, None)
        picked: list[Neighbour] = []
        while len(picked) < k:
            delta_sim = None if next_delta is None else round(float(delta_sims[next_delta]), SIMILARITY_DECIMALS)
            if next_base is None and delta_sim is None:
                break
            if next_base is not None and (delta_sim is None or next_base[0] >= delta_sim):
                similarity, item, track_id = next_base
                next_base = next(base, None)
                meta_of: Callable[[], TrackMeta] = lambda item=item: self._base.meta(item)  # noqa: E731
            else:
                position = next_delta
                next_delta = next(delta_order, None)
                similarity, track_id = delta_sim, self._delta.ids[position]
                meta_of = lambda position=position: self._delta.metas[position]  # noqa: E731
            if track_id in exclude or (accept is not None and not accept(meta_of())):
                continue
            picked.append(Neighbour(track_id, similarity))
        return picked
