"""api.recommend on bundles built in-process: similarity, exclusion of the query, distinct artists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from api_testkit import build_bundle, clustered_vectors, spotify_like_id

from api.index_cache import load_bundle
from api.recommend import TrackNotIndexedError, cosine_similarity, nearest, recommendations
from catalog.bundle import BundleError


def loaded(tmp_path: Path, vectors: np.ndarray, artists: list[list[str]] | None = None):
    ids = [spotify_like_id(i) for i in range(len(vectors))]
    manifest, _ = build_bundle(tmp_path, ids, vectors, artists=artists)
    return load_bundle(tmp_path, manifest, prefault=False)


def test_similarity_is_the_cosine_of_the_angle() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.normal(size=(2, 8))
        a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
        angular = float(np.sqrt(2 - 2 * np.dot(a, b)))
        assert cosine_similarity(angular) == pytest.approx(float(np.dot(a, b)), abs=1e-6)
    assert cosine_similarity(0.0) == 1.0
    assert cosine_similarity(2.0) == -1.0


def test_query_is_excluded_even_when_another_track_has_the_same_vector(tmp_path) -> None:
    vectors = clustered_vectors(30)
    vectors[5] = vectors[4]
    index = loaded(tmp_path, vectors)
    for query, twin in ((4, 5), (5, 4)):
        got = nearest(index, spotify_like_id(query), 3)
        assert [item for item, _ in got][0] == twin
        assert query not in [item for item, _ in got]
        assert got[0][1] == pytest.approx(1.0, abs=1e-6)


def test_distinct_artists_keeps_searching_past_the_first_batch(tmp_path) -> None:
    # 200 tracks, the nearest 150 of track 0 all by one artist: the loop must widen its search.
    vectors = clustered_vectors(200)
    order = np.argsort(-(vectors @ vectors[0]))
    artists = [["Other"] for _ in range(200)]
    for rank, item in enumerate(order):
        artists[item] = ["Same"] if rank < 150 else [f"Solo {rank}"]
    index = loaded(tmp_path, vectors, artists)
    got = nearest(index, spotify_like_id(0), 5, distinct_artists=True)
    assert len(got) == 5
    assert all(artists[item][0].startswith("Solo") for item, _ in got)


def test_unknown_track_raises_and_body_has_query_metadata(tmp_path) -> None:
    index = loaded(tmp_path, clustered_vectors(10))
    with pytest.raises(TrackNotIndexedError):
        nearest(index, "NotThere00000000000000", 3)
    body = recommendations(index, spotify_like_id(2), 3)
    assert body["query"] == {
        "trackId": spotify_like_id(2),
        "title": "Song 2",
        "artists": ["Artist 2"],
        "album": "Album 0",
        "source": "spotify",
        "previewSource": "spotify",
        "tags": {"rock": 0.5, "guitar": 0.25},
    }


def test_load_refuses_an_ann_file_the_manifest_does_not_describe(tmp_path) -> None:
    vectors = clustered_vectors(10)
    manifest, ann_path = build_bundle(tmp_path, [spotify_like_id(i) for i in range(10)], vectors)
    with ann_path.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="bytes"):
        load_bundle(tmp_path, manifest, prefault=False)
