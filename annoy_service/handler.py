"""Lambda entry point: Tracks stream batches become deltas; schedules compact and reconcile.

One delta per batch rather than per record, so Powertools' BatchProcessor (which
handles records one by one) does not fit; a failed publication reports the
batch's first record as failed, which makes Lambda retry the whole batch.
Scheduled events carry {"action": "compact"} (daily) or {"action": "reconcile"}
(weekly: a full rebuild from the table that reports drift), as template.yaml sets.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from annoy_service.changes import stream_changes
from annoy_service.service import Indexer, Outcome, Result, Settings, build_indexer

logger = Logger()
metrics = Metrics()

COMPACT_ACTION = "compact"
RECONCILE_ACTION = "reconcile"
_PUBLISHED = (Result.DELTA, Result.COMPACTED, Result.REBUILT)


class UnknownActionError(ValueError):
    """A scheduled event whose action this function does not perform."""


@lru_cache(maxsize=1)
def dependencies() -> Indexer:
    """Built once per container, on first use."""
    return build_indexer(Settings.from_env(), progress=logger.info)


def _record_outcome(outcome: Outcome) -> None:
    logger.info(outcome.summary(), extra={"result": outcome.result.value, "version": outcome.version})
    if outcome.healed:
        metrics.add_metric(name="IndexHealed", unit=MetricUnit.Count, value=1)
    if outcome.result in _PUBLISHED:
        metrics.add_metric(name="IndexPublished", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="IndexedTracks", unit=MetricUnit.Count, value=outcome.count)
        metrics.add_metric(name="IndexDeltaSize", unit=MetricUnit.Count, value=outcome.delta_size)
        metrics.add_metric(name="IndexPublishSeconds", unit=MetricUnit.Seconds, value=outcome.seconds)
    if outcome.drift is not None:
        metrics.add_metric(name="IndexDrift", unit=MetricUnit.Count, value=outcome.drift.total)


def _stream_batch(event: DynamoDBStreamEvent, indexer: Indexer) -> dict[str, Any]:
    records = list(event.records)
    metrics.add_metric(name="StreamRecords", unit=MetricUnit.Count, value=len(records))
    changes = stream_changes(records, indexer.settings.model_id)
    if not changes:
        logger.info("no indexed track changed; index left as it is", extra={"records": len(records)})
        return {"batchItemFailures": []}
    try:
        outcome = indexer.apply_changes(changes)
    except Exception:
        logger.exception("index publication failed; LATEST.json untouched, batch reported failed for a retry")
        metrics.add_metric(name="IndexBuildFailed", unit=MetricUnit.Count, value=1)
        first = records[0].dynamodb
        return {"batchItemFailures": [{"itemIdentifier": first.sequence_number if first else ""}]}
    _record_outcome(outcome)
    return {"batchItemFailures": []}


def _scheduled(action: object, indexer: Indexer) -> dict[str, Any]:
    if action == COMPACT_ACTION:
        outcome = indexer.compact()
    elif action == RECONCILE_ACTION:
        outcome = indexer.rebuild_full()
    else:
        raise UnknownActionError(f"unknown scheduled action {action!r}; expected {COMPACT_ACTION!r} or {RECONCILE_ACTION!r}")
    _record_outcome(outcome)
    drift = outcome.drift
    return {
        "result": outcome.result.value,
        "version": outcome.version,
        "count": outcome.count,
        "drift": None if drift is None else {"missing": drift.missing, "stale": drift.stale, "changed": drift.changed},
    }


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    indexer = dependencies()
    if "Records" in event:
        return _stream_batch(DynamoDBStreamEvent(event), indexer)
    return _scheduled(event.get("action"), indexer)
