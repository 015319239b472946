"""ExtractorFunction: SQS batches of S3 ObjectCreated events → Tracks items with embeddings.

One model pass per SQS batch: every message's previews are downloaded and decoded
first, then all clips go through the model together (extractor.analysis.embed_stream,
the path bench/extract.py measures), each described and written as soon as the model
is through with it, while the model runs the next. Partial batch failures: a message whose processing
raises (throttling, 5xx, a bug) is reported in ``batchItemFailures`` and retried
alone; audio that can never embed (it does not decode, or the batch's model call gives
it no finite, non-zero embedding) marks its track failed with the reason, its audio is
deleted, its message succeeds and the rest of the batch goes on.
Powertools' BatchProcessor hands records over one at a time, so it cannot make one model
call for the batch; the loop below keeps its contract (failures by message id).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog.s3_events import created_objects
from catalog.settings import require_env
from catalog.storage import AudioStore, TrackTable
from extractor.embed import Embedder
from extractor.pipeline import Clip, Extraction, Outcome

logger = Logger()
metrics = Metrics()

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


@dataclass
class Batch:
    """One SQS batch on its way through the pipeline, with the message each clip came from."""

    message_ids: list[str]
    failed: set[str] = field(default_factory=set)
    clips: list[tuple[str, Clip]] = field(default_factory=list)

    def fail(self, message_id: str, what: str) -> None:
        logger.exception(f"{what} failed; the message is reported for a retry", extra={"message_id": message_id})
        self.failed.add(message_id)

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.message_ids if m in self.failed]}


def _count(outcome: Outcome) -> None:
    metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)


def prepare(work: Extraction, batch: Batch, record: SQSRecord) -> None:
    for obj in created_objects(record.body):
        if obj.bucket != work.store.bucket:
            logger.warning("ignoring an object of another bucket", extra={"bucket": obj.bucket, "key": obj.key})
            continue
        prepared = work.prepare(obj.key, obj.size)
        if isinstance(prepared, Outcome):
            _count(prepared)
        else:
            batch.clips.append((record.message_id, prepared))


def extract_batch(work: Extraction, records: list[SQSRecord]) -> Batch:
    """Every record's previews prepared, embedded in one model pass, described and written; failures by message id.

    Each clip is described and written in a second thread as soon as the model is through
    with it, while the model runs the next: TensorFlow releases the GIL, and the writes
    wait on the network. A message fails alone when its own download, decode, description
    or write fails; a failed model pass fails the messages whose clips it had not finished,
    and nothing else.
    """
    batch = Batch([record.message_id for record in records])
    for record in records:
        try:
            prepare(work, batch, record)
        except Exception:
            batch.fail(record.message_id, "preparing a preview")
    clips = [(message_id, clip) for message_id, clip in batch.clips if message_id not in batch.failed]
    finishing: list[tuple[str, Future[Outcome]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="extractor-finish") as finisher:
        try:
            for (message_id, clip), embedded in zip(clips, work.embed([clip for _, clip in clips]), strict=True):
                finishing.append((message_id, finisher.submit(work.finish, clip, embedded)))
        except Exception:
            for message_id, _ in clips[len(finishing):]:
                batch.fail(message_id, "embedding the batch")
        # Outcomes are counted here, in the invocation's thread, where the metrics are flushed.
        for message_id, outcome in finishing:
            try:
                _count(outcome.result())
            except Exception:
                batch.fail(message_id, "describing or storing a clip")
    if clips:
        metrics.add_metric(name="ClipsEmbeddedPerCall", unit=MetricUnit.Count, value=len(clips))
    return batch


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = [SQSRecord(raw) for raw in event.get("Records", [])]
    metrics.add_metric(name="MessagesReceived", unit=MetricUnit.Count, value=len(records))
    return extract_batch(extraction(), records).response()
