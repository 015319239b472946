"""The dev-set metrics and the split protocol of bench/quality.py, on vectors whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from bench.patch_cache import descriptor_numbers
from bench.quality_arms import (
    fit_whitening,
    half_splits,
    label_precision,
    order_by_similarity,
    powered,
    same_track,
    same_track_chance,
    signed_power,
    unit,
    zscored,
)
from catalog.descriptors import Descriptors, Mode

# Six clips on a line of angles: the nearest neighbour of each is known exactly.
ANGLES = np.array([0.0, 0.1, 0.5, 0.65, 1.4, 1.5])
VECTORS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)


def test_order_lists_every_other_clip_nearest_first() -> None:
    order = order_by_similarity(VECTORS)
    assert order.shape == (6, 5)
    assert order[0].tolist() == [1, 2, 3, 4, 5]
    assert order[3].tolist() == [2, 1, 0, 4, 5]
    assert all(i not in row for i, row in enumerate(order))


def test_same_track_hit_and_reciprocal_rank_of_the_other_clip() -> None:
    tracks = np.array(["a", "b", "a", "c", "b", "c"])
    hit, rr = same_track(order_by_similarity(VECTORS), tracks, k=2)
    # a: clip 0 finds clip 2 at rank 2, clip 2 finds clip 0 at rank 3 (after 3 and 1).
    np.testing.assert_allclose(rr[[0, 2]], [1 / 2, 1 / 3])
    np.testing.assert_array_equal(hit[[0, 2]], [1.0, 0.0])
    assert hit.shape == (6,)


def test_label_precision_skips_the_query_group_and_reports_chance_among_the_rest() -> None:
    order = order_by_similarity(VECTORS)
    labels = np.array(["x", "x", "x", "y", "y", "y"])
    groups = np.array(["g0", "g0", "g1", "g2", "g3", "g3"])
    precision, chance = label_precision(order, labels, groups, k=1)
    # Clip 0: clip 1 is its own group, so its nearest counted clip is 2 (x): 1.0; chance: 1 x among 4 others.
    assert precision[0] == 1.0 and chance[0] == 1 / 4
    # Clip 3 (y, alone in g2): nearest is 2 (x), chance 2 y among 5.
    assert precision[3] == 0.0 and chance[3] == 2 / 5


def test_queries_with_no_other_group_of_their_label_are_left_out() -> None:
    order = order_by_similarity(VECTORS)
    labels = np.array(["x", "x", "z", "y", "y", "y"])
    groups = np.array(["g0", "g0", "g1", "g2", "g3", "g3"])
    precision, _ = label_precision(order, labels, groups, k=1)
    assert precision.shape == (3,)  # clips 0, 1 (x only in g0) and 2 (z alone) are left out


def test_chance_of_a_random_ranking() -> None:
    hit, mrr = same_track_chance(11, k=10)
    assert hit == 1.0 and np.isclose(mrr, np.mean(1 / np.arange(1, 11)))
    assert same_track_chance(101)[0] == 0.1


def test_splits_keep_each_group_in_one_half_and_use_both_directions() -> None:
    groups = [f"t{i // 2}" for i in range(20)]
    pairs = half_splits(groups, splits=3, seed=1)
    assert len(pairs) == 6
    for fit, score in pairs:
        assert sorted(np.concatenate([fit, score]).tolist()) == list(range(20))
        assert not {groups[i] for i in fit} & {groups[i] for i in score}
    assert pairs[0][0].tolist() == pairs[1][1].tolist()
    assert pairs[0][0].tolist() != pairs[2][0].tolist()


def catalogue(n: int = 400, dim: int = 12, seed: int = 3) -> np.ndarray:
    """Unit vectors around a common direction with very unequal spreads, like musicnn's."""
    rng = np.random.default_rng(seed)
    raw = 4.0 * np.ones(dim) + rng.standard_normal((n, dim)) * np.geomspace(3.0, 0.05, dim)
    return (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)


def test_unshrunk_whitening_gives_the_catalogue_zero_mean_and_identity_covariance() -> None:
    vectors = catalogue()
    linear = fit_whitening(vectors, shrinkage=0.0).linear(vectors)
    np.testing.assert_allclose(linear.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.cov(linear.T, bias=True), np.eye(12), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fit_whitening(vectors).apply(vectors), axis=1), 1.0, rtol=1e-6)


