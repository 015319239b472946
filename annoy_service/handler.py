"""Lambda entry point: a Tracks stream batch in, at most one index rebuild and publication out.

One rebuild per batch rather than per record, so Powertools' BatchProcessor (which
handles records one by one) does not fit; a failed rebuild reports the batch's
first record as failed, which makes Lambda retry the whole batch.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from annoy_service.changes import index_must_change
from annoy_service.publisher import Announcer, IndexStore
from annoy_service.service import Result, Settings, rebuild_and_publish
from catalog.storage import TrackTable

logger = Logger()
metrics = Metrics()


@lru_cache(maxsize=1)
def dependencies() -> tuple[Settings, TrackTable, IndexStore, Announcer]:
    """Built once per container, on first use."""
    settings = Settings.from_env()
    return settings, TrackTable(settings.table), IndexStore(settings.bucket), Announcer(settings.topic_arn)


@metrics.log_metrics
@logger.inject_lambda_context
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    records = list(event.records)
    settings, table, store, announcer = dependencies()
    metrics.add_metric(name="StreamRecords", unit=MetricUnit.Count, value=len(records))
    if not index_must_change(records, settings.model_id):
        logger.info("no ready embedding changed; index left as it is", extra={"records": len(records)})
        return {"batchItemFailures": []}
    try:
        outcome = rebuild_and_publish(
            table, store, announcer, settings.model_id, settings.keep_versions, progress=logger.info
        )
    except Exception:
        logger.exception("index rebuild failed; LATEST.json untouched, batch reported failed for a retry")
        metrics.add_metric(name="IndexBuildFailed", unit=MetricUnit.Count, value=1)
        first = records[0].dynamodb
        return {"batchItemFailures": [{"itemIdentifier": first.sequence_number if first else ""}]}
    logger.info(outcome.summary(), extra={"result": outcome.result.value, "version": outcome.version})
    if outcome.result is Result.PUBLISHED:
        metrics.add_metric(name="IndexPublished", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="IndexedTracks", unit=MetricUnit.Count, value=outcome.count)
        metrics.add_metric(name="IndexBuildSeconds", unit=MetricUnit.Seconds, value=outcome.build_s)
    return {"batchItemFailures": []}
