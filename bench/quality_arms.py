"""Retrieval metrics and the candidate arms of bench/quality.py, on cached per-patch outputs.

An *arm* turns per-clip features into searched vectors: a pooling of the
patches (which model, layer, grid and statistic) and a catalogue-level
transform fitted on other clips than the ones it is scored on. Every arm is
scored with the same cross-fitting protocol: the tracks (dev set) or pieces
(demo catalogue) are split in two halves at random, each half's clips are
transformed by the fit on the other half, and the metrics are computed over the
whole set in one pool, over :data:`SPLITS` seeded splits; unfitted arms (raw
musicnn, and MFCC z-scored per half) go through exactly the same protocol.
Transforms map back onto their input's axes (ZCA), so vectors from the two
fits are comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

K = 10
SPLITS = 5
SPLIT_SEED = 19

Features = dict[str, NDArray[np.float32]]  # feature name -> (n_clips, width)
Arm = Callable[[Features, NDArray[np.intp], NDArray[np.intp]], NDArray[np.float32]]  # (features, fit, score) -> vectors


def unit(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a zero vector has no cosine similarity")
    return (vectors / norms).astype(np.float32)


def order_by_similarity(vectors: NDArray[np.float32]) -> NDArray[np.intp]:
    """Row i: every other clip, nearest first (stable: ties go to the lower index); self last."""
    u = unit(vectors)
    similarity = u @ u.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :-1]


# -- catalogue-level whitening ------------------------------------------------------------

# Fewer vectors than this estimate no covariance worth whitening with.
MIN_FIT_ITEMS = 8


@dataclass(frozen=True)
class Whitening:
    """``apply(x) = unit((x - mean) @ matrix)``: centring, rotation onto principal axes, unit variance per axis."""

    mean: NDArray[np.float64]
    matrix: NDArray[np.float64]  # (dim_in, dim_out)

    def linear(self, rows: NDArray[np.floating]) -> NDArray[np.float64]:
        """Whitened rows before unit normalisation."""
        return (np.asarray(rows, dtype=np.float64) - self.mean) @ self.matrix

    def apply(self, rows: NDArray[np.floating]) -> NDArray[np.float32]:
        return unit(self.linear(rows))


def shrunk_covariance(centred: NDArray[np.float64], shrinkage: float | None = None) -> NDArray[np.float64]:
    """(1 - a)·S + a·(tr S / d)·I of centred rows; ``a`` is Ledoit-Wolf's estimate when ``shrinkage`` is None."""
    from sklearn.covariance import ledoit_wolf
    from sklearn.covariance import shrunk_covariance as shrink

    if shrinkage is None:
        covariance, _ = ledoit_wolf(centred, assume_centered=True)
        return np.asarray(covariance, dtype=np.float64)
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be between 0 and 1, got {shrinkage}")
    return np.asarray(shrink(centred.T @ centred / centred.shape[0], shrinkage=shrinkage), dtype=np.float64)


def fit_whitening(raw: NDArray[np.floating], *, dims: int | None = None, shrinkage: float | None = None) -> Whitening:
    """Shrunk PCA whitening of catalogue vectors (n, dim) onto their ``dims`` leading axes (default all)."""
    vectors = np.asarray(raw, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] < MIN_FIT_ITEMS:
        raise ValueError(f"need at least {MIN_FIT_ITEMS} vectors to fit on, got shape {vectors.shape}")
    dim = vectors.shape[1]
    if dims is not None and not 0 < dims <= dim:
        raise ValueError(f"dims must be between 1 and {dim}, got {dims}")
    mean = vectors.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(shrunk_covariance(vectors - mean, shrinkage))
    order = np.argsort(eigenvalues)[::-1][: dims or dim]
    # Shrinkage keeps every eigenvalue at least its share of the trace; the floor guards
    # against round-off (and unshrunk fits) only.
    values = np.maximum(eigenvalues[order], eigenvalues[order][0] * 1e-9)
    kept = eigenvectors[:, order]
    # Rotated back onto the input's axes (ZCA): cosines are those of PCA whitening, and
    # two fits on different halves map into comparable coordinates (cross-fitting needs that).
    return Whitening(mean, (kept / np.sqrt(values)) @ kept.T)


# -- metrics (per query; the caller averages) ----------------------------------------------


def same_track(order: NDArray[np.intp], tracks: NDArray[np.str_], k: int = K) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(hit@k, reciprocal rank) of the nearest other clip of the query's track, for queries whose track has one."""
    same = tracks[order] == tracks[:, None]
    has = same.any(axis=1)
    first = np.argmax(same, axis=1)
    return (first[has] < k).astype(np.float64), 1.0 / (first[has] + 1.0)


