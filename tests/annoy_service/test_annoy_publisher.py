"""Publishing bundles: complete bundle, LATEST.json last, announcement, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from annoy import AnnoyIndex
from annoy_helpers import DIM, MODEL, REGION, Stack

from annoy_service.builder import search_k_for
from annoy_service.publisher import IndexStore, prune_versions
from annoy_service.service import Result, rebuild_and_publish
from catalog.bundle import LatestPointer, Manifest, sha256_file
from catalog.keys import LATEST_KEY, ann_key, manifest_key

FEW_TREES = 5  # keeps these tests quick; the recall test pins the real settings


def _fill(stack: Stack, count: int = 30, prefix: str = "t") -> None:
    for i in range(count):
        stack.put_ready(f"{prefix}{i:03d}")


def _publish(stack: Stack, keep: int = 5, force: bool = False, store: IndexStore | None = None) -> object:
    return rebuild_and_publish(
        stack.table, store or stack.store, stack.announcer, MODEL, keep, force=force, n_trees=FEW_TREES
    )


def _get(stack: Stack, key: str) -> bytes:
    return boto3.client("s3", region_name=REGION).get_object(Bucket=stack.bucket, Key=key)["Body"].read()


def test_published_bundle_is_complete_and_latest_points_at_it(stack: Stack, tmp_path: Path) -> None:
    _fill(stack)
    outcome = _publish(stack)
    assert outcome.result is Result.PUBLISHED

    latest = LatestPointer.from_json(_get(stack, LATEST_KEY))
    manifest = Manifest.from_json(_get(stack, latest.manifest_key))
    ann = tmp_path / "tracks.ann"
    ann.write_bytes(_get(stack, latest.ann_key))
    assert latest.version == manifest.version == outcome.version
    assert (latest.ann_key, latest.manifest_key) == (ann_key(manifest.version), manifest_key(manifest.version))
    assert sha256_file(ann) == manifest.ann_sha256 == latest.ann_sha256
    assert ann.stat().st_size == manifest.ann_bytes
    assert manifest.track_ids == sorted(f"t{i:03d}" for i in range(30))
    assert (manifest.count, manifest.dim, manifest.model, manifest.n_trees) == (30, DIM, MODEL, FEW_TREES)
    assert manifest.search_k == search_k_for(30)
    assert manifest.content_sha256 and manifest.content_sha256 == latest.content_sha256
    index = AnnoyIndex(manifest.dim, manifest.metric)
    index.load(str(ann))
    assert index.get_n_items() == manifest.count
    assert index.get_nns_by_item(7, 1) == [7]
    assert manifest.tracks[7]["title"] == f"title of {manifest.track_ids[7]}"


def test_latest_is_written_after_both_bundle_objects(stack: Stack) -> None:
    _fill(stack)
    writes: list[str] = []

    def record_write(params: dict, **_: object) -> None:
        writes.append(params["Key"])

    s3 = stack.store.s3
    s3.meta.events.register("before-parameter-build.s3.PutObject", record_write)
    s3.meta.events.register("before-parameter-build.s3.CreateMultipartUpload", record_write)
    outcome = _publish(stack)
    assert writes[-1] == LATEST_KEY
    assert set(writes[:-1]) == {ann_key(outcome.version), manifest_key(outcome.version)}
    assert writes.index(ann_key(outcome.version)) < writes.index(manifest_key(outcome.version))


def test_announcement_reaches_a_subscriber_with_version_counts_and_keys(stack: Stack) -> None:
    _fill(stack, 12)
    stack.put_ready("elsewhere", model="musicnn-mtt-v1")
    outcome = _publish(stack)
    (envelope,) = stack.announcements()
    message = json.loads(envelope["Message"])
    assert message == {
        "type": "IndexPublished",
        "version": outcome.version,
        "count": 12,
        "dim": DIM,
        "model": MODEL,
        "bucket": stack.bucket,
        "manifest_key": manifest_key(outcome.version),
        "ann_key": ann_key(outcome.version),
    }
    assert envelope["MessageAttributes"]["type"] == {"Type": "String", "Value": "IndexPublished"}
    assert Manifest.from_json(_get(stack, manifest_key(outcome.version))).skipped == {"other_model": 1}


class _LatestFails(IndexStore):
    def write_latest(self, pointer: LatestPointer) -> None:
        raise RuntimeError("injected: crash between bundle and LATEST")


def test_failure_between_bundle_and_latest_leaves_the_old_latest_and_announces_nothing(stack: Stack) -> None:
    _fill(stack)
    first = _publish(stack)
    stack.announcements()
    before = _get(stack, LATEST_KEY)
    stack.put_ready("newcomer")

    with pytest.raises(RuntimeError, match="injected"):
        _publish(stack, store=_LatestFails(stack.bucket))

    assert _get(stack, LATEST_KEY) == before
    assert LatestPointer.from_json(before).version == first.version
    assert stack.announcements() == []
    # the orphaned bundle is complete but unreferenced; the retry publishes a newer one
    retry = _publish(stack)
    assert retry.result is Result.PUBLISHED and retry.version > first.version
    assert LatestPointer.from_json(_get(stack, LATEST_KEY)).version == retry.version


def test_versions_are_pruned_to_the_newest_n(stack: Stack) -> None:
    _fill(stack, 10)
    published = [_publish(stack, keep=3, force=True).version for _ in range(6)]
    assert published == sorted(published) and len(set(published)) == 6
    assert stack.store.versions() == published[-3:]
    assert stack.keys() == sorted(
        [LATEST_KEY] + [k for v in published[-3:] for k in (ann_key(v), manifest_key(v))]
    )


def test_pruning_never_deletes_the_version_latest_names(stack: Stack) -> None:
    _fill(stack, 10)
    current = _publish(stack).version
    s3 = boto3.client("s3", region_name=REGION)
    for stray in ("29990101T000000000000Z-aaaaaa", "29990101T000000000000Z-bbbbbb"):
        s3.put_object(Bucket=stack.bucket, Key=manifest_key(stray), Body=b"{}")
    assert prune_versions(stack.store, keep=1, current=current) == ["29990101T000000000000Z-aaaaaa"]
    assert stack.store.versions() == [current, "29990101T000000000000Z-bbbbbb"]


def test_empty_catalogue_publishes_nothing(stack: Stack) -> None:
    stack.put_pending("waiting")
    outcome = _publish(stack)
    assert outcome.result is Result.EMPTY
    assert stack.keys() == [] and stack.announcements() == []
