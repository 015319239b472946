from __future__ import annotations

import numpy as np
import pytest

from bench.quality import chance_at_k, precision_at_k


def test_precision_counts_same_label_neighbours_and_never_the_query_itself() -> None:
    # Two tight clusters on orthogonal axes; the query's own vector is the most similar and must be skipped.
    vectors = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1], [0.1, 0.9]], dtype=np.float32)
    labels = ["a", "a", "a", "b", "b"]
    np.testing.assert_allclose(precision_at_k(vectors, labels, k=2), [1.0, 1.0, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(precision_at_k(vectors, labels, k=1), [1.0, 1.0, 1.0, 1.0, 1.0])


def test_precision_uses_cosine_so_vector_length_does_not_matter() -> None:
    vectors = np.array([[1, 0], [100, 1], [0, 1], [0.01, 5]], dtype=np.float32)
    labels = ["x", "x", "y", "y"]
    np.testing.assert_allclose(precision_at_k(vectors, labels, k=1), [1.0, 1.0, 1.0, 1.0])


def test_chance_is_the_share_of_other_items_with_the_same_label() -> None:
    np.testing.assert_allclose(chance_at_k(["a", "a", "a", "b"]), [2 / 3, 2 / 3, 2 / 3, 0.0])


def test_random_vectors_score_near_chance() -> None:
    rng = np.random.default_rng(0)
    labels = [str(i % 4) for i in range(400)]
    scores = precision_at_k(rng.standard_normal((400, 32)).astype(np.float32), labels)
    assert abs(scores.mean() - chance_at_k(labels).mean()) < 0.03


def test_bad_k_and_zero_vectors_are_refused() -> None:
    vectors = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="k must be between 1 and 2"):
        precision_at_k(vectors, ["a", "b", "c"], k=3)
    with pytest.raises(ValueError, match="zero vector"):
        precision_at_k(np.zeros((3, 2), dtype=np.float32), ["a", "b", "c"], k=1)
    with pytest.raises(ValueError, match="2 vectors for 3 labels"):
        precision_at_k(vectors[:2], ["a", "b", "c"], k=1)
