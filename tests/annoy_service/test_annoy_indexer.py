"""The Indexer on moto: deltas from the real stream (no table read), tombstones, compaction, races, debounce."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from annoy_helpers import DIM, REGION, Stack
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

from annoy_service.changes import stream_changes
from annoy_service.service import Result
from api.index_cache import IndexCache
from api.served import ServedIndex
from catalog import bundle, storage
from catalog.bundle_store import BundleStore, LatestMovedError
from catalog.model import MODEL_ID

MODEL = MODEL_ID


class DynamoCalls:
    """Every DynamoDB API call this process makes, by operation name (botocore's own event hook)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


@pytest.fixture
def dynamo_calls() -> Iterator[DynamoCalls]:
    calls = DynamoCalls()
    events = storage.resource("dynamodb").meta.client.meta.events
    events.register("before-call.dynamodb.*", calls)
    try:
        yield calls
    finally:
        events.unregister("before-call.dynamodb.*", calls)


def changes_of(stack: Stack) -> list:
    return stream_changes(DynamoDBStreamEvent(stack.stream.batch()).records, MODEL)


def served(stack: Stack, tmp_path: Path) -> ServedIndex:
    index = IndexCache(stack.bucket, directory=tmp_path / f"api-{len(list(tmp_path.iterdir()))}").current()
    assert index is not None
    return index


def base_of(stack: Stack, n: int, prefix: str = "t") -> dict[str, np.ndarray]:
    """n ready tracks in the table, published as a base by a full rebuild; their raw vectors."""
    vectors = {f"{prefix}{i:04d}": stack.mark_ready(f"{prefix}{i:04d}") for i in range(n)}
    outcome = stack.indexer().rebuild_full()
    assert outcome.result is Result.REBUILT and outcome.count == n
    stack.stream.batch()  # the stream records of the base's tracks are already in the base
    return vectors


def nearest_ids(index: ServedIndex, vector: np.ndarray, k: int) -> list[str]:
    return [n.track_id for n in index.search(index.transform(vector), k)]


def test_stream_batch_reads_no_table_item_and_makes_new_tracks_recommendable(stack: Stack, tmp_path, dynamo_calls) -> None:
    base = base_of(stack, 30)
    new = {f"n{i}": stack.mark_ready(f"n{i}", base[f"t{i:04d}"] + 0.01 * stack.rng.standard_normal(DIM)) for i in range(5)}
    changes = changes_of(stack)
    dynamo_calls.names.clear()
    outcome = stack.indexer().apply_changes(changes)
    assert dynamo_calls.names == []  # no Scan, no GetItem: the stream images carry everything
    assert (outcome.result, outcome.count, outcome.delta_size, outcome.items_read) == (Result.DELTA, 35, 5, 0)
    latest = stack.store.read_latest().pointer
    assert latest.delta_sequence == 1 and latest.version == f"{latest.base_version}+1"
    index = served(stack, tmp_path)
    assert index.count == 35 and set(index.track_ids()) == set(base) | set(new)
    for i in range(5):
        # the new track is the nearest neighbour of its near-twin in the base, and the other way round
        assert nearest_ids(index, base[f"t{i:04d}"], 2) == [f"t{i:04d}", f"n{i}"]
        assert index.search(index.vector(f"n{i}"), 1, exclude={f"n{i}"})[0].track_id == f"t{i:04d}"
    assert index.meta("n3").title == "title of n3"


def test_remove_failed_and_reembedded_tracks_leave_the_results(stack: Stack, tmp_path) -> None:
    base = base_of(stack, 40)
    stack.table.table.delete_item(Key={"track_id": "t0001"})
    stack.table.mark_failed("t0002", "audio could not be decoded")
    moved = stack.mark_ready("t0003", -base["t0003"])  # re-extracted: the opposite direction
    added = stack.mark_ready("n0")
    stack.table.table.delete_item(Key={"track_id": "n0"})  # added and removed within one batch
    outcome = stack.indexer().apply_changes(changes_of(stack))
    assert outcome.result is Result.DELTA and outcome.count == 38
    index = served(stack, tmp_path)
    ids = set(index.track_ids())
    assert {"t0001", "t0002", "n0"}.isdisjoint(ids) and "t0003" in ids and index.count == 38
    everything = [n.track_id for n in index.search(index.transform(base["t0001"]), 100)]
    assert len(everything) == 38 and {"t0001", "t0002", "n0"}.isdisjoint(everything)
    assert nearest_ids(index, moved, 1) == ["t0003"]
    assert "t0003" not in nearest_ids(index, base["t0003"], 5)  # the old copy in the base is hidden
    with pytest.raises(KeyError):
        index.meta("t0001")
    assert added.shape == (DIM,)


def test_redelivered_batch_publishes_nothing_new(stack: Stack) -> None:
    base_of(stack, 20)
    stack.mark_ready("n0")
    changes = changes_of(stack)
    first = stack.indexer().apply_changes(changes)
    before = stack.store.read_latest()
    stack.announcements()
    again = stack.indexer().apply_changes(changes)
    assert (first.result, again.result) == (Result.DELTA, Result.UNCHANGED)
    assert stack.store.read_latest().etag == before.etag and stack.announcements() == []


def test_compaction_from_base_vectors_and_delta_matches_a_full_rebuild(stack: Stack, tmp_path, dynamo_calls) -> None:
    base = base_of(stack, 600)
    for i in range(60):
        stack.mark_ready(f"n{i:03d}")
    for i in range(0, 40, 2):
        stack.table.table.delete_item(Key={"track_id": f"t{i:04d}"})
    for i in range(100, 130):
        stack.mark_ready(f"t{i:04d}", -base[f"t{i:04d}"])
    indexer = stack.indexer(compact_items=10**9, compact_share=10.0)
    assert indexer.apply_changes(changes_of(stack)).result is Result.DELTA
    dynamo_calls.names.clear()
    read_keys: list[str] = []
    s3_events = indexer.store.s3.meta.events

    def record_get(params: dict[str, Any], **_: Any) -> None:
        read_keys.append(params["Key"])

    s3_events.register("before-parameter-build.s3.GetObject", record_get)
    try:
        compacted = indexer.compact()
    finally:
        s3_events.unregister("before-parameter-build.s3.GetObject", record_get)
    assert dynamo_calls.names == [] and compacted.items_read == 0
    # Built from the previous base's rows: its vectors and metadata are read, its Annoy index never.
    read_files = {key.rsplit("/", 1)[-1] for key in read_keys}
    assert {"vectors.f16", "meta.sqlite"} <= read_files and "tracks.ann" not in read_files
    assert compacted.result is Result.COMPACTED and compacted.delta_size == 0
    from_compaction = served(stack, tmp_path)
    rebuilt = indexer.rebuild_full(force=True)
    assert rebuilt.result is Result.REBUILT and rebuilt.drift is not None and rebuilt.drift.total == 0
    from_table = served(stack, tmp_path)
    assert set(from_compaction.track_ids()) == set(from_table.track_ids()) and from_compaction.count == 640
    ids = sorted(from_table.track_ids())
    exact = np.stack([from_table.vector(i) for i in ids])
    hits = 0
    for q in range(0, len(ids), 16):
        truth = {ids[j] for j in np.argsort(-(exact @ exact[q]))[:10]}
        hits += len(truth & {n.track_id for n in from_compaction.search(exact[q], 10)})
        np.testing.assert_allclose(from_compaction.vector(ids[q]), exact[q], atol=1e-6)
    assert hits / (10 * len(range(0, len(ids), 16))) >= 0.95


def test_a_delta_past_the_threshold_is_compacted_after_it_is_published(stack: Stack) -> None:
    base_of(stack, 50)
    first_base = stack.store.read_latest().pointer.base_version
    for i in range(12):
        stack.mark_ready(f"n{i:02d}")
    outcome = stack.indexer(compact_items=10, compact_share=10.0).apply_changes(changes_of(stack))
    assert outcome.result is Result.COMPACTED and outcome.count == 62 and outcome.delta_size == 0
    latest = stack.store.read_latest().pointer
    assert latest.delta_sequence == 0 and latest.base_count == 62
    # the delta went out first: its object exists under the previous base
    assert latest.base_version != first_base and len(stack.store.delta_keys(first_base)) == 1


def test_share_threshold_counts_against_the_base(stack: Stack) -> None:
    base_of(stack, 40)
    for i in range(3):
        stack.mark_ready(f"n{i}")
    assert stack.indexer(compact_items=10**9, compact_share=0.1).apply_changes(changes_of(stack)).result is Result.DELTA
    stack.mark_ready("n3")
    assert stack.indexer(compact_items=10**9, compact_share=0.1).apply_changes(changes_of(stack)).result is Result.COMPACTED


def test_a_fresh_bucket_gets_its_first_base_from_the_stream_alone(stack: Stack, dynamo_calls) -> None:
    for i in range(8):
        stack.mark_ready(f"t{i}")
    changes = changes_of(stack)
    dynamo_calls.names.clear()
    outcome = stack.indexer().apply_changes(changes)
    assert outcome.result is Result.COMPACTED and outcome.count == 8 and dynamo_calls.names == []


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_debounce_allows_one_delta_per_interval_and_a_burst_coalesces(stack: Stack) -> None:
    base_of(stack, 30)
    clock = _Clock(stack_time := 2_000_000_000.0)
    published_at: list[str] = []

    def sleep_while_a_burst_arrives(seconds: float) -> None:
        for i in range(20):  # the burst lands in the table (and its stream) while the builder waits
            stack.mark_ready(f"burst{i:02d}")
        clock.sleep(seconds)

    indexer = stack.indexer(debounce_s=30.0, clock=clock, sleep=sleep_while_a_burst_arrives)
    stack.mark_ready("first")
    assert indexer.apply_changes(changes_of(stack)).result is Result.DELTA
    published_at.append(stack.store.read_latest().pointer.published_at)
    assert clock.slept == []  # the previous publication (the base) was long ago
    clock.now += 5.0
    stack.mark_ready("second")
    assert indexer.apply_changes(changes_of(stack)).result is Result.DELTA
    assert clock.slept == [pytest.approx(25.0)]
    published_at.append(stack.store.read_latest().pointer.published_at)
    # everything that arrived during the wait is one batch, and one publication 30 s later
    burst = changes_of(stack)
    assert len(burst) == 20
    indexer.sleep = clock.sleep
    outcome = indexer.apply_changes(burst)
    assert outcome.result is Result.DELTA and outcome.count == 30 + 22
    assert clock.slept == [pytest.approx(25.0), pytest.approx(30.0)]
    assert clock.now == pytest.approx(stack_time + 65.0)


def test_two_builders_racing_never_move_latest_backwards(stack: Stack, tmp_path) -> None:
    base_of(stack, 20)
    stack.mark_ready("from-a")
    changes_a = changes_of(stack)
    stack.mark_ready("from-b")
    changes_b = changes_of(stack)
    slow = stack.indexer()
    fast = stack.indexer()
    original = BundleStore.write_latest
    raced = threading.Event()

    def write_after_the_other_builder(self: BundleStore, pointer: Any, etag: str | None) -> str:
        if not raced.is_set():
            raced.set()
            assert fast.apply_changes(changes_b).result is Result.DELTA  # B publishes between A's read and write
        return original(self, pointer, etag)

    slow.store = BundleStore(stack.bucket)
    slow.store.write_latest = write_after_the_other_builder.__get__(slow.store)  # type: ignore[method-assign]
    outcome = slow.apply_changes(changes_a)
    assert outcome.result is Result.DELTA
    latest = stack.store.read_latest().pointer
    assert latest.delta_sequence == 2  # B's delta was 1; A started again from it
    ids = set(served(stack, tmp_path).track_ids())
    assert {"from-a", "from-b"} <= ids and len(ids) == 22


def test_a_stale_etag_is_refused_and_the_first_write_needs_an_absent_latest(stack: Stack) -> None:
    base_of(stack, 10)
    read = stack.store.read_latest()
    pointer = dataclasses.replace(read.pointer, published_at="2030-01-01T00:00:00.000Z")
    stack.store.write_latest(pointer, read.etag)
    with pytest.raises(LatestMovedError):
        stack.store.write_latest(read.pointer, read.etag)  # the ETag moved with the write above
    with pytest.raises(LatestMovedError):
        stack.store.write_latest(pointer, None)  # If-None-Match: * with LATEST present


def test_compaction_racing_a_delta_carries_the_delta_over(stack: Stack, tmp_path) -> None:
    base_of(stack, 30)
    stack.mark_ready("early")
    compactor = stack.indexer(compact_items=10**9, compact_share=10.0)
    assert compactor.apply_changes(changes_of(stack)).result is Result.DELTA
    stack.mark_ready("during")
    stack.table.table.delete_item(Key={"track_id": "t0004"})
    late = changes_of(stack)
    streamer = stack.indexer(compact_items=10**9, compact_share=10.0)
    original = BundleStore.upload_base

    def upload_while_a_delta_lands(self: BundleStore, directory: Path, manifest: Any) -> str:
        sha = original(self, directory, manifest)
        assert streamer.apply_changes(late).result is Result.DELTA
        return sha

    compactor.store = BundleStore(stack.bucket)
    compactor.store.upload_base = upload_while_a_delta_lands.__get__(compactor.store)  # type: ignore[method-assign]
    outcome = compactor.compact()
    assert outcome.result is Result.COMPACTED
    latest = stack.store.read_latest().pointer
    assert latest.delta_sequence == 1 and latest.delta_size == 2  # "during" and the tombstone of t0004
    index = served(stack, tmp_path)
    ids = set(index.track_ids())
    assert {"early", "during"} <= ids and "t0004" not in ids and index.count == 31


def test_announcement_and_pruning(stack: Stack) -> None:
    base_of(stack, 10)
    indexer = stack.indexer(keep_versions=2)
    for i in range(6):
        stack.mark_ready(f"n{i}")
        indexer.apply_changes(changes_of(stack))
    latest = stack.store.read_latest().pointer
    assert latest.delta_sequence == 6
    keys = stack.store.delta_keys(latest.base_version)
    assert keys[-1] == latest.delta_key and len(keys) == 3  # the newest and two before it
    messages = [m for m in stack.announcements()]
    assert messages and '"delta_sequence": 6' in messages[-1]["Message"]
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.head_object(Bucket=stack.bucket, Key=latest.delta_key)["ContentLength"] > 0


def test_compaction_keeps_the_pca_basis_until_the_catalogue_doubles_and_serves_new_tracks_in_it(
    stack: Stack, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PCA-sized catalogue at test scale: 200-d raw vectors searched in 8 axes from 100 tracks on.
    monkeypatch.setattr(bundle, "SEARCHED_DIMS", 8)
    monkeypatch.setattr(bundle, "PCA_MIN_ITEMS", 100)
    base_of(stack, 100)
    first = stack.store.read_latest().pointer.base_version
    fitted = served(stack, tmp_path)
    assert (fitted.dim, fitted.space.split(":")[:2]) == (8, ["pca", "8"])
    new = {f"n{i:03d}": stack.mark_ready(f"n{i:03d}") for i in range(12)}
    outcome = stack.indexer(compact_items=10, compact_share=10.0).apply_changes(changes_of(stack))
    assert outcome.result is Result.COMPACTED and outcome.count == 112
    compacted = served(stack, tmp_path)
    assert compacted.base_version != first and compacted.space == fitted.space  # kept: 112 < 2 x 100
    for track_id, raw in new.items():
        np.testing.assert_allclose(compacted.vector(track_id), fitted.transform(bundle.at_base_precision(raw)), atol=1e-5)
    for i in range(12, 100):
        stack.mark_ready(f"n{i:03d}")
    assert stack.indexer(compact_items=10, compact_share=10.0).apply_changes(changes_of(stack)).count == 200
    refitted = served(stack, tmp_path)
    assert refitted.dim == 8 and refitted.space != fitted.space  # 200 = 2 x 100: fitted again


def test_a_base_in_another_searched_space_asks_for_every_listener_to_be_trained_again(
    stack: Stack, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annoy_service.listeners import ListenerRetrainer
    from catalog.train_requests import REASON_SPACE_CHANGED, TrainQueue, TrainRequest
    from catalog.user_models import UserModelStore, model_key, profile_key

    monkeypatch.setattr(bundle, "SEARCHED_DIMS", 8)
    monkeypatch.setattr(bundle, "PCA_MIN_ITEMS", 100)
    s3 = boto3.client("s3", region_name=REGION)
    listeners = [f"listener-{i:02d}" for i in range(13)]  # two SendMessageBatch calls
    for user_id in listeners:
        s3.put_object(Bucket=stack.bucket, Key=profile_key(user_id), Body=b"{}")
    s3.put_object(Bucket=stack.bucket, Key=model_key(listeners[0]), Body=b"model")
    sqs = boto3.client("sqs", region_name=REGION)
    train_queue = sqs.create_queue(QueueName="train")["QueueUrl"]
    retrainer = ListenerRetrainer(UserModelStore(stack.bucket), TrainQueue(train_queue))

    def requests_sent() -> list[TrainRequest]:
        sent = []
        while messages := sqs.receive_message(QueueUrl=train_queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                sent.append(TrainRequest.from_body(message["Body"]))
                sqs.delete_message(QueueUrl=train_queue, ReceiptHandle=message["ReceiptHandle"])
        return sent

    for i in range(60):  # identity: below PCA_MIN_ITEMS
        stack.mark_ready(f"t{i:04d}")
    assert stack.indexer(retrainer=retrainer).rebuild_full().retrain_requested == 0  # a fresh bucket: nobody was trained
    stack.stream.batch()
    for i in range(60, 70):
        stack.mark_ready(f"t{i:04d}")
    kept = stack.indexer(compact_items=10, compact_share=10.0, retrainer=retrainer).apply_changes(changes_of(stack))
    assert (kept.result, kept.retrain_requested, served(stack, tmp_path).space) == (Result.COMPACTED, 0, "identity")
    assert requests_sent() == []
    for i in range(70, 110):  # past PCA_MIN_ITEMS: the next base is searched in a fitted PCA space
        stack.mark_ready(f"t{i:04d}")
    moved = stack.indexer(compact_items=10, compact_share=10.0, retrainer=retrainer).apply_changes(changes_of(stack))
    space = served(stack, tmp_path).space
    assert space.startswith("pca:8:") and moved.result is Result.COMPACTED
    assert moved.retrain_requested == len(listeners) and "13 listeners to be trained again" in moved.summary()
    sent = requests_sent()
    assert sorted(r.user_id for r in sent) == listeners
    assert {(r.reason, r.space, json.dumps(r.last_import)) for r in sent} == {(REASON_SPACE_CHANGED, space, "{}")}
    # The weekly rebuild from the table keeps the served basis (115 < 2 x 110): same space, nobody asked.
    for i in range(110, 115):
        stack.mark_ready(f"t{i:04d}")
    rebuilt = stack.indexer(retrainer=retrainer).rebuild_full()
    assert (rebuilt.result, rebuilt.count, rebuilt.retrain_requested) == (Result.REBUILT, 115, 0)
    assert served(stack, tmp_path).space == space and requests_sent() == []
