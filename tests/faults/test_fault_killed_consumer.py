"""Row "the extractor killed mid-batch, then make extract": the local pump receives with a
visibility timeout of seconds (kept up by a heartbeat while the handler runs), so a killed
consumer's messages come back in seconds, not after the queue's 720 s."""

from __future__ import annotations

import time
from typing import Any

from infra.pump import SqsPoller
from infra.stack import LocalStack
from infra.template import load_template

VISIBILITY_S = 3


class Killed(BaseException):
    """The consumer process dying mid-batch: nothing after the receive runs (no delete, no visibility change)."""


def send(stack: LocalStack, n: int) -> list[str]:
    sqs = stack.client("sqs")
    url = stack.resources.refs["ExtractQueue"]
    # S3's test event from the stack's start: out of the way, so that every message counted is this test's.
    while leftovers := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(leftovers)])
    return [sqs.send_message(QueueUrl=url, MessageBody=f'{{"Event": "s3:TestEvent", "n": {i}}}')["MessageId"]
            for i in range(n)]


def extract_poller(stack: LocalStack, handler: Any) -> SqsPoller:
    (poller,) = stack.pollers(only={"ExtractorFunction"}, handlers={"ExtractorFunction": handler},
                              visibility_s=VISIBILITY_S)
    assert isinstance(poller, SqsPoller)
    return poller


def test_a_killed_consumers_messages_come_back_in_seconds(stack: LocalStack) -> None:
    queue_visibility_s = int(load_template()["Resources"]["ExtractQueue"]["Properties"]["VisibilityTimeout"])
    sent = set(send(stack, 3))

    def die(event: dict[str, Any], context: Any) -> None:
        raise Killed

    try:
        extract_poller(stack, die).poll_once(wait_s=1)
    except Killed:
        killed_at = time.monotonic()
    redelivered: list[dict[str, Any]] = []

    def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
        redelivered.extend(event["Records"])
        return {"batchItemFailures": []}

    survivor = extract_poller(stack, record)
    while {r["messageId"] for r in redelivered} != sent:
        assert time.monotonic() - killed_at < queue_visibility_s / 10, "the messages stayed hidden"
        survivor.poll_once(wait_s=1)
    assert [r["attributes"]["ApproximateReceiveCount"] for r in redelivered] == ["2"] * len(sent)
    assert survivor.depth() == 0


def test_messages_stay_hidden_while_a_slow_batch_runs_past_the_visibility_timeout(stack: LocalStack) -> None:
    sent = set(send(stack, 2))
    sqs = stack.client("sqs")
    url = stack.resources.refs["ExtractQueue"]
    seen_by_others: list[dict[str, Any]] = []
    poller: SqsPoller

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.monotonic()
        # Run until the heartbeat has renewed the messages four times: longer than VISIBILITY_S.
        while poller.heartbeat is None or poller.heartbeat.beats < 4:
            seen_by_others.extend(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []))
        assert time.monotonic() - started > VISIBILITY_S
        return {"batchItemFailures": []}

    poller = extract_poller(stack, slow)
    batch = poller.poll_once(wait_s=1)
    assert batch.succeeded == len(sent)
    assert seen_by_others == []
    assert poller.depth() == 0