def test_ledoit_wolf_shrinkage_caps_the_gain_on_the_weakest_axes_of_a_small_catalogue() -> None:
    small = catalogue(n=20)
    unshrunk, shrunk = fit_whitening(small, shrinkage=0.0), fit_whitening(small)
    assert np.linalg.norm(shrunk.matrix, 2) < 0.5 * np.linalg.norm(unshrunk.matrix, 2)
    # Full shrinkage is centring plus one common scale: cosines equal those of the centred vectors.
    centred = small - small.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    full = fit_whitening(small, shrinkage=1.0).apply(small)
    np.testing.assert_allclose(full @ full.T, centred @ centred.T, atol=1e-5)


def test_whitening_refuses_too_few_vectors_and_impossible_dims() -> None:
    with pytest.raises(ValueError, match="at least 8 vectors"):
        fit_whitening(catalogue(n=7))
    with pytest.raises(ValueError, match="dims must be between 1 and 12"):
        fit_whitening(catalogue(), dims=13)
    reduced = fit_whitening(catalogue(), dims=4)
    assert reduced.apply(catalogue()[:3]).shape == (3, 12)  # back on the input's axes (ZCA)
    assert np.linalg.matrix_rank(reduced.matrix) == 4


def test_the_mfcc_baseline_is_z_scored_with_the_fit_halfs_statistics_only() -> None:
    features = {"mfcc": np.array([[1, 100, 5], [3, 300, 5], [10, 0, 5], [-10, 0, 5]], dtype=np.float32)}
    fit, score = np.array([0, 1]), np.array([2, 3])
    vectors = zscored("mfcc")(features, fit, score)
    # Fit half: means (2, 200, 5), deviations (1, 100, 0 -> 1); the constant column stays finite.
    expected = np.array([[8, -2, 0], [-12, -2, 0]], dtype=np.float64)
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-6)


def _descriptors(tempo_bpm: float, key: int, mode: str) -> Descriptors:
    return Descriptors.of_key(
        key=key, mode=Mode(mode), keyConfidence=0.8, tempoBpm=tempo_bpm, tempoConfidence=0.5, loudnessLufs=-14.0,
        dynamicRangeDb=6.0, energy=0.5, brightness=2000.0, onsetRate=3.0, percussiveness=0.4, danceability=0.6,
    )


def test_descriptor_numbers_fold_tempo_octaves_and_keep_fifths_close() -> None:
    half, tempo, double = (descriptor_numbers(_descriptors(bpm, 0, "major")) for bpm in (60.0, 120.0, 240.0))
    # Half- and double-time land on the tempo circle's same point; only the plain log tempo tells them apart.
    np.testing.assert_allclose(half[:2], tempo[:2], atol=1e-5)
    np.testing.assert_allclose(double[:2], tempo[:2], atol=1e-5)
    assert (half[2], tempo[2], double[2]) == pytest.approx((np.log2(60), np.log2(120), np.log2(240)))
    off = descriptor_numbers(_descriptors(85.0, 0, "major"))
    assert np.linalg.norm(off[:2] - tempo[:2]) > 0.5
    # C major sits next to G major (one fifth) and opposite F# major on the key circle; minor flips the mode sign.
    c, g, f_sharp = (descriptor_numbers(_descriptors(120.0, key, "major")) for key in (0, 7, 6))
    assert np.linalg.norm(c[3:5] - g[3:5]) < np.linalg.norm(c[3:5] - f_sharp[3:5])
    np.testing.assert_allclose(c[3:5], -f_sharp[3:5], atol=1e-5)
    a_minor = descriptor_numbers(_descriptors(120.0, 9, "minor"))
    np.testing.assert_allclose(a_minor[3:5], c[3:5], atol=1e-5)  # relative keys share a Camelot number
    assert (c[5], a_minor[5]) == pytest.approx((0.8, -0.8))


def test_signed_power_keeps_signs_and_lets_small_values_count() -> None:
    rows = np.array([[9.0, -4.0, 0.0, 0.01]])
    np.testing.assert_allclose(signed_power(rows, 0.5), [[3.0, -2.0, 0.0, 0.1]], rtol=1e-6)
    # One large activation dominates the raw cosine; after the square root the small ones agree.
    a, b = np.array([[100.0, 1.0, 1.0, 1.0]]), np.array([[100.0, -1.0, -1.0, -1.0]])
    cosine = lambda x, y: float((unit(x) @ unit(y).T)[0, 0])  # noqa: E731
    assert cosine(a, b) > 0.999 and cosine(signed_power(a, 0.5), signed_power(b, 0.5)) < 0.95
    clipped = powered("f", 0.5, signed=False)({"f": rows.astype(np.float32)}, np.arange(1), np.arange(1))
    np.testing.assert_allclose(clipped, unit(np.array([[3.0, 0.0, 0.0, 0.1]])), rtol=1e-6)
