"""The local event pump: plays the part of Lambda's event source mappings.

It polls SQS queues and DynamoDB streams named by the functions' events in
template.yaml and calls the real handlers, in this process, with the event
shapes Lambda uses (SQS records; stream records with Binary values base64
encoded; Scheduled Events), honouring ``batchItemFailures``.

Time is scaled down where waiting would only slow a laptop: a failed SQS
message becomes visible again after ``retry_delay_s`` instead of the queue's
visibility timeout, and batching windows are capped at ``max_window_s``. Messages
are received with a visibility timeout of ``visibility_s`` (seconds, not the
queue's 12 minutes) that a heartbeat extends while the handler runs: a consumer
that is killed mid-batch leaves its messages hidden for seconds only, while a
slow batch is never delivered twice.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.context import LocalLambdaContext
from infra.resources import LOCAL_ACCOUNT_ID, LOCAL_REGION, LocalResources, Resolver
from infra.template import functions

Handler = Callable[[dict[str, Any], Any], Any]
log = logging.getLogger("infra.pump")

SQS_MAX_RECEIVE = 10  # SQS returns at most 10 messages per ReceiveMessage
# The local stand-in for a queue's VisibilityTimeout, in whole seconds as SQS takes it.
LOCAL_VISIBILITY_S = 5


def handler_path(function: dict[str, Any]) -> str:
    """'package.module.function' of a template function (zip Handler or image Command)."""
    props = function["Properties"]
    if props.get("PackageType") == "Image":
        return props["ImageConfig"]["Command"][0]
    return props["Handler"]


def load_handler(path: str) -> Handler:
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


# -- event shapes ------------------------------------------------------------------------

def sqs_event_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(value["BinaryValue"]).decode() if "BinaryValue" in value else None,
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])],
            "dataType": value.get("DataType", "String"),
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", LOCAL_ACCOUNT_ID),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 3 else LOCAL_REGION,
    }


def _json_attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB attribute value as Lambda's JSON has it: Binary base64 encoded."""
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(v).decode() for v in inner]}
    if kind == "M":
        return {"M": {k: _json_attribute_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_json_attribute_value(v) for v in inner]}
    return {kind: inner}


def stream_event_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    data = record["dynamodb"]
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        created = created.timestamp()
    converted: dict[str, Any] = {
        "ApproximateCreationDateTime": float(created or time.time()),
        "Keys": {k: _json_attribute_value(v) for k, v in data.get("Keys", {}).items()},
        "SequenceNumber": data["SequenceNumber"],
        "SizeBytes": data.get("SizeBytes", 0),
        "StreamViewType": data.get("StreamViewType", "NEW_AND_OLD_IMAGES"),
    }
    for image in ("NewImage", "OldImage"):
        if image in data:
            converted[image] = {k: _json_attribute_value(v) for k, v in data[image].items()}
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", LOCAL_REGION),
        "dynamodb": converted,
        "eventSourceARN": stream_arn,
    }


