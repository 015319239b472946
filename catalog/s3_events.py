"""The S3 notifications that ExtractQueue's (and ExtractDLQ's) messages carry: read by the extractor and by
the dead-letter consumer, two deployments, so parsed once here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

S3_TEST_EVENT = "s3:TestEvent"
OBJECT_CREATED_PREFIX = "ObjectCreated:"


@dataclass(frozen=True)
class CreatedObject:
    bucket: str
    key: str
    size: int | None


def created_objects(body: str) -> list[CreatedObject]:
    """The objects an S3 notification (an SQS message body) announces; none for S3's test event."""
    message = json.loads(body)
    if message.get("Event") == S3_TEST_EVENT:
        return []
    objects = []
    for record in S3Event(message).records:
        if not record.event_name.startswith(OBJECT_CREATED_PREFIX):
            continue
        obj = record.s3.get_object
        objects.append(
            CreatedObject(
                bucket=record.s3.bucket.name,
                key=unquote_plus(obj.key),
                size=int(obj["size"]) if obj.get("size") is not None else None,
            )
        )
    return objects
