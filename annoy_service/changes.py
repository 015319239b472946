"""Which Tracks stream records change the index.

The index holds the ready embeddings of one model. A record matters when the
item's (ready, model, embedding) state differs between its old and new image:
a ready embedding inserted, changed or removed (deleted, or no longer ready).
Pending and failed items, other models' items and metadata-only edits (title,
playlists, ...) leave the index as it is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord, StreamViewType

from catalog.records import Status


class StreamConfigError(ValueError):
    """A stream record without both images: the table's stream must be NEW_AND_OLD_IMAGES."""


def _binary(value: Any) -> bytes:
    """A Binary attribute as bytes: Lambda's JSON carries it base64-encoded."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"embedding is not valid base64: {exc}") from None
    raise ValueError(f"embedding must be Binary, got {type(value).__name__}")


def indexed_embedding(image: Mapping[str, Any], model_id: str) -> bytes | None:
    """The embedding the index would hold for this item image, or None if it holds none."""
    if image.get("status") != Status.READY.value or image.get("model") != model_id:
        return None
    embedding = image.get("embedding")
    return None if embedding is None else _binary(embedding)


def record_changes_index(record: DynamoDBRecord, model_id: str) -> bool:
    stream = record.dynamodb
    if stream is None or stream.stream_view_type != StreamViewType.NEW_AND_OLD_IMAGES:
        raise StreamConfigError(
            f"stream record {record.event_id} has view type "
            f"{stream.stream_view_type if stream else None}; the Tracks stream must be NEW_AND_OLD_IMAGES"
        )
    return indexed_embedding(stream.old_image, model_id) != indexed_embedding(stream.new_image, model_id)


def index_must_change(records: Iterable[DynamoDBRecord], model_id: str) -> bool:
    return any(record_changes_index(record, model_id) for record in records)
