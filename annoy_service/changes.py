"""What a Tracks stream batch changes in the index, read from the stream records alone.

The index holds the ready embeddings of one model with each track's TrackMeta. A
record matters when the item's indexed state (ready, model, embedding, metadata)
differs between its old and new image: an upsert carries the new embedding and
metadata straight from the NEW_IMAGE, and a track deleted, turned failed or
moved to another model is removed. No table read is needed or made.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord, StreamViewType

from catalog.bundle import TrackMeta
from catalog.records import Status, TrackRecord, decode_embedding


class StreamConfigError(ValueError):
    """A stream record without both images: the table's stream must be NEW_AND_OLD_IMAGES."""


@dataclass(frozen=True)
class Upsert:
    meta: TrackMeta
    vector: npt.NDArray[np.float32]  # the raw embedding as the model gave it
    was_indexed: bool  # the old image was indexed too (a re-embedding or a metadata edit)

    @property
    def track_id(self) -> str:
        return self.meta.track_id


@dataclass(frozen=True)
class Remove:
    track_id: str


Change = Upsert | Remove


def _binary(value: Any) -> bytes:
    """A Binary attribute as bytes: Lambda's JSON carries it base64-encoded."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if hasattr(value, "value") and isinstance(value.value, (bytes, bytearray)):
        return bytes(value.value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"embedding is not valid base64: {exc}") from None
    raise ValueError(f"embedding must be Binary, got {type(value).__name__}")


def indexed_entry(image: Mapping[str, Any] | None, model_id: str) -> tuple[TrackMeta, npt.NDArray[np.float32]] | None:
    """(metadata, raw embedding) the index holds for this item image, or None if it holds nothing.

    A ready image whose embedding cannot be used (not float32 bytes, not finite, all
    zero) is not indexed.
    """
    if not image or image.get("status") != Status.READY.value or image.get("model") != model_id:
        return None
    embedding = image.get("embedding")
    if embedding is None:
        return None
    try:
        data = _binary(embedding)
        record = TrackRecord.from_item({**image, "embedding": data})
        vector = decode_embedding(data, record.dim)
    except (TypeError, ValueError):
        return None
    if vector.size == 0 or not np.all(np.isfinite(vector)) or not np.any(vector):
        return None
    return TrackMeta.from_record(record), vector


def _same(a: tuple[TrackMeta, npt.NDArray[np.float32]] | None, b: tuple[TrackMeta, npt.NDArray[np.float32]] | None) -> bool:
    if a is None or b is None:
        return a is b
    return a[0] == b[0] and np.array_equal(a[1], b[1])


def record_change(record: DynamoDBRecord, model_id: str) -> Change | None:
    stream = record.dynamodb
    if stream is None or stream.stream_view_type != StreamViewType.NEW_AND_OLD_IMAGES:
        raise StreamConfigError(
            f"stream record {record.event_id} has view type "
            f"{stream.stream_view_type if stream else None}; the Tracks stream must be NEW_AND_OLD_IMAGES"
        )
    old = indexed_entry(stream.old_image, model_id)
    new = indexed_entry(stream.new_image, model_id)
    if _same(old, new):
        return None
    if new is not None:
        return Upsert(new[0], new[1], was_indexed=old is not None)
    keys = stream.keys or {}
    track_id = str(keys.get("track_id") or (stream.old_image or {}).get("track_id", ""))
    return Remove(track_id)


def stream_changes(records: Iterable[DynamoDBRecord], model_id: str) -> list[Change]:
    """The index changes of a batch, in stream order (a later change of a track wins when applied)."""
    return [change for record in records if (change := record_change(record, model_id)) is not None]
