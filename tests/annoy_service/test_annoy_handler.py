"""The Lambda handler: recorded and real stream batches become deltas, schedules compact and reconcile."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from annoy_helpers import Stack, load_event

from annoy_service import handler
from catalog.bundle_store import BundleStore


def _batch(*names: str) -> dict[str, Any]:
    records = [record for name in names for record in load_event(name)["Records"]]
    return {"Records": copy.deepcopy(records)}


def test_first_ready_batch_on_a_fresh_bucket_publishes_a_base_and_announces_it(stack: Stack, lambda_context: Any) -> None:
    response = handler.lambda_handler(_batch("annoy_stream_mark_ready"), lambda_context)
    assert response == {"batchItemFailures": []}
    latest = stack.store.read_latest().pointer
    assert latest is not None and latest.count == 1 and latest.delta_sequence == 0
    assert stack.store.base_versions() == [latest.base_version]
    (envelope,) = stack.announcements()
    assert json.loads(envelope["Message"])["version"] == latest.version


def test_real_stream_batches_publish_deltas_and_a_redelivery_publishes_nothing(stack: Stack, lambda_context: Any) -> None:
    for i in range(20):
        stack.mark_ready(f"t{i:02d}")
    assert handler.lambda_handler(stack.stream.batch(), lambda_context) == {"batchItemFailures": []}
    first = stack.store.read_latest()
    stack.mark_ready("t05")  # re-extracted: a new embedding
    event = stack.stream.batch()
    handler.lambda_handler(copy.deepcopy(event), lambda_context)
    second = stack.store.read_latest()
    assert second.pointer.version == f"{first.pointer.base_version}+1" and second.pointer.count == 20
    stack.announcements()
    assert handler.lambda_handler(copy.deepcopy(event), lambda_context) == {"batchItemFailures": []}
    assert stack.store.read_latest().etag == second.etag and stack.announcements() == []


def test_batch_without_index_changes_builds_nothing(stack: Stack, lambda_context: Any) -> None:
    response = handler.lambda_handler(
        _batch("annoy_stream_insert_pending", "annoy_stream_ready_playlist_added", "annoy_stream_mark_failed"),
        lambda_context,
    )
    assert response == {"batchItemFailures": []}
    assert stack.store.read_latest().pointer is None and stack.keys() == []


def test_publication_failure_reports_the_batch_failed_from_its_first_record_and_keeps_latest(
    stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        stack.mark_ready(f"t{i:02d}")
    handler.lambda_handler(stack.stream.batch(), lambda_context)
    before = stack.store.read_latest()
    stack.announcements()
    stack.mark_ready("t21")

    def broken_upload(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("injected: the delta could not be written")

    monkeypatch.setattr(BundleStore, "upload_delta", broken_upload)
    event = stack.stream.batch()
    response = handler.lambda_handler(event, lambda_context)
    first_sequence = event["Records"][0]["dynamodb"]["SequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": first_sequence}]}
    assert stack.store.read_latest().etag == before.etag
    assert stack.announcements() == []


def test_scheduled_compaction_and_reconcile(stack: Stack, lambda_context: Any) -> None:
    for i in range(20):
        stack.mark_ready(f"t{i:02d}")
    handler.lambda_handler(stack.stream.batch(), lambda_context)
    stack.mark_ready("t20")
    handler.lambda_handler(stack.stream.batch(), lambda_context)
    assert stack.store.read_latest().pointer.delta_sequence == 1
    compacted = handler.lambda_handler({"action": "compact"}, lambda_context)
    latest = stack.store.read_latest().pointer
    assert compacted["result"] == "compacted" and latest.delta_sequence == 0 and latest.count == 21
    # A track written behind the stream's back (drift) is found and fixed by the weekly reconcile.
    stack.put_ready("behind-the-stream")
    stack.stream.batch()
    reconciled = handler.lambda_handler({"action": "reconcile"}, lambda_context)
    assert reconciled["result"] == "rebuilt" and reconciled["drift"] == {"missing": 1, "stale": 0, "changed": 0}
    assert stack.store.read_latest().pointer.count == 22
    with pytest.raises(handler.UnknownActionError):
        handler.lambda_handler({"action": "dance"}, lambda_context)


def test_missing_setting_is_named_in_the_error(stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INDEX_TOPIC_ARN")
    handler.dependencies.cache_clear()
    with pytest.raises(Exception, match="INDEX_TOPIC_ARN"):
        handler.lambda_handler(_batch("annoy_stream_mark_ready"), lambda_context)
