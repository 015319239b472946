"""The personal routes' answers, from a listener's stored models (catalog.user_models) and the served index.

Recommendations spread over the listener's tastes in proportion to their weights
(largest-remainder quotas); each taste's share is the tracks nearest its centroid that
the listener has not played, with the list policy (exclusions, artist cap, durations,
duplicates) across the whole list and the descriptor filters of GET /recommendations. A taste that runs out leaves its share to
the others.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from api.descriptor_filters import DescriptorFilter
from api.discovery import Continuation, ContinuationRequest, grow_playlist
from api.errors import ApiError
from api.listing import ListPolicy, all_of
from api.recommend import TrackNotIndexedError, track_summary
from api.served import Accept, ServedIndex
from catalog.user_models import UserModel, UserModelStore, affinity_features


def user_not_found() -> ApiError:
    return ApiError(404, "user_not_found", "no listening history has been imported for this user")


def model_of(store: UserModelStore, user_id: str) -> UserModel:
    model = store.model(user_id)
    if model is None:
        raise user_not_found()
    return model


def require_compatible(model: UserModel, index: ServedIndex) -> None:
    """The model's vectors are in the searched space of the index it was trained on: another space (a
    different dim, or a PCA basis refitted since) cannot be searched with them."""
    if model.dim != index.dim or model.space != index.space:
        raise ApiError(409, "model_stale", "the listener's models were trained on another index; an index that changes space has them "
                       "trained again within minutes, or import their history again")


def quotas(weights: np.ndarray, k: int) -> list[int]:
    """k split in proportion to weights, largest remainders first (sums to k)."""
    exact = np.asarray(weights, np.float64) * k
    shares = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - shares), kind="stable")[: k - int(shares.sum())]:
        shares[i] += 1
    return shares.tolist()


def for_you(index: ServedIndex, model: UserModel, k: int, policy: ListPolicy, filters: DescriptorFilter) -> dict[str, Any]:
    """The body of GET /users/{userId}/recommendations. key=compatible has no seed to be relative to here (422)."""
    require_compatible(model, index)
    # One acceptor for the whole list: the artist cap and duplicates count across tastes.
    accept = all_of(filters.accept(None), policy.acceptor(index))
    excluded = set(model.heard) | policy.exclude
    per_taste: list[list[tuple[str, float]]] = [[] for _ in model.centroids]
    wanted = quotas(model.taste_weights, k)
    # First each taste's share, then what is left of k from the tastes in weight order.
    for fill in (False, True):
        for taste, centroid in enumerate(model.centroids):
            missing = k - sum(map(len, per_taste))
            want = missing if fill else min(missing, wanted[taste])
            if want <= 0:
                continue
            for n in index.search(centroid, want, exclude=excluded, accept=accept):
                per_taste[taste].append((n.track_id, n.similarity))
                excluded.add(n.track_id)
    results: list[dict[str, Any]] = []
    for rank in range(max(map(len, per_taste), default=0)):
        for taste, picks in enumerate(per_taste):
            if rank < len(picks):
                track_id, similarity = picks[rank]
                results.append({**track_summary(index.meta(track_id)), "similarity": similarity, "taste": taste})
    return {
        "indexVersion": index.version,
        "tastes": [{"taste": i, "weight": round(float(w), 4)} for i, w in enumerate(model.taste_weights)],
        "results": results,
    }


def affinity(index: ServedIndex, model: UserModel, profile: dict[str, Any], track_id: str) -> dict[str, Any]:
    """The body of GET /users/{userId}/affinity."""
    require_compatible(model, index)
    if model.affinity_targets.size == 0:
        raise ApiError(409, "model_not_trained", "too few of this listener's plays matched the catalogue to train the affinity model")
    try:
        features = affinity_features(index.vector(track_id), index.meta(track_id).descriptors)
    except KeyError:
        raise TrackNotIndexedError(track_id) from None
    expected = model.expected_plays(track_id, features)
    return {
        "userId": profile["userId"],
        "trackId": track_id,
        "expectedPlays": round(expected, 3),
        "score": round(model.score(expected), 4),
        "played": track_id in set(model.heard),
        "quality": profile["models"]["affinity"],
    }


def continue_for_listener(
    index: ServedIndex, request: ContinuationRequest, model: UserModel, extra: Accept | None = None
) -> Continuation:
    """POST /playlists/continue with userId: each next track is the nearest one not yet in the playlist to
    what the listener's continuation model predicts from the playlist so far (seeds first)."""
    require_compatible(model, index)
    if not model.has_transition:
        raise ApiError(409, "model_not_trained", "too few of this listener's sessions matched the catalogue to train the continuation model")
    return grow_playlist(index, request, lambda playlist: model.next_vector([index.vector(t) for t in playlist]), extra)
