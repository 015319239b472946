"""Playlists built from a few tracks: continuation (carry on from them) and paths (move from one to another).

Both answer from the served index and follow the list policy of :mod:`api.listing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from api.listing import ListPolicy, all_of
from api.recommend import require_served, seeds_query
from api.served import Accept, ServedIndex
from api.vectors import cosine, slerp, unit

# Continuation: the context mixes the last CONTEXT_TRACKS tracks, the newest weighing 1 and each older
# one CONTEXT_DECAY times the next, with the seeds' mean at SEED_WEIGHT, so the playlist drifts along
# with what it just played but keeps the seeds' theme.
CONTEXT_TRACKS = 5
CONTEXT_DECAY = 0.6
SEED_WEIGHT = 1.0
# Path: how many candidates near each waypoint the rising walk chooses among (with steps chosen one by
# one, 10 gave a rising share of 0.82 on the demo catalogue, 20 gave 0.83, every track 0.90).
PATH_CANDIDATES = 20
SIMILARITY_DECIMALS = 6


def mean_of(values: Sequence[float]) -> float:
    return round(float(np.mean(values)), SIMILARITY_DECIMALS) if values else 0.0


@dataclass(frozen=True)
class ContinuationRequest:
    """What a continuation starts from.

    With ``userId``, POST /playlists/continue hands the same request to
    :func:`api.personal.continue_for_listener`, whose listener's model picks the steps.
    """

    seeds: tuple[str, ...]
    length: int
    policy: ListPolicy = field(default_factory=ListPolicy)


@dataclass(frozen=True)
class Step:
    track_id: str
    similarity: float  # to the context it was picked for
    step_similarity: float  # to the track before it (the last seed for the first step)


@dataclass(frozen=True)
class Continuation:
    steps: list[Step]

    @property
    def mean_step_similarity(self) -> float:
        return mean_of([s.step_similarity for s in self.steps])


def context_vector(
    index: ServedIndex, playlist: Sequence[str], seeds_mean: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    recent = playlist[-CONTEXT_TRACKS:][::-1]  # newest first
    mix = SEED_WEIGHT * seeds_mean + sum(CONTEXT_DECAY**age * index.vector(t) for age, t in enumerate(recent))
    vector = unit(mix)
    return seeds_mean if vector is None else vector


def continue_playlist(index: ServedIndex, request: ContinuationRequest, extra: Accept | None = None) -> Continuation:
    """Each next track is the nearest accepted one to the decaying mix of the recent tracks and the seeds.

    The artist cap counts the seeds: they are the start of the playlist. Fewer than
    ``length`` steps come back only when nothing else in the index is acceptable.
    """
    require_served(index, request.seeds, "seeds")
    seeds_mean = seeds_query(index, request.seeds)
    return grow_playlist(index, request, lambda playlist: context_vector(index, playlist, seeds_mean), extra)


def grow_playlist(
    index: ServedIndex,
    request: ContinuationRequest,
    target_of: Callable[[Sequence[str]], npt.NDArray[np.float32]],
    extra: Accept | None = None,
) -> Continuation:
    """The continuation loop every kind of continuation shares: each next track is the nearest accepted
    one to ``target_of(playlist so far)``, never one already in the playlist; seeds count towards the cap."""
    seeds = list(request.seeds)
    require_served(index, seeds, "seeds")
    accept = all_of(extra, request.policy.acceptor(index, already=[index.meta(s) for s in seeds]))
    playlist = list(seeds)
    steps: list[Step] = []
    while len(steps) < request.length:
        found = index.search(target_of(playlist), 1, exclude=set(playlist) | request.policy.exclude, accept=accept)
        if not found:
            break
        pick = found[0]
        step = cosine(index.vector(playlist[-1]), index.vector(pick.track_id))
        steps.append(Step(pick.track_id, pick.similarity, round(step, SIMILARITY_DECIMALS)))
        playlist.append(pick.track_id)
    return Continuation(steps)


# -- paths ----------------------------------------------------------------------------


class SameEndsError(ValueError):
    """A path needs two different tracks."""


class PathTooLongError(ValueError):
    """The index holds fewer tracks than the path asks for."""


@dataclass(frozen=True)
class PathStep:
    track_id: str
    similarity_to_end: float
    step_similarity: float | None  # to the track before; None for the first


@dataclass(frozen=True)
class Path:
    steps: list[PathStep]

    @property
    def mean_step_similarity(self) -> float:
        return mean_of([s.step_similarity for s in self.steps if s.step_similarity is not None])

    @property
    def monotone_share(self) -> float:
        """The share of steps whose similarity to the end rises."""
        rises = [b.similarity_to_end > a.similarity_to_end for a, b in zip(self.steps, self.steps[1:], strict=False)]
        return round(sum(rises) / len(rises), SIMILARITY_DECIMALS)


def path(index: ServedIndex, start: str, end: str, length: int, extra: Accept | None = None) -> Path:
    """``length`` tracks from ``start`` to ``end``, each near its waypoint on the great circle, none repeated.

    The steps are chosen together: among the PATH_CANDIDATES nearest each waypoint, the
    sequence whose similarity to ``end`` rises at every step and whose tracks lie nearest
    their waypoints in sum (:func:`rising_walk`, a Viterbi pass over the candidates). A
    strictly rising similarity cannot visit a track twice. When the candidates hold no
    such sequence, each step is chosen in turn (:func:`greedy_walk`). A path comes back
    shorter only when the index (or ``extra``) runs out of tracks.
    """
    require_served(index, [start], "from")
    require_served(index, [end], "to")
    if start == end:
        raise SameEndsError(start)
    if length > index.count:
        raise PathTooLongError(length)
    a, b = index.vector(start), index.vector(end)
    waypoints = [slerp(a, b, i / (length - 1)) for i in range(1, length - 1)]
    layers = [waypoint_candidates(index, w, b, {start, end}, extra) for w in waypoints]
    middle = rising_walk(layers, cosine(a, b))
    chosen = [start, *(middle if middle is not None else greedy_walk(index, waypoints, b, start, end, extra)), end]
    to_end = [cosine(index.vector(t), b) for t in chosen[:-1]] + [1.0]
    steps = [PathStep(start, round(to_end[0], SIMILARITY_DECIMALS), None)]
    for previous, current, similarity in zip(chosen[:-1], chosen[1:], to_end[1:], strict=True):
        step = cosine(index.vector(previous), index.vector(current))
        steps.append(PathStep(current, round(similarity, SIMILARITY_DECIMALS), round(step, SIMILARITY_DECIMALS)))
    return Path(steps)


@dataclass(frozen=True)
class Candidates:
    """The tracks nearest one waypoint: their ids, closeness to the waypoint and similarity to the end."""

    track_ids: list[str]
    closeness: npt.NDArray[np.float64]
    to_end: npt.NDArray[np.float64]


def waypoint_candidates(index: ServedIndex, waypoint: npt.NDArray[np.float32], end: npt.NDArray[np.float32],
                        exclude: set[str], extra: Accept | None) -> Candidates:
    found = index.search(waypoint, PATH_CANDIDATES, exclude=exclude, accept=extra)
    vectors = [index.vector(c.track_id) for c in found]
    return Candidates(
        [c.track_id for c in found],
        np.array([cosine(v, waypoint) for v in vectors], dtype=np.float64),
        np.array([cosine(v, end) for v in vectors], dtype=np.float64),
    )


def rising_walk(layers: Sequence[Candidates], start_to_end: float) -> list[str] | None:
    """One candidate per layer, similarity to the end rising strictly from ``start_to_end`` and
    staying below the end's own (1), with the largest summed closeness; None when there is none.

    Dynamic programming over the layers (each candidate keeps the best rising walk ending
    in it): O(layers x PATH_CANDIDATES²), exact over the candidates.
    """
    if not layers or any(not layer.track_ids for layer in layers):
        return None
    impossible = -np.inf
    first = layers[0]
    best = np.where(first.to_end > start_to_end, first.closeness, impossible)
    came_from: list[npt.NDArray[np.intp]] = []
    previous = first
    for layer in layers[1:]:
        # rises[j, k]: candidate j of this layer is closer to the end than candidate k of the last one.
        rises = layer.to_end[:, None] > previous.to_end[None, :]
        reachable = np.where(rises, best[None, :], impossible)
        came_from.append(np.argmax(reachable, axis=1))
        best = reachable.max(axis=1) + layer.closeness
        previous = layer
    best = np.where(previous.to_end < 1.0, best, impossible)
    if not np.isfinite(best.max()):
        return None
    picks = [int(np.argmax(best))]
    for links in reversed(came_from):
        picks.append(int(links[picks[-1]]))
    picks.reverse()
    return [layer.track_ids[j] for layer, j in zip(layers, picks, strict=True)]


def greedy_walk(index: ServedIndex, waypoints: Sequence[npt.NDArray[np.float32]], end_vector: npt.NDArray[np.float32],
                start: str, end: str, extra: Accept | None) -> list[str]:
    """Each step in turn: among the PATH_CANDIDATES nearest its waypoint, the nearest that is closer
    to the end than the step before but not closer than the next waypoint is; failing that the
    nearest rising one, then the nearest. Stops early when the index runs out of tracks."""
    chosen, to_end = [start], [cosine(index.vector(start), end_vector)]
    targets = [cosine(w, end_vector) for w in waypoints[1:]] + [1.0]
    for waypoint, next_target in zip(waypoints, targets, strict=True):
        candidates = index.search(waypoint, PATH_CANDIDATES, exclude={*chosen, end}, accept=extra)
        if not candidates:
            break
        closeness = [(c.track_id, cosine(index.vector(c.track_id), end_vector)) for c in candidates]
        rising = [pair for pair in closeness if pair[1] > to_end[-1]]
        measured = [pair for pair in rising if pair[1] <= next_target]
        track_id, similarity = (measured or rising or closeness)[0]
        chosen.append(track_id)
        to_end.append(similarity)
    return chosen[1:]
