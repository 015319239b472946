"""A listener's models are searched only in the space they were trained in (catalog.bundle.Transform.space)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest

from api.errors import ApiError
from api.personal import require_compatible
from catalog.user_models import UserModel

DIM = 4


def _model(space: str, dim: int = DIM) -> UserModel:
    empty = np.zeros((0, dim), np.float32)
    return UserModel(index_version="v1", dim=dim, heard=("a",), centroids=np.eye(1, dim, dtype=np.float32),
                     taste_weights=np.ones(1, np.float32), affinity_ids=(), affinity_examples=empty,
                     affinity_targets=np.zeros(0, np.float32), affinity_reference=np.zeros(0, np.float32),
                     transition=empty, transition_bias=np.zeros(0, np.float32), space=space)


def test_the_space_round_trips_and_a_model_written_before_spaces_were_named_is_in_the_raw_space() -> None:
    model = _model("pca:4:0123456789abcdef")
    assert UserModel.from_bytes(model.to_bytes()).space == "pca:4:0123456789abcdef"
    with np.load(io.BytesIO(_model("identity").to_bytes())) as npz:
        older = {key: npz[key] for key in npz.files if key != "space"}
    out = io.BytesIO()
    np.savez_compressed(out, **older)
    assert UserModel.from_bytes(out.getvalue()).space == "identity"


@pytest.mark.parametrize(("space", "dim"), [("pca:4:fedcba9876543210", DIM), ("identity", DIM + 1)])
def test_another_space_or_dim_is_a_stale_model(space: str, dim: int) -> None:
    require_compatible(_model("pca:4:0123456789abcdef"), SimpleNamespace(dim=DIM, space="pca:4:0123456789abcdef"))
    with pytest.raises(ApiError) as caught:
        require_compatible(_model(space, dim), SimpleNamespace(dim=DIM, space="pca:4:0123456789abcdef"))
    assert (caught.value.status, caught.value.code) == (409, "model_stale")
