"""ExtractDeadLetterFunction: a message that used up ExtractQueue's receives marks its track failed.

SQS moves a message to ExtractDLQ after the redrive policy's maxReceiveCount receives
that did not succeed: the extractor raised (a storage error, a bug), timed out or was
killed on every attempt. Without this consumer the track would stay pending with no
reason, and a re-crawl would not retry it for PENDING_STALE_AFTER_S. The track is
marked failed with the last error an attempt noted on it (or says none was noted),
and its audio is deleted, as for audio that cannot embed: a failed track is crawled
again. It imports catalog/ only: a small zip function, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog.keys import parse_preview_key
from catalog.records import Status
from catalog.s3_events import created_objects
from catalog.settings import require_env
from catalog.storage import AudioStore, TrackTable, record_from_object_metadata

NO_ERROR_NOTED = "no attempt noted an error (the extractor timed out or was stopped each time)"

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def give_up_reason(last_error: str | None) -> str:
    return f"extraction gave up after its retries; last error: {last_error or NO_ERROR_NOTED}"


@dataclass
class DeadLetters:
    store: AudioStore
    table: TrackTable

    def give_up(self, key: str) -> str | None:
        """Mark the track of ``key`` failed and delete its audio; the track id, or None when nothing was pending."""
        try:
            track_id, _ = parse_preview_key(key)
        except ValueError:
            logger.warning("dead letter for an object that is not a preview", extra={"key": key})
            return None
        record = self.table.get(track_id, consistent=True)
        if record is not None and record.status is not Status.PENDING:
            # Settled since (a late success, or a permanent failure already recorded).
            return None
        if record is None:
            head = self.store.head(key)
            record = record_from_object_metadata(track_id, head.metadata if head else {})
        self.table.mark_failed(track_id, give_up_reason(record.error), record)
        self.store.delete(key)
        logger.warning("track failed: extraction gave up", extra={"track_id": track_id, "last_error": record.error})
        return track_id


@lru_cache(maxsize=1)
def dead_letters() -> DeadLetters:
    return DeadLetters(store=AudioStore(require_env("AUDIO_BUCKET")), table=TrackTable(require_env("TRACKS_TABLE")))


def record_handler(record: SQSRecord) -> None:
    work = dead_letters()
    for obj in created_objects(record.body):
        if obj.bucket == work.store.bucket:
            work.give_up(obj.key)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
