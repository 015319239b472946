"""ExtractorFunction: SQS batches of S3 ObjectCreated events → Tracks items with embeddings.

Partial batch failures: a message whose processing raises (throttling, 5xx, a
bug) is reported in ``batchItemFailures`` and retried alone; audio that can
never embed is marked failed and its message succeeds.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog.s3_events import created_objects
from catalog.settings import require_env
from catalog.storage import AudioStore, TrackTable
from extractor.embed import Embedder
from extractor.pipeline import Extraction, Outcome

logger = Logger()
metrics = Metrics()
# When every message fails, report them all rather than raise: same retry, clearer log.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

OUTCOME_METRICS = {
    Outcome.READY: "TracksReady",
    Outcome.FAILED: "TracksFailed",
    Outcome.GONE: "DuplicateDeliveries",
    Outcome.SKIPPED: "ObjectsSkipped",
}


@lru_cache(maxsize=1)
def embedder() -> Embedder:
    """The model, built once per container on first use; its build time is the extractor's cold start."""
    start = time.perf_counter()
    model = Embedder()
    elapsed_ms = (time.perf_counter() - start) * 1000
    logger.info("model built", extra={"model_build_ms": round(elapsed_ms, 1)})
    metrics.add_metric(name="ModelColdStartMs", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    return model


@lru_cache(maxsize=1)
def extraction() -> Extraction:
    return Extraction(
        store=AudioStore(require_env("AUDIO_BUCKET")),
        table=TrackTable(require_env("TRACKS_TABLE")),
        embedder=embedder,
    )


def record_handler(record: SQSRecord) -> None:
    work = extraction()
    for obj in created_objects(record.body):
        if obj.bucket != work.store.bucket:
            logger.warning("ignoring an object of another bucket", extra={"bucket": obj.bucket, "key": obj.key})
            continue
        outcome = work.process(obj.key, obj.size)
        metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="MessagesReceived", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
