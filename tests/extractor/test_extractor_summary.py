"""How a clip's patches' mid-level features become its embedding: mean, signed square root, unit length.

No model runs here: the patches' features are given.
"""

from __future__ import annotations

import numpy as np
import pytest

from catalog.model import MODEL_ID
from extractor.audio import UnembeddableAudioError
from extractor.constants import EMBEDDING_DIM, MSD_TAGS, N_TAGS
from extractor.embed import Embedder, summarise_midlevel


def features(*values: float) -> np.ndarray:
    """One patch's mid-level features: ``values`` first, zeros after."""
    patch = np.zeros(EMBEDDING_DIM, np.float32)
    patch[: len(values)] = values
    return patch


def test_the_embedding_is_the_signed_square_root_of_the_patches_mean_at_unit_length() -> None:
    # Means 4, -9 and 0: square roots 2, -3 and 0, of length sqrt(13).
    per_patch = np.stack([features(6.0, -10.0, 1.0), features(2.0, -8.0, -1.0)])

    vector = summarise_midlevel(per_patch)

    assert vector.dtype == np.float32 and vector.shape == (EMBEDDING_DIM,)
    np.testing.assert_allclose(vector[:3], np.array([2.0, -3.0, 0.0]) / np.sqrt(13.0), rtol=0, atol=1e-7)
    assert not np.any(vector[3:])
    # The plain mean at unit length, what the square root replaces, points elsewhere.
    assert abs(float(vector[0]) - 4.0 / np.sqrt(97.0)) > 0.1


def test_the_square_root_evens_out_features_of_very_different_scales() -> None:
    rng = np.random.default_rng(19)
    per_patch = (rng.normal(size=(10, EMBEDDING_DIM)) * np.geomspace(1e-3, 1e2, EMBEDDING_DIM)).astype(np.float32)
    mean = per_patch.mean(axis=0, dtype=np.float64)

    vector = summarise_midlevel(per_patch)

    want = np.sign(mean) * np.abs(mean) ** 0.5
    np.testing.assert_allclose(vector, want / np.linalg.norm(want), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.sign(vector), np.sign(mean))


def test_the_embedder_labels_the_summary_with_its_model_id_and_the_mean_taggrams_top_tags() -> None:
    per_patch = np.stack([features(6.0, -10.0), features(2.0, -8.0)])
    taggram = np.full((2, N_TAGS), 0.1, np.float32)
    taggram[:, MSD_TAGS.index("jazz")] = (0.9, 0.7)
    embedder = object.__new__(Embedder)  # no model needed to summarise given outputs
    embedder.model_id = MODEL_ID

    embedding = embedder._summarise(taggram, per_patch)

    np.testing.assert_array_equal(embedding.vector, summarise_midlevel(per_patch))
    assert embedding.model == MODEL_ID
    assert next(iter(embedding.tags.items())) == ("jazz", pytest.approx(0.8))


@pytest.mark.parametrize("value", [np.nan, np.inf, 0.0], ids=["nan", "inf", "zero"])
def test_features_with_no_finite_non_zero_mean_are_unembeddable(value: float) -> None:
    with pytest.raises(UnembeddableAudioError, match="no finite, non-zero embedding"):
        summarise_midlevel(np.full((3, EMBEDDING_DIM), value, np.float32))


def test_features_of_another_width_are_refused() -> None:
    with pytest.raises(ValueError, match=f"expected \\({EMBEDDING_DIM},\\)"):
        summarise_midlevel(np.ones((3, 200), np.float32))
