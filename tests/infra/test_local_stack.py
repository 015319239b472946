"""The local stack: template.yaml's resources in a moto server, driven by the event pump.

Everything here goes through real HTTP to a moto server child process on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import pytest

from catalog.records import encode_embedding
from infra.pump import SqsPoller, StreamPoller, mappings_from_template, pattern_matches
from infra.stack import LocalStack, running_stack

pytestmark = pytest.mark.stack


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with running_stack() as local:
        yield local


class Recorder:
    """A handler that records its events and reports chosen records failed."""

    def __init__(self, fail_when: Any = None, raise_when: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_when = fail_when or (lambda record: False)
        self.raise_when = raise_when or (lambda event: False)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        assert context.get_remaining_time_in_millis() > 0
        if self.raise_when(event):
            raise RuntimeError("handler crashed")
        failures = [
            {"itemIdentifier": r.get("messageId") or r["dynamodb"]["SequenceNumber"]}
            for r in event["Records"] if self.fail_when(r)
        ]
        return {"batchItemFailures": failures}

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for event in self.events for record in event["Records"]]


def s3_keys(records: list[dict[str, Any]]) -> list[str]:
    """Object keys of the S3 events in SQS records, decoded (S3 events carry them URL-encoded)."""
    keys = []
    for record in records:
        body = json.loads(record["body"])
        keys += [unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])]
    return keys


def pump_until(poller: SqsPoller | StreamPoller, done: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the pump did not deliver in time"
        if isinstance(poller, SqsPoller):
            poller.poll_once(wait_s=0)
        else:
            poller.poll_once()
            time.sleep(0.1)


def test_event_source_mappings_come_from_the_template(stack: LocalStack) -> None:
    mappings = {m.function: m for m in mappings_from_template(stack.template, stack.resources, stack.stack_name)}
    extractor = mappings["ExtractorFunction"]
    assert extractor.queue_arn == stack.resources.attributes["ExtractQueue"]["Arn"]
    assert extractor.report_failures and extractor.batch_size == 4
    # PUT /tracks/{trackId} leaves its requests in CrawlQueue; the pump delivers them to the crawler.
    crawler = mappings["CrawlerFunction"]
    assert crawler.queue_arn == stack.resources.attributes["CrawlQueue"]["Arn"] and crawler.report_failures
    annoy = mappings["AnnoyServiceFunction"]
    assert annoy.stream_arn == stack.resources.attributes["TracksTable"]["StreamArn"]
    assert annoy.bisect and annoy.report_failures and annoy.max_retries == 5
    assert annoy.on_failure_queue_url == stack.resources.refs["IndexFailureQueue"]
    assert len(annoy.filters) == 2


def test_resources_match_the_template(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=stack.resources.refs["ExtractQueue"], AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "720"
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] == 3
    table = stack.client("dynamodb").describe_table(TableName=stack.resources.refs["TracksTable"])["Table"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    lifecycle = stack.client("s3").get_bucket_lifecycle_configuration(Bucket=stack.resources.refs["AudioBucket"])
    expiry_days = stack.template["Parameters"]["PreviewExpiryDays"]["Default"]
    assert lifecycle["Rules"][0]["Expiration"]["Days"] == expiry_days >= 7
    env = stack.resources.function_env["ExtractorFunction"]
    assert env["AUDIO_BUCKET"] == stack.resources.refs["AudioBucket"]
    assert env["TRACKS_TABLE"] == stack.resources.refs["TracksTable"]


def test_object_put_under_previews_reaches_extractor_as_sqs_event_with_the_s3_event_as_body(stack: LocalStack) -> None:
    recorder = Recorder()
    (poller,) = stack.pollers(only={"ExtractorFunction"}, handlers={"ExtractorFunction": recorder})
    s3 = stack.client("s3")
    bucket = stack.resources.refs["AudioBucket"]
    s3.put_object(Bucket=bucket, Key="elsewhere/ignored.mp3", Body=b"x")
    s3.put_object(Bucket=bucket, Key="previews/local-abc def.mp3", Body=b"audio bytes")

    pump_until(poller, lambda: "previews/local-abc def.mp3" in s3_keys(recorder.records))

    record = next(r for r in recorder.records if s3_keys([r]) == ["previews/local-abc def.mp3"])
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == stack.resources.attributes["ExtractQueue"]["Arn"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    s3_record = json.loads(record["body"])["Records"][0]
    assert " " not in s3_record["s3"]["object"]["key"], "keys in S3 events are URL-encoded"
    assert s3_record["eventName"].startswith("ObjectCreated:")
    assert s3_record["s3"]["bucket"]["name"] == bucket
    assert "elsewhere/ignored.mp3" not in s3_keys(recorder.records)
    assert poller.depth() == 0, "succeeded messages are deleted"


def test_write_to_tracks_reaches_annoy_service_as_stream_event_with_base64_binary(stack: LocalStack) -> None:
    recorder = Recorder()
    (poller,) = stack.pollers(only={"AnnoyServiceFunction"}, handlers={"AnnoyServiceFunction": recorder})
    table = stack.client("dynamodb")
    name = stack.resources.refs["TracksTable"]
    embedding = encode_embedding([3.0, 4.0])
    table.put_item(TableName=name, Item={"track_id": {"S": "pending1"}, "status": {"S": "pending"}})
    table.put_item(TableName=name, Item={"track_id": {"S": "ready1"}, "status": {"S": "ready"},
                                         "embedding": {"B": embedding}})

    pump_until(poller, lambda: bool(recorder.records))

    (record,) = recorder.records
    assert record["eventSource"] == "aws:dynamodb" and record["eventName"] == "INSERT"
    assert record["eventSourceARN"] == stack.resources.attributes["TracksTable"]["StreamArn"]
    image = record["dynamodb"]["NewImage"]
    assert image["embedding"]["B"] == base64.b64encode(embedding).decode()
    json.dumps(recorder.events)  # the event is plain JSON, as Lambda delivers it
    assert poller.stats.filtered_out == 1, "the template's filter drops the pending item"


def test_poison_message_goes_to_dlq_after_3_receives_while_the_rest_of_its_batch_succeeds(stack: LocalStack) -> None:
    recorder = Recorder(fail_when=lambda record: "poison" in record["body"])
    (poller,) = stack.pollers(only={"ExtractorFunction"}, handlers={"ExtractorFunction": recorder},
                              retry_delay_s=0)
    s3 = stack.client("s3")
    bucket = stack.resources.refs["AudioBucket"]
    for key in ("previews/good1.mp3", "previews/poison.mp3", "previews/good2.mp3"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"audio")
    sqs = stack.client("sqs")
    dlq = stack.resources.refs["ExtractDLQ"]

    def dlq_messages() -> list[dict[str, Any]]:
        return sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])

    pump_until(poller, lambda: poller.depth() == 0)

    keys = s3_keys(recorder.records)
    assert keys.count("previews/poison.mp3") == 3, "received maxReceiveCount times"
    assert keys.count("previews/good1.mp3") == 1 and keys.count("previews/good2.mp3") == 1
    assert [s3_keys([{"body": m["Body"]}]) for m in dlq_messages()] == [["previews/poison.mp3"]]
    assert poller.stats.failed == 3


def test_stream_batch_that_keeps_failing_is_bisected_then_sent_to_the_failure_destination(stack: LocalStack) -> None:
    recorder = Recorder(raise_when=lambda event: any(
        r["dynamodb"]["Keys"]["track_id"]["S"] == "bad" for r in event["Records"]))
    (poller,) = stack.pollers(only={"AnnoyServiceFunction"}, handlers={"AnnoyServiceFunction": recorder})
    poller.retry_delay_s = 0
    table = stack.client("dynamodb")
    name = stack.resources.refs["TracksTable"]
    for track_id in ("good", "bad"):
        table.put_item(TableName=name, Item={"track_id": {"S": track_id}, "status": {"S": "ready"}})

    pump_until(poller, lambda: poller.stats.to_destination > 0)

    sqs = stack.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=stack.resources.refs["IndexFailureQueue"]).get("Messages", [])
    info = json.loads(message["Body"])
    assert info["DDBStreamBatchInfo"]["batchSize"] == 1
    assert info["requestContext"]["condition"] == "RetryAttemptsExhausted"
    delivered_alone = [e for e in recorder.events if len(e["Records"]) == 1]
    assert any(e["Records"][0]["dynamodb"]["Keys"]["track_id"]["S"] == "good" for e in delivered_alone), \
        "bisecting delivered the good record on its own"


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"a": {"b": ["x"]}}, {"a": {"b": "x"}}, True),
        ({"a": {"b": ["x"]}}, {"a": {"b": "y"}}, False),
        ({"a": {"b": ["x"]}}, {"a": {}}, False),
        ({"a": [{"exists": False}]}, {}, True),
        ({"a": [{"prefix": "pre"}]}, {"a": "prefix"}, True),
        ({"a": [{"anything-but": ["x"]}]}, {"a": "y"}, True),
    ],
)
def test_filter_patterns_follow_eventbridge_syntax(pattern: dict, event: dict, expected: bool) -> None:
    assert pattern_matches(pattern, event) is expected
