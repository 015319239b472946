"""Real SQS / S3 event shapes (recorded under tests/events/) filled in for a test."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS = Path(__file__).resolve().parents[1] / "events"
BUCKET = "soundslike-audio-123456789012-us-east-1"
TABLE = "soundslike-Tracks-test"
REGION = "us-east-1"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def s3_message(bucket: str, key: str, size: int) -> dict[str, Any]:
    """One SQS record carrying an S3 ObjectCreated:Put notification, shaped like the recorded one."""
    record = copy.deepcopy(load_event("extractor_sqs_s3_object_created.json")["Records"][0])
    body = json.loads(record["body"])
    s3 = body["Records"][0]["s3"]
    s3["bucket"]["name"] = bucket
    s3["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    # S3 URL-encodes keys in notifications.
    s3["object"]["key"] = quote_plus(key, safe="/")
    s3["object"]["size"] = size
    record["body"] = json.dumps(body)
    record["messageId"] = str(uuid.uuid4())
    return record


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}
