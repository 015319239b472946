"""api.recommend and api.served on bundles built in-process: similarity, exclusion of the query, filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from api_testkit import as_served, build_bundle, clustered_vectors, open_bundle, spotify_like_id

from api.listing import ListPolicy
from api.recommend import TrackNotIndexedError, recommendations
from api.served import ServedIndex, cosine_similarity, descending
from catalog.bundle import BaseReader, BundleError, Projection, TrackMeta


def loaded(tmp_path: Path, vectors: np.ndarray, artists: list[list[str]] | None = None) -> ServedIndex:
    ids = [spotify_like_id(i) for i in range(len(vectors))]
    manifest = build_bundle(tmp_path, ids, vectors, artists=artists)
    return open_bundle(tmp_path, manifest)


def result_items(body: dict) -> list[int]:
    return [int(r["trackId"][1:]) for r in body["results"]]


def test_similarity_is_the_cosine_of_the_angle() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.normal(size=(2, 8))
        a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
        angular = float(np.sqrt(2 - 2 * np.dot(a, b)))
        assert cosine_similarity(angular) == pytest.approx(float(np.dot(a, b)), abs=1e-6)
    assert cosine_similarity(0.0) == 1.0
    assert cosine_similarity(2.0) == -1.0


@pytest.mark.parametrize("first", [1, 3, 10, 64, 500])
def test_descending_is_a_stable_argsort_read_lazily(first: int) -> None:
    rng = np.random.default_rng(first)
    # Ties on purpose (the same vector under two ids gives equal similarities), across block boundaries.
    values = np.round(rng.normal(size=300), 1).astype(np.float32)
    expected = np.argsort(-values, kind="stable").tolist()
    assert list(descending(values, first)) == expected
    head = descending(values, first)
    assert [next(head) for _ in range(5)] == expected[:5]  # the first few, without sorting the rest
    assert list(descending(np.zeros(0, np.float32), first)) == []
    assert list(descending(np.ones(7, np.float32), first)) == list(range(7))


def test_query_is_excluded_even_when_another_track_has_the_same_vector(tmp_path) -> None:
    vectors = clustered_vectors(30)
    vectors[5] = vectors[4]
    index = loaded(tmp_path, vectors)
    for query, twin in ((4, 5), (5, 4)):
        body = recommendations(index, [spotify_like_id(query)], 3)
        assert result_items(body)[0] == twin
        assert query not in result_items(body)
        assert body["results"][0]["similarity"] == pytest.approx(1.0, abs=1e-6)


def test_distinct_artists_keeps_searching_past_the_first_batch(tmp_path) -> None:
    # 200 tracks, the nearest 150 of track 0 all by one artist: the search must widen.
    vectors = clustered_vectors(200)
    order = np.argsort(-(vectors @ vectors[0]))
    artists = [["Other"] for _ in range(200)]
    for rank, item in enumerate(order):
        artists[item] = ["Same"] if rank < 150 else [f"Solo {rank}"]
    index = loaded(tmp_path, vectors, artists)
    got = result_items(recommendations(index, [spotify_like_id(0)], 5, ListPolicy(max_per_artist=1)))
    assert len(got) == 5
    assert all(artists[item][0].startswith("Solo") for item in got)


def test_search_asks_accept_once_per_candidate_in_similarity_order(tmp_path) -> None:
    vectors = clustered_vectors(120)
    index = loaded(tmp_path, vectors)
    query = index.vector(spotify_like_id(0))
    asked: list[str] = []

    def every_third(meta: TrackMeta) -> bool:
        asked.append(meta.track_id)
        return len(asked) % 3 == 0

    got = index.search(query, 10, exclude={spotify_like_id(0)}, accept=every_third)
    exact = [spotify_like_id(i) for i in np.argsort(-(vectors @ vectors[0])) if i != 0]
    assert asked == exact[: len(asked)] and len(asked) == 30
    assert [n.track_id for n in got] == asked[2::3]
    # A predicate nothing passes exhausts the catalogue and returns nothing.
    assert index.search(query, 5, accept=lambda meta: False) == []


def test_vector_transform_and_projection(tmp_path) -> None:
    vectors = clustered_vectors(40)
    index = loaded(tmp_path, vectors)
    np.testing.assert_allclose(index.vector(spotify_like_id(3)), as_served(vectors[3]), atol=1e-6)
    raw = 7.0 * vectors[3]
    np.testing.assert_allclose(index.transform(raw), vectors[3], atol=1e-6)
    expected = Projection.fit(as_served(vectors)).apply(as_served(vectors[3]))[0]
    assert index.project(spotify_like_id(3)) == pytest.approx(tuple(expected), abs=1e-5)
    with pytest.raises(KeyError):
        index.meta("NotThere00000000000000")


def test_unknown_track_raises_and_body_has_query_metadata(tmp_path) -> None:
    index = loaded(tmp_path, clustered_vectors(10))
    with pytest.raises(TrackNotIndexedError):
        recommendations(index, ["NotThere00000000000000"], 3)
    body = recommendations(index, [spotify_like_id(2)], 3)
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
    manifest = build_bundle(tmp_path, [spotify_like_id(i) for i in range(10)], vectors)
    with (tmp_path / "tracks.ann").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="bytes"):
        BaseReader.open(tmp_path, manifest)