def label_precision(
    order: NDArray[np.intp], labels: NDArray[np.str_], groups: NDArray[np.str_], k: int = K
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(precision@k, chance) of ``labels`` among the nearest clips of *other* ``groups``.

    Clips of the query's own group (same track, same piece) are removed from its
    ranking first; queries with no other-group clip of their label are left out,
    since no ranking could score there. Chance: the share of the remaining clips
    that carry the query's label.
    """
    precisions, chances = [], []
    for i in range(order.shape[0]):
        ranked = order[i][groups[order[i]] != groups[i]]
        match = labels[ranked] == labels[i]
        if not match.any() or len(ranked) < k:
            continue
        precisions.append(match[:k].mean())
        chances.append(match.mean())
    return np.array(precisions), np.array(chances)


def same_track_chance(n: int, k: int = K) -> tuple[float, float]:
    """(hit@k, MRR) of a random ranking of n clips where one other clip is the target."""
    return min(k, n - 1) / (n - 1), float(np.mean(1.0 / np.arange(1, n)))


# -- splits -----------------------------------------------------------------------------------


def half_splits(groups: Sequence[str], splits: int = SPLITS, seed: int = SPLIT_SEED) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """(fit clips, score clips) pairs: each seeded split of the groups in halves, used both ways."""
    group_array = np.asarray(groups)
    names = sorted(set(groups))
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(splits):
        shuffled = rng.permutation(names)
        half = set(shuffled[: len(names) // 2])
        in_a = np.array([g in half for g in group_array])
        a, b = np.flatnonzero(in_a), np.flatnonzero(~in_a)
        pairs += [(a, b), (b, a)]
    return pairs


@dataclass(frozen=True)
class Scores:
    same_track_hit10: float | None
    same_track_mrr: float | None
    source_p10: float | None
    instrument_p10: float | None


# -- arms -------------------------------------------------------------------------------------


def raw(feature: str) -> Arm:
    """The feature as it is, unit-normalised: no catalogue-level transform."""
    return lambda features, fit, score: unit(features[feature][score])


def zscored(feature: str) -> Arm:
    """Every dimension standardised with the fit half's mean and deviation (the MFCC baseline)."""

    def arm(features: Features, fit: NDArray[np.intp], score: NDArray[np.intp]) -> NDArray[np.float32]:
        data = features[feature]
        mean, std = data[fit].mean(axis=0), data[fit].std(axis=0)
        return unit((data[score] - mean) / np.where(std > 0, std, 1.0))

    return arm


def signed_power(rows: NDArray[np.floating], alpha: float) -> NDArray[np.float32]:
    """Power normalisation ``sign(x) * |x| ** alpha`` per value (alpha 0.5: the signed square root).

    Perronnin, Sánchez & Mensink (2010): a few large activations no longer dominate
    the cosine, so the many small ones that describe timbre and texture count too.
    """
    values = np.asarray(rows, dtype=np.float64)
    return (np.sign(values) * np.abs(values) ** alpha).astype(np.float32)


def powered(feature: str, alpha: float, signed: bool = True) -> Arm:
    """The feature power-normalised (``signed``: sign kept; else negative values clipped to 0 first), no fit."""

    def arm(features: Features, fit: NDArray[np.intp], score: NDArray[np.intp]) -> NDArray[np.float32]:
        data = features[feature][score]
        return unit(signed_power(data if signed else np.maximum(data, 0.0), alpha))

    return arm


def whitened(feature: str, dims: int | None = None, shrinkage: float | None = None) -> Arm:
    """Whitening fitted on the fit half (Ledoit-Wolf shrinkage unless ``shrinkage`` is given), applied to the score half."""

    def arm(features: Features, fit: NDArray[np.intp], score: NDArray[np.intp]) -> NDArray[np.float32]:
        data = unit(features[feature])
        transform = fit_whitening(data[fit], dims=None if dims is None else min(dims, data.shape[1]), shrinkage=shrinkage)
        return transform.apply(data[score])

    return arm


def centred_pca(feature: str, dims: int) -> Arm:
    """Mean-centring and PCA to ``dims`` axes without whitening (the scale of each axis kept)."""

    def arm(features: Features, fit: NDArray[np.intp], score: NDArray[np.intp]) -> NDArray[np.float32]:
        data = unit(features[feature])
        mean = data[fit].mean(axis=0)
        _, _, vt = np.linalg.svd(data[fit] - mean, full_matrices=False)
        return unit((data[score] - mean) @ vt[:dims].T @ vt[:dims])

    return arm


def fused(*arms: Arm) -> Arm:
    """Each arm's unit vectors concatenated with equal weight (fusion after whitening)."""
    return lambda features, fit, score: unit(np.concatenate([a(features, fit, score) for a in arms], axis=1))


def weighted(main: Arm, extra: Arm, weight: float) -> Arm:
    """``main``'s unit vector with ``extra``'s scaled by ``weight`` (a small part of the cosine)."""
    return lambda features, fit, score: unit(
        np.concatenate([main(features, fit, score), weight * extra(features, fit, score)], axis=1)
    )


def pair_projection(feature: str, first: str, second: str, dims: int) -> Arm:
    """Learnt without labels: after whitening, keep the axes where two halves of one clip differ least.

    ``first``/``second`` are the same pooling over the first and the second half
    of each clip's patches: a positive pair per clip, from the fit half only.
    The projection is LDA with "clip" as the class: in the whitened space (every
    axis of variance 1) the within-pair covariance's smallest eigenvalues are the
    directions most stable inside a clip relative to across clips.
    """

    def arm(features: Features, fit: NDArray[np.intp], score: NDArray[np.intp]) -> NDArray[np.float32]:
        whole = unit(features[feature])
        transform = fit_whitening(whole[fit])
        a = transform.linear(unit(features[first][fit]))
        b = transform.linear(unit(features[second][fit]))
        within = shrunk_covariance((a - b) / np.sqrt(2.0))
        values, vectors = np.linalg.eigh(within)
        stable = vectors[:, np.argsort(values)[:dims]]
        keep = (stable / np.sqrt(np.sort(values)[:dims])) @ stable.T  # back onto the whitened axes
        return unit(transform.linear(whole[score]) @ keep)

    return arm


# -- scoring ----------------------------------------------------------------------------------


def cross_fitted(arm: Arm, features: Features, groups: Sequence[str]) -> list[NDArray[np.float32]]:
    """One set of vectors for every clip per split: each half transformed by the fit on the other half.

    The whole set then forms one pool, as large as the catalogue, and no clip's
    vector comes from a transform that saw it.
    """
    n = len(groups)
    pairs = half_splits(groups)
    sets = []
    for a, b in zip(pairs[::2], pairs[1::2], strict=True):
        vectors: NDArray[np.float32] | None = None
        for fit, score in (a, b):
            part = arm(features, fit, score)
            if vectors is None:
                vectors = np.zeros((n, part.shape[1]), np.float32)
            vectors[score] = part
        assert vectors is not None
        sets.append(vectors)
    return sets


def score_dev(
    arm: Arm, features: Features, tracks: Sequence[str], sources: Sequence[str], transductive: bool = False
) -> tuple[Scores, Scores]:
    """(the arm's mean scores over the splits, chance) on the whole dev set, cross-fitted by track halves.

    ``transductive``: the transform fitted on every clip at once (no labels are
    used in any fit), as an index base built over this catalogue would be.
    """
    track_array, source_array = np.asarray(tracks), np.asarray(sources)
    every = np.arange(len(tracks))
    sets = [arm(features, every, every)] if transductive else cross_fitted(arm, features, tracks)
    hits, rrs, p10s = [], [], []
    for vectors in sets:
        order = order_by_similarity(vectors)
        hit, rr = same_track(order, track_array)
        p10, chance = label_precision(order, source_array, track_array)
        hits.append(hit.mean())
        rrs.append(rr.mean())
        p10s.append(p10.mean())
    chance_hit, chance_rr = same_track_chance(len(tracks))
    return (
        Scores(float(np.mean(hits)), float(np.mean(rrs)), float(np.mean(p10s)), None),
        Scores(chance_hit, chance_rr, float(chance.mean()), None),
    )


def score_demo(
    arm: Arm, features: Features, pieces: Sequence[str], instruments: Sequence[str], transductive: bool = False
) -> tuple[float, float]:
    """(the arm's instrument_p10, chance) on the whole demo catalogue, same piece excluded, cross-fitted by piece halves.

    ``transductive``: the transform fitted on every clip at once, as in :func:`score_dev`.
    """
    piece_array, instrument_array = np.asarray(pieces), np.asarray(instruments)
    every = np.arange(len(pieces))
    p10s = []
    for vectors in [arm(features, every, every)] if transductive else cross_fitted(arm, features, pieces):
        p10, chance = label_precision(order_by_similarity(vectors), instrument_array, piece_array)
        p10s.append(p10.mean())
    return float(np.mean(p10s)), float(chance.mean())
