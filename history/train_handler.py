"""HistoryTrainFunction: TrainQueue's consumer, run from the extractor's image (scikit-learn and scipy are there).

Each message names one listener (catalog.train_requests); their models are trained from
everything in Listens and stored under ``users/{userId}/`` in the index bucket, where the
API reads them. A request sent because a new base changed the searched space names that
space: a warm container still holding the previous index reads LATEST again first. No
index yet, or an AWS error, fails the message: SQS retries it and then moves it to TrainDLQ.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from api.index_cache import IndexCache
from catalog.listens import ListenTable
from catalog.settings import require_env
from catalog.train_requests import BadTrainRequestError, TrainRequest
from catalog.user_models import UserModelStore
from history.service import require_index, train_and_store

logger = Logger(service="history-train")
metrics = Metrics(service="history-train")
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def _index_cache(bucket: str) -> IndexCache:
    # One per container: a warm container reuses the downloaded bundle while it is current.
    return IndexCache(bucket)


def train_request_handler(record: SQSRecord) -> None:
    try:
        request = TrainRequest.from_body(record.body)
    except BadTrainRequestError:
        logger.warning("dropping a TrainQueue message that is not a training request", extra={"id": record.message_id})
        metrics.add_metric("TrainRequestsDropped", MetricUnit.Count, 1)
        return
    bucket = require_env("INDEX_BUCKET")
    cache = _index_cache(bucket)
    index = require_index(cache.current())
    if request.space and index.space != request.space:
        # Asked for because a new base changed the searched space: this container may still hold the old one.
        index = require_index(cache.refresh(force=True))
    profile = train_and_store(
        request.user_id, ListenTable(require_env("LISTENS_TABLE")), UserModelStore(bucket), index, datetime.now(UTC), request.last_import
    )
    metrics.add_metric("ListenersTrained", MetricUnit.Count, 1)
    logger.info("listener trained", extra={"user_id": request.user_id, "reason": request.reason, "space": index.space,
                                           "plays": profile["plays"], "models": profile["models"]})


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=train_request_handler, processor=processor, context=context)
