"""catalog.bundle's searched space: which transform a base gets, how it is fitted, and that every path applies it alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from api.served import ServedIndex
from catalog.bundle import (
    IDENTITY_TRANSFORM,
    PCA_MIN_ITEMS,
    PCA_REFIT_GROWTH,
    PCA_TRANSFORM,
    SEARCHED_DIMS,
    BaseManifest,
    BaseReader,
    BaseRows,
    BundleError,
    Delta,
    TrackMeta,
    Transform,
    at_base_precision,
    open_rows,
    transform_for,
    write_base,
)
from catalog.keys import MANIFEST_FILENAME, SPACE_FILENAME

WIDE = SEARCHED_DIMS + 56  # wider than the searched space, as the mid-level embedding (1506) is


def _wide_vectors(n: int, seed: int = 3) -> np.ndarray:
    """Embedding-like rows: a few latent factors plus noise, so the principal axes are well defined."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 24)) @ rng.standard_normal((24, WIDE))
    v = (latent + 0.3 * rng.standard_normal((n, WIDE)) + 2.0).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _write(directory: Path, vectors: np.ndarray, version: str = "v1", carry: Transform | None = None) -> BaseManifest:
    ids = [f"t{i:05d}" for i in range(len(vectors))]
    metas = [TrackMeta(track_id=i, title=i).to_json() for i in ids]
    return write_base(directory / version, [BaseRows(ids, metas, vectors)], version=version,
                      created_at="2026-12-02T00:00:00Z", model="m", n_trees=2, search_k=-1, carry=carry)


def _gram(rows: np.ndarray) -> np.ndarray:
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit @ unit.T


def test_a_wide_base_is_searched_in_pca_and_a_small_or_narrow_one_in_the_raw_space() -> None:
    assert transform_for(PCA_MIN_ITEMS, WIDE).to_dict() == {"name": PCA_TRANSFORM, "version": 1, "dims": SEARCHED_DIMS}
    assert transform_for(PCA_MIN_ITEMS - 1, WIDE) == Transform()
    assert transform_for(10 * PCA_MIN_ITEMS, SEARCHED_DIMS) == Transform()
    assert Transform().searched_dim(WIDE) == WIDE and Transform(PCA_TRANSFORM, 1, 64).searched_dim(WIDE) == 64


def test_the_pca_base_holds_raw_vectors_and_searches_the_leading_centred_axes(tmp_path: Path) -> None:
    vectors = _wide_vectors(PCA_MIN_ITEMS)
    manifest = _write(tmp_path, vectors)
    spec = manifest.transform
    assert (spec.name, spec.dims, spec.fitted_on, len(spec.fit_id or "")) == (PCA_TRANSFORM, SEARCHED_DIMS, PCA_MIN_ITEMS, 16)
    assert spec.space == f"pca:{SEARCHED_DIMS}:{spec.fit_id}" and spec.mean is None  # parameters live in space.npz
    assert (manifest.dim, manifest.searched_dim) == (WIDE, SEARCHED_DIMS)
    assert BaseManifest.from_json(manifest.to_json()) == manifest
    reader = BaseReader.open(tmp_path / "v1", manifest)
    try:
        # Raw stays raw (at float16, the base's precision): compaction refits from it.
        np.testing.assert_array_equal(reader.raw_vectors(), vectors.astype(np.float16))
        assert reader.annoy.f == SEARCHED_DIMS
        searched = np.array([reader.annoy.get_item_vector(i) for i in range(0, PCA_MIN_ITEMS, 97)], np.float32)
        np.testing.assert_allclose(searched, reader.transform.apply(at_base_precision(vectors[::97])), atol=1e-5)
        # The same space as scikit-learn's PCA of the same unit rows (cosines do not depend on the axes' signs).
        reference = PCA(n_components=SEARCHED_DIMS, svd_solver="full").fit(vectors).transform(vectors[::97])
        np.testing.assert_allclose(_gram(searched), _gram(reference), atol=2e-4)
    finally:
        reader.close()