def scheduled_event(rule_name: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": LOCAL_REGION,
        "resources": [f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/{rule_name}"],
        "detail": detail or {},
    }


# -- event filtering (Lambda FilterCriteria: EventBridge pattern syntax) ------------------

def _rule_matches(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, dict):
        if "exists" in rule:
            return bool(rule["exists"]) == present
        if not present:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            excluded = rule["anything-but"]
            return value not in (excluded if isinstance(excluded, list) else [excluded])
        raise ValueError(f"unsupported filter rule {rule!r}")
    return present and value == rule


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    for key, expected in pattern.items():
        present = isinstance(event, dict) and key in event
        value = event.get(key) if present else None
        if isinstance(expected, dict):
            if not present or not pattern_matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not any(_rule_matches(rule, value, present) for rule in expected):
                return False
        else:
            raise ValueError(f"filter pattern values must be objects or arrays, got {expected!r}")
    return True


# -- mappings --------------------------------------------------------------------------

@dataclass
class Stats:
    invocations: int = 0
    succeeded: int = 0
    failed: int = 0
    errors: int = 0
    to_destination: int = 0
    filtered_out: int = 0

    def add(self, other: Stats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class SqsMapping:
    function: str
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    window_s: float = 0.0
    report_failures: bool = False


@dataclass
class StreamMapping:
    function: str
    stream_arn: str
    batch_size: int = 100
    window_s: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    report_failures: bool = False
    bisect: bool = False
    max_retries: int = -1
    on_failure_queue_url: str | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)


def mappings_from_template(template: dict[str, Any], resources: LocalResources,
                           stack_name: str) -> list[SqsMapping | StreamMapping]:
    """The event source mappings that Lambda would create for the template's functions."""
    resolver = Resolver(template, resources, stack_name, LOCAL_REGION)
    arn_to_url = {attrs["Arn"]: attrs["QueueUrl"] for attrs in resources.attributes.values() if "QueueUrl" in attrs}
    mappings: list[SqsMapping | StreamMapping] = []
    for name, function in functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] not in {"SQS", "DynamoDB"}:
                continue
            props = resolver.resolve(event.get("Properties", {}))
            report = "ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])
            if event["Type"] == "SQS":
                mappings.append(SqsMapping(
                    function=name, queue_url=arn_to_url[props["Queue"]], queue_arn=props["Queue"],
                    batch_size=int(props.get("BatchSize", 10)),
                    window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_failures=report,
                ))
            elif event["Type"] == "DynamoDB":
                destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
                mappings.append(StreamMapping(
                    function=name, stream_arn=props["Stream"],
                    batch_size=int(props.get("BatchSize", 100)),
                    window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    starting_position=props.get("StartingPosition", "TRIM_HORIZON"),
                    report_failures=report,
                    bisect=bool(props.get("BisectBatchOnFunctionError", False)),
                    max_retries=int(props.get("MaximumRetryAttempts", -1)),
                    on_failure_queue_url=arn_to_url.get(destination) if destination else None,
                    filters=[json.loads(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])],
                ))
    return mappings


def queue_depths(sqs: Any, queue_url: str) -> tuple[int, int]:
    """(waiting, in flight) messages of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _failed_ids(response: Any) -> set[str] | None:
    """Item identifiers a handler reported failed; None when it reported none."""
    if isinstance(response, dict) and response.get("batchItemFailures"):
        return {str(item["itemIdentifier"]) for item in response["batchItemFailures"]}
    return None


class Invoker:
    """Calls a function's handler the way Lambda would: one invocation at a time per function."""

    def __init__(self, handlers: dict[str, Handler], timeouts: dict[str, float]) -> None:
        self.handlers = handlers
        self.timeouts = timeouts
        self._locks = {name: threading.Lock() for name in handlers}

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        with self._locks[function]:
            context = LocalLambdaContext(function_name=function, timeout_s=self.timeouts.get(function, 60.0))
            return self.handlers[function](event, context)


class VisibilityHeartbeat:
    """Keeps received messages hidden while their batch runs, renewing their visibility three times a period."""

    def __init__(self, sqs: Any, queue_url: str, messages: list[dict[str, Any]], visibility_s: int) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": visibility_s}
                        for i, m in enumerate(messages)]
        self.period_s = visibility_s / 3  # two missed beats still keep the messages hidden
        self.beats = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pump-visibility-heartbeat")

    def _run(self) -> None:
        while not self._done.wait(self.period_s):
            for start in range(0, len(self.entries), SQS_MAX_RECEIVE):
                self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url,
                                                         Entries=self.entries[start:start + SQS_MAX_RECEIVE])
            self.beats += 1

    def __enter__(self) -> VisibilityHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


