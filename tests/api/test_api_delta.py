"""Serving base + delta: merged exact results, tombstones, and refusing a bad or foreign delta."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from api_testkit import MODEL, PublishedBundle, as_served, clustered_vectors, sample_meta, spotify_like_id

from api.index_cache import IndexCache
from catalog.bundle import SERVING_FILES, Delta
from catalog.bundle_store import BundleStore

BUCKET = "soundslike-test-index"


class CountingS3:
    def __init__(self) -> None:
        self.client = boto3.client("s3")
        self.downloads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        self.downloads.append(key)
        self.client.download_file(bucket, key, filename)


def publish_delta(bundle: PublishedBundle, tmp_path: Path, sequence: int, *, added: dict[str, np.ndarray],
                  removed: set[str] = frozenset(), base_version: str | None = None) -> Delta:
    store = BundleStore(BUCKET)
    delta = Delta(base_version or bundle.manifest.version, sequence, MODEL, bundle.manifest.dim, "2026-12-01T10:00:00Z")
    for i, (track_id, vector) in enumerate(added.items()):
        delta.upsert(sample_meta(track_id, 1000 + i), vector, was_indexed=track_id in bundle.track_ids)
    for track_id in removed:
        delta.remove(track_id, was_indexed=True)
    file = store.upload_delta(delta, tmp_path / f"delta-{sequence}.npz")
    read = store.read_latest()
    pointer = read.pointer
    if base_version is not None:  # a delta of another base, named by LATEST under this base's key
        boto3.client("s3").copy_object(Bucket=BUCKET, Key=delta.key.replace(base_version, pointer.base_version),
                                       CopySource={"Bucket": BUCKET, "Key": delta.key})
        delta.base_version = pointer.base_version
    store.write_latest(pointer.with_delta(delta, file, "2026-12-01T10:00:01Z"), read.etag)
    return delta


@pytest.fixture
def s3(aws: None) -> CountingS3:
    return CountingS3()


@pytest.fixture
def cache(s3: CountingS3, tmp_path: Path, clock: Any) -> IndexCache:
    return IndexCache(BUCKET, s3=s3, directory=tmp_path / "index", recheck_s=15.0, clock=clock)


def test_base_and_delta_answer_together_as_exact_search_would(cache, publish, clock, tmp_path, s3) -> None:
    bundle = publish(n=60)
    base_index = cache.current()
    rng = np.random.default_rng(4)
    added = {spotify_like_id(100 + i): v for i, v in enumerate(clustered_vectors(10, seed=9))}
    moved = {bundle.track_ids[5]: -bundle.vectors[5]}
    publish_delta(bundle, tmp_path, 1, added={**added, **moved}, removed={bundle.track_ids[7], bundle.track_ids[8]})
    downloads = len(s3.downloads)
    clock.advance(15.0)
    index = cache.current()
    assert index is not base_index and index.version == f"{bundle.manifest.version}+1"
    assert len(s3.downloads) == downloads + 1  # only the delta: the base stays mapped
    assert index.count == 60 - 2 + 10
    truth: dict[str, np.ndarray] = {tid: v for tid, v in zip(bundle.track_ids, bundle.vectors, strict=True)}
    truth.update(added)
    truth.update(moved)
    for gone in (bundle.track_ids[7], bundle.track_ids[8]):
        truth.pop(gone)
    ids = list(truth)
    matrix = as_served(np.stack([truth[i] for i in ids]))
    for _ in range(10):
        query = rng.normal(size=matrix.shape[1]).astype(np.float32)
        query /= np.linalg.norm(query)
        expected = [ids[j] for j in np.argsort(-(matrix @ query))[:12]]
        got = index.search(query, 12)
        assert [n.track_id for n in got] == expected
        np.testing.assert_allclose([n.similarity for n in got], np.sort(matrix @ query)[::-1][:12], atol=1e-5)
    assert set(index.track_ids()) == set(ids)
    assert index.meta(spotify_like_id(100)).title == "Song 1000"
    np.testing.assert_allclose(index.vector(bundle.track_ids[5]), as_served(-bundle.vectors[5]), atol=1e-6)


def test_a_corrupt_delta_keeps_the_last_good_pair_serving(cache, publish, clock, tmp_path, caplog) -> None:
    bundle = publish(n=30)
    good = publish_delta(bundle, tmp_path, 1, added={spotify_like_id(200): clustered_vectors(1, seed=3)[0]})
    clock.advance(15.0)
    assert cache.current().version.endswith("+1")
    bad = publish_delta(bundle, tmp_path, 2, added={spotify_like_id(201): clustered_vectors(1, seed=4)[0]})
    boto3.client("s3").put_object(Bucket=BUCKET, Key=bad.key, Body=b"PK\x03\x04 not a zip at all")
    clock.advance(15.0)
    served = cache.current()
    assert served.version == f"{bundle.manifest.version}+1" and spotify_like_id(200) in served
    assert any(r.levelno >= logging.ERROR and getattr(r, "version", "") == f"{bundle.manifest.version}+2"
               for r in caplog.records)
    fixed = publish_delta(bundle, tmp_path, 3, added={spotify_like_id(202): clustered_vectors(1, seed=5)[0]})
    clock.advance(15.0)
    assert cache.current().version.endswith(f"+{fixed.sequence}")
    assert good.sequence == 1


def test_a_delta_of_another_base_is_refused(cache, publish, clock, tmp_path) -> None:
    bundle = publish(n=30)
    assert cache.current().version == bundle.manifest.version
    publish_delta(bundle, tmp_path, 1, added={spotify_like_id(300): clustered_vectors(1, seed=6)[0]},
                  base_version="20200101T000000000000Z-aaaaaa")
    clock.advance(15.0)
    served = cache.current()
    assert served.version == bundle.manifest.version and spotify_like_id(300) not in served


def test_the_folder_holds_the_served_base_only_and_deletes_only_its_own(cache, publish, clock, tmp_path) -> None:
    foreign = tmp_path / "index" / "not-ours"
    foreign.mkdir(parents=True)
    (foreign / "keep.txt").write_text("someone else's")
    first = publish(n=20, seed=1)
    cache.current()
    second = publish(n=20, seed=2)
    clock.advance(15.0)
    assert cache.current().version == second.manifest.version
    names = sorted(p.name for p in (tmp_path / "index").iterdir())
    assert names == sorted([second.manifest.version, "not-ours"]) and first.manifest.version not in names
    assert (foreign / "keep.txt").read_text() == "someone else's"
    assert sorted(p.name for p in (tmp_path / "index" / second.manifest.version).iterdir() if p.name in SERVING_FILES) == sorted(SERVING_FILES)