def test_a_delta_track_and_a_query_get_the_base_transform(tmp_path: Path) -> None:
    vectors = _wide_vectors(PCA_MIN_ITEMS)
    manifest = _write(tmp_path, vectors)
    delta = Delta(manifest.version, 1, manifest.model, manifest.dim)
    # A delta entry with the raw vector of base item 42, not unit (the transform normalises); times 2, so that
    # float16 rounds it as it rounded item 42 and the two are one point of the searched space.
    twin = 2.0 * vectors[42]
    delta.upsert(TrackMeta(track_id="twin", title="twin"), twin, was_indexed=False)
    index = ServedIndex(BaseReader.open(tmp_path / "v1", manifest), delta, f"{manifest.version}+1")
    try:
        assert index.dim == SEARCHED_DIMS
        np.testing.assert_allclose(index.vector("twin"), index.vector("t00042"), atol=1e-5)
        query = index.transform(vectors[42])  # what query by audio does with an uploaded clip's embedding
        assert query.shape == (SEARCHED_DIMS,)
        nearest = index.search(query, 2)
        assert {n.track_id for n in nearest} == {"twin", "t00042"} and min(n.similarity for n in nearest) > 0.9999
    finally:
        index.close()


def test_a_rebuilt_base_refits_and_the_same_input_fits_the_same(tmp_path: Path) -> None:
    vectors = _wide_vectors(PCA_MIN_ITEMS)
    first, again = _write(tmp_path, vectors, "a"), _write(tmp_path, vectors, "b")
    other = _write(tmp_path, _wide_vectors(PCA_MIN_ITEMS, seed=4), "c")
    assert first.files[SPACE_FILENAME] == again.files[SPACE_FILENAME] and first.content_sha256 == again.content_sha256
    assert first.transform.space == again.transform.space != other.transform.space


def test_compaction_keeps_the_fitted_basis_until_the_catalogue_has_doubled(tmp_path: Path) -> None:
    vectors = _wide_vectors(int(PCA_REFIT_GROWTH * PCA_MIN_ITEMS), seed=5)
    first = _write(tmp_path, vectors[:PCA_MIN_ITEMS], "a")
    previous = open_rows(tmp_path / "a", first).transform
    grown = _write(tmp_path, vectors[:-1], "b", carry=previous)  # just short of twice the fitted count
    assert grown.transform == first.transform and grown.transform.fitted_on == PCA_MIN_ITEMS
    reader = BaseReader.open(tmp_path / "b", grown)
    try:
        np.testing.assert_allclose(reader.annoy.get_item_vector(len(vectors) - 2), previous.apply(at_base_precision(vectors[-2])), atol=1e-5)
    finally:
        reader.close()
    doubled = _write(tmp_path, vectors, "c", carry=previous)
    assert doubled.transform.fitted_on == len(vectors) and doubled.transform.space != first.transform.space
    # A previous base searched in the raw space has nothing to carry: the grown base is fitted.
    assert _write(tmp_path, vectors[:PCA_MIN_ITEMS], "d", carry=Transform()).transform.space == first.transform.space


def test_a_small_base_of_wide_vectors_is_searched_in_the_raw_space(tmp_path: Path) -> None:
    manifest = _write(tmp_path, _wide_vectors(50))
    assert manifest.transform.name == IDENTITY_TRANSFORM and manifest.searched_dim == WIDE


def test_a_pca_base_without_its_fitted_parameters_is_refused(tmp_path: Path) -> None:
    manifest = _write(tmp_path, _wide_vectors(PCA_MIN_ITEMS))
    space = tmp_path / "v1" / SPACE_FILENAME
    with np.load(space) as stored:
        np.savez(space, projection_mean=stored["projection_mean"], projection_components=stored["projection_components"])
    with pytest.raises(BundleError, match="space.npz is not valid"):
        BaseReader.open(tmp_path / "v1", manifest, verify=False)
    with pytest.raises(BundleError, match="no fitted parameters"):
        manifest.transform.apply(np.ones((1, WIDE), np.float32))


@pytest.mark.parametrize("spec", [{"name": "pca", "version": 1, "dims": 8, "fitted_on": 9},
                                  {"name": "pca", "version": 2, "dims": 8, "fitted_on": 9, "fit_id": "ab"},
                                  {"name": "identity", "version": 1, "dims": 8}, {"name": "whiten", "version": 1}])
def test_a_manifest_naming_an_unknown_transform_is_refused(tmp_path: Path, spec: dict[str, object]) -> None:
    manifest = _write(tmp_path, _wide_vectors(20))
    text = (tmp_path / "v1" / MANIFEST_FILENAME).read_text().replace('"transform":{"name":"identity","version":1}',
                                                                     f'"transform":{json.dumps(spec, separators=(",", ":"))}')
    with pytest.raises(BundleError, match="transform"):
        BaseManifest.from_json(text)
    assert manifest.transform == Transform()