class SqsPoller:
    def __init__(self, mapping: SqsMapping, sqs: Any, invoke: Invoker,
                 retry_delay_s: float = 1.0, max_window_s: float = 1.0,
                 visibility_s: int = LOCAL_VISIBILITY_S) -> None:
        self.mapping = mapping
        self.sqs = sqs
        self.invoke = invoke
        self.retry_delay_s = retry_delay_s
        self.window_s = min(mapping.window_s, max_window_s)
        self.visibility_s = visibility_s
        self.stats = Stats()
        self.heartbeat: VisibilityHeartbeat | None = None

    def _receive(self, wait_s: float) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.window_s
        while len(messages) < self.mapping.batch_size:
            wait = int(wait_s) if not messages else 0
            response = self.sqs.receive_message(
                QueueUrl=self.mapping.queue_url,
                MaxNumberOfMessages=min(SQS_MAX_RECEIVE, self.mapping.batch_size - len(messages)),
                WaitTimeSeconds=wait, AttributeNames=["All"], MessageAttributeNames=["All"],
                VisibilityTimeout=self.visibility_s,
            )
            got = response.get("Messages", [])
            messages.extend(got)
            if not got and (not messages or time.monotonic() >= deadline):
                break
        return messages

    def poll_once(self, wait_s: float = 1.0) -> Stats:
        """Receive one batch, invoke, delete what succeeded. Returns this batch's stats."""
        messages = self._receive(wait_s)
        batch = Stats()
        if not messages:
            return batch
        event = {"Records": [sqs_event_record(m, self.mapping.queue_arn) for m in messages]}
        batch.invocations = 1
        try:
            with VisibilityHeartbeat(self.sqs, self.mapping.queue_url, messages, self.visibility_s) as heartbeat:
                self.heartbeat = heartbeat
                response = self.invoke(self.mapping.function, event)
            failed = _failed_ids(response)
            if failed is not None and not self.mapping.report_failures:
                # Without ReportBatchItemFailures Lambda ignores the list: the batch succeeded.
                failed = None
        except Exception:
            log.exception("%s failed on a batch of %d messages", self.mapping.function, len(messages))
            batch.errors = 1
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            if failed and message["MessageId"] in failed:
                batch.failed += 1
                # Stands in for the visibility timeout running out.
                self.sqs.change_message_visibility(QueueUrl=self.mapping.queue_url,
                                                   ReceiptHandle=message["ReceiptHandle"],
                                                   VisibilityTimeout=int(self.retry_delay_s))
            else:
                batch.succeeded += 1
                self.sqs.delete_message(QueueUrl=self.mapping.queue_url, ReceiptHandle=message["ReceiptHandle"])
        self.stats.add(batch)
        return batch

    def depth(self) -> int:
        return sum(queue_depths(self.sqs, self.mapping.queue_url))


class StreamReader:
    """A table's DynamoDB stream read on demand, each call's records as one Lambda event (tests and benches)."""

    def __init__(self, table_name: str, dynamodb: Any, streams: Any) -> None:
        self.arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        self.streams = streams
        self.iterators: dict[str, str | None] = {}

    def batch(self) -> dict[str, Any]:
        """Every record written since the last call, as one stream event."""
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
        records: list[dict[str, Any]] = []
        for shard_id, iterator in self.iterators.items():
            while iterator:
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = response.get("NextShardIterator")
                records.extend(stream_event_record(r, self.arn) for r in response.get("Records", []))
                if not response.get("Records"):
                    break
            self.iterators[shard_id] = iterator
        return {"Records": records}


