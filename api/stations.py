"""Radio stations: the next tracks of a station, steered by its seeds and its listener's feedback.

The query is styleWeight·mean(seeds) + likeWeight·mean(liked) − dislikeWeight·mean(disliked),
normalised. Candidates near it are then pushed down before the batch is chosen:
by ``DISLIKED_ARTIST_PENALTY`` when they share an artist with a disliked track,
and by ``DISLIKED_SOUND_PUSH``·dislikeWeight times their similarity to the
nearest disliked track, so tracks that sound like what the listener disliked
sink too (subtracting the mean alone barely moves a query in a space where all
tracks are alike: on the demo catalogue it cut the disliked instrument's share
by 0.19, with the push by 0.71; bench/RESULTS.md). A station never hands out a
track twice in one cycle; a cycle ends when the reachable catalogue (every served
track but the seeds and the disliked tracks) has been played, and the next one
starts afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from api.listing import ListPolicy, artist_keys
from api.recommend import seeds_query
from api.served import Accept, Neighbour, ServedIndex
from api.stations_store import PlayedBatch, Signal, Station
from api.vectors import unit

DISLIKED_ARTIST_PENALTY = 0.15
# At the default dislikeWeight (0.5) a candidate loses its whole similarity to the nearest disliked track.
DISLIKED_SOUND_PUSH = 2.0
# Candidates fetched per wanted track before re-ranking and the artist cap; doubled while short.
CANDIDATE_FACTOR = 4


class NoReachableTracksError(LookupError):
    """The station's seeds and dislikes leave nothing in the catalogue to play."""


@dataclass(frozen=True)
class Pick:
    track_id: str
    similarity: float  # to the station's query vector, before any penalty


def mean_vector(index: ServedIndex, track_ids: Sequence[str]) -> npt.NDArray[np.float32] | None:
    served = [index.vector(t) for t in track_ids if t in index]
    return None if not served else np.mean(served, axis=0).astype(np.float32)


def query_vector(index: ServedIndex, station: Station) -> npt.NDArray[np.float32]:
    """styleWeight·mean(seeds) + likeWeight·mean(liked) − dislikeWeight·mean(disliked), normalised.

    Tracks no longer served are left out of their mean. When the sum has no direction
    (all weights zero, or feedback cancelling the seeds), the seeds alone lead.
    """
    definition = station.definition
    signals = station.latest_signals()
    served_seeds = [s for s in definition.seeds if s in index]
    seeds = mean_vector(index, served_seeds)
    if seeds is None:
        raise NoReachableTracksError("none of the station's seeds is in the index being served")
    query = definition.style_weight * seeds
    liked_mean = mean_vector(index, [t for t, s in signals.items() if s is Signal.LIKE])
    disliked_mean = mean_vector(index, [t for t, s in signals.items() if s is Signal.DISLIKE])
    if liked_mean is not None:
        query = query + definition.like_weight * liked_mean
    if disliked_mean is not None:
        query = query - definition.dislike_weight * disliked_mean
    normalised = unit(query)
    return seeds_query(index, served_seeds) if normalised is None else normalised


def disliked(station: Station) -> list[str]:
    return [t for t, s in station.latest_signals().items() if s is Signal.DISLIKE]


@dataclass(frozen=True)
class PushDown:
    """How much similarity a candidate loses for resembling what the listener disliked."""

    artists: frozenset[str]
    vectors: npt.NDArray[np.float32] | None  # the disliked tracks still served, one row each
    sound_weight: float

    @classmethod
    def of(cls, index: ServedIndex, station: Station) -> PushDown:
        served = [t for t in disliked(station) if t in index]
        artists = frozenset(a for t in served for a in artist_keys(index.meta(t)))
        vectors = np.stack([index.vector(t) for t in served]) if served else None
        return cls(artists, vectors, DISLIKED_SOUND_PUSH * station.definition.dislike_weight)

    def penalty(self, index: ServedIndex, track_id: str) -> float:
        if self.vectors is None:
            return 0.0
        sound = self.sound_weight * max(0.0, float(np.max(self.vectors @ index.vector(track_id))))
        artist = DISLIKED_ARTIST_PENALTY if artist_keys(index.meta(track_id)) & self.artists else 0.0
        return sound + artist


def unreachable(station: Station) -> frozenset[str]:
    """Never played: the seeds (the listener chose them) and the tracks they disliked."""
    return frozenset(station.definition.seeds) | frozenset(disliked(station))


def next_batch(
    index: ServedIndex, station: Station, n: int, accept: Accept | None = None
) -> tuple[PlayedBatch, list[Pick]]:
    """The next ``n`` tracks (fewer only when the reachable catalogue, or what ``accept`` lets through, is
    smaller) and the batch to record."""
    query = query_vector(index, station)
    never = unreachable(station)
    reachable = index.count - sum(1 for t in never if t in index)
    if reachable <= 0:
        raise NoReachableTracksError("the station's seeds and dislikes cover the whole catalogue")
    n = min(n, reachable)
    cycle = station.cycle
    played = station.played_this_cycle()
    picks = _pick(index, station, query, n, never | set(played), accept)
    if len(picks) < n:
        # The cycle is through the reachable catalogue: finish this batch from a fresh cycle.
        cycle += 1
        more = _pick(index, station, query, n - len(picks), never | {p.track_id for p in picks}, accept)
        picks += more
    batch = PlayedBatch(cycle=cycle, batch=station.next_batch, tracks=tuple(p.track_id for p in picks))
    return batch, picks


def _pick(
    index: ServedIndex,
    station: Station,
    query: npt.NDArray[np.float32],
    n: int,
    exclude: set[str],
    accept: Accept | None = None,
) -> list[Pick]:
    """Up to ``n`` tracks near ``query`` that ``accept`` lets through: what resembles the dislikes pushed
    down, then the batch's artist cap."""
    if n <= 0:
        return []
    push = PushDown.of(index, station)
    policy = ListPolicy(exclude=frozenset(exclude), max_per_artist=station.definition.max_per_artist)
    # The push can lift candidates from further down, so a station with dislikes looks further.
    want = n * CANDIDATE_FACTOR * (1 if push.vectors is None else 2)
    while True:
        candidates = index.search(query, want, exclude=exclude, accept=accept)
        scored = sorted(candidates, key=lambda c: -(c.similarity - push.penalty(index, c.track_id)))
        acceptor = policy.acceptor(index)
        picks = [Pick(c.track_id, c.similarity) for c in scored if acceptor(index.meta(c.track_id))][:n]
        exhausted = len(candidates) < want
        if len(picks) >= n or exhausted:
            return picks if len(picks) >= n or not policy.max_per_artist else _uncapped(picks, scored, n)
        want *= 2


def _uncapped(picks: list[Pick], scored: Sequence[Neighbour], n: int) -> list[Pick]:
    """When the artist cap alone leaves the batch short, fill it: a repeat artist beats a short batch."""
    chosen = {p.track_id for p in picks}
    extra = [Pick(c.track_id, c.similarity) for c in scored if c.track_id not in chosen]
    return picks + extra[: n - len(picks)]
