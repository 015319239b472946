"""The Lambda handler on recorded stream batches: rebuild once, idempotent, failures reported."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from annoy_helpers import REGION, Stack, load_event

from annoy_service import handler, service
from catalog.bundle import LatestPointer
from catalog.keys import LATEST_KEY


def _latest(stack: Stack) -> LatestPointer | None:
    return stack.store.read_latest()


def _batch(*names: str) -> dict[str, Any]:
    records = [record for name in names for record in load_event(name)["Records"]]
    return {"Records": copy.deepcopy(records)}


@pytest.fixture(autouse=True)
def few_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    # the recall test pins N_TREES; here a smaller forest keeps builds quick
    original = service.rebuild_and_publish

    def quick(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**kwargs, "n_trees": 5})

    monkeypatch.setattr(handler, "rebuild_and_publish", quick)


def test_ready_embedding_batch_publishes_one_version_and_announces_it(stack: Stack, lambda_context: Any) -> None:
    for i in range(20):
        stack.put_ready(f"t{i:02d}")
    response = handler.lambda_handler(
        _batch("annoy_stream_mark_ready", "annoy_stream_ready_reextracted", "annoy_stream_remove_ready"), lambda_context
    )
    assert response == {"batchItemFailures": []}
    latest = _latest(stack)
    assert latest is not None and latest.count == 20
    assert stack.store.versions() == [latest.version]
    (envelope,) = stack.announcements()
    assert json.loads(envelope["Message"])["version"] == latest.version


def test_redelivered_batch_publishes_no_new_version(stack: Stack, lambda_context: Any) -> None:
    for i in range(20):
        stack.put_ready(f"t{i:02d}")
    event = _batch("annoy_stream_mark_ready")
    handler.lambda_handler(copy.deepcopy(event), lambda_context)
    first = _latest(stack)
    stack.announcements()

    assert handler.lambda_handler(copy.deepcopy(event), lambda_context) == {"batchItemFailures": []}
    assert _latest(stack) == first
    assert stack.store.versions() == [first.version]
    assert stack.announcements() == []


def test_changed_embedding_after_publication_publishes_a_newer_version(stack: Stack, lambda_context: Any) -> None:
    for i in range(20):
        stack.put_ready(f"t{i:02d}")
    handler.lambda_handler(_batch("annoy_stream_mark_ready"), lambda_context)
    first = _latest(stack)
    stack.put_ready("t05")  # re-extracted: a new embedding
    handler.lambda_handler(_batch("annoy_stream_ready_reextracted"), lambda_context)
    second = _latest(stack)
    assert second.version > first.version and second.content_sha256 != first.content_sha256


def test_batch_without_ready_embedding_changes_builds_nothing(stack: Stack, lambda_context: Any) -> None:
    stack.put_ready("t00")
    response = handler.lambda_handler(
        _batch("annoy_stream_insert_pending", "annoy_stream_ready_playlist_added", "annoy_stream_mark_failed"),
        lambda_context,
    )
    assert response == {"batchItemFailures": []}
    assert _latest(stack) is None and stack.keys() == []


def test_build_failure_reports_the_batch_failed_from_its_first_record_and_keeps_latest(
    stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        stack.put_ready(f"t{i:02d}")
    handler.lambda_handler(_batch("annoy_stream_mark_ready"), lambda_context)
    before = boto3.client("s3", region_name=REGION).get_object(Bucket=stack.bucket, Key=LATEST_KEY)["Body"].read()
    stack.announcements()
    stack.put_ready("t21")

    def broken_build(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("injected: build ran out of memory")

    monkeypatch.setattr(service, "build_index", broken_build)
    event = _batch("annoy_stream_insert_pending", "annoy_stream_ready_reextracted")
    response = handler.lambda_handler(event, lambda_context)

    first_sequence = event["Records"][0]["dynamodb"]["SequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": first_sequence}]}
    after = boto3.client("s3", region_name=REGION).get_object(Bucket=stack.bucket, Key=LATEST_KEY)["Body"].read()
    assert after == before
    assert stack.announcements() == []


def test_missing_setting_is_named_in_the_error(stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INDEX_TOPIC_ARN")
    handler.dependencies.cache_clear()
    with pytest.raises(Exception, match="INDEX_TOPIC_ARN"):
        handler.lambda_handler(_batch("annoy_stream_mark_ready"), lambda_context)