class StreamPoller:
    def __init__(self, mapping: StreamMapping, streams: Any, sqs: Any, invoke: Invoker,
                 retry_delay_s: float = 0.5, max_window_s: float = 2.0) -> None:
        self.mapping = mapping
        self.streams = streams
        self.sqs = sqs
        self.invoke = invoke
        self.retry_delay_s = retry_delay_s
        self.window_s = min(mapping.window_s, max_window_s)
        self.stats = Stats()
        self._iterators: dict[str, str | None] = {}
        self._buffer: list[dict[str, Any]] = []
        self._first_buffered_at = 0.0

    def _refresh_shards(self) -> None:
        description = self.streams.describe_stream(StreamArn=self.mapping.stream_arn)["StreamDescription"]
        for shard in description["Shards"]:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=self.mapping.stream_arn, ShardId=shard["ShardId"],
                    ShardIteratorType=self.mapping.starting_position,
                )["ShardIterator"]

    def _fetch(self) -> None:
        self._refresh_shards()
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = response.get("NextShardIterator")
            for record in response.get("Records", []):
                converted = stream_event_record(record, self.mapping.stream_arn)
                if self.mapping.filters and not any(pattern_matches(f, converted) for f in self.mapping.filters):
                    self.stats.filtered_out += 1
                    continue
                if not self._buffer:
                    self._first_buffered_at = time.monotonic()
                self._buffer.append(converted)

    def poll_once(self) -> Stats:
        """Fetch new records; deliver a batch when it is full or its window has passed."""
        self._fetch()
        batch = Stats()
        while self._buffer and (
            len(self._buffer) >= self.mapping.batch_size
            or time.monotonic() - self._first_buffered_at >= self.window_s
        ):
            records = self._buffer[: self.mapping.batch_size]
            del self._buffer[: self.mapping.batch_size]
            self._first_buffered_at = time.monotonic()
            self._deliver(records, batch)
        self.stats.add(batch)
        return batch

    def _invoke(self, records: list[dict[str, Any]], batch: Stats) -> tuple[int | None, bool]:
        """(index of the first record to retry or None, whether the function errored)."""
        batch.invocations += 1
        try:
            failed = _failed_ids(self.invoke(self.mapping.function, {"Records": records}))
        except Exception:
            log.exception("%s failed on %d stream records", self.mapping.function, len(records))
            batch.errors += 1
            return 0, True
        if failed is None or not self.mapping.report_failures:
            return None, False
        for index, record in enumerate(records):
            if record["dynamodb"]["SequenceNumber"] in failed:
                return index, False
        return 0, False  # an identifier that names no record fails the whole batch, as in Lambda

    def _deliver(self, records: list[dict[str, Any]], batch: Stats, attempts: int = 0) -> None:
        while records:
            first_failed, errored = self._invoke(records, batch)
            if first_failed is None:
                batch.succeeded += len(records)
                return
            batch.succeeded += first_failed
            records = records[first_failed:]
            attempts += 1
            if 0 <= self.mapping.max_retries < attempts:
                self._to_destination(records, attempts)
                batch.failed += len(records)
                batch.to_destination += len(records)
                return
            if errored and self.mapping.bisect and len(records) > 1:
                middle = len(records) // 2
                self._deliver(records[:middle], batch, attempts)
                self._deliver(records[middle:], batch, attempts)
                return
            time.sleep(self.retry_delay_s)

    def _to_destination(self, records: list[dict[str, Any]], attempts: int) -> None:
        if not self.mapping.on_failure_queue_url:
            return
        sequence = [r["dynamodb"]["SequenceNumber"] for r in records]
        self.sqs.send_message(QueueUrl=self.mapping.on_failure_queue_url, MessageBody=json.dumps({
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts,
                               "functionArn": f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:"
                                              f"{self.mapping.function}"},
            "DDBStreamBatchInfo": {"streamArn": self.mapping.stream_arn, "batchSize": len(records),
                                   "startSequenceNumber": sequence[0], "endSequenceNumber": sequence[-1]},
            "timestamp": datetime.now(UTC).isoformat(),
        }))


class EventPump:
    """Runs pollers in background threads until stopped."""

    def __init__(self, pollers: list[SqsPoller | StreamPoller], idle_sleep_s: float = 0.2) -> None:
        self.pollers = pollers
        self.idle_sleep_s = idle_sleep_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self, poller: SqsPoller | StreamPoller) -> None:
        while not self._stop.is_set():
            try:
                stats = poller.poll_once(wait_s=1) if isinstance(poller, SqsPoller) else poller.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("poller for %s failed; retrying", poller.mapping.function)
                stats = Stats()
            if not stats.invocations:
                self._stop.wait(self.idle_sleep_s)

    def start(self) -> None:
        for poller in self.pollers:
            thread = threading.Thread(target=self._run, args=(poller,), daemon=True,
                                      name=f"pump-{poller.mapping.function}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
