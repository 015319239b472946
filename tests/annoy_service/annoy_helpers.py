"""Shared helpers of the annoy_service tests: recorded events and the moto-backed stack's handle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from annoy_service.publisher import Announcer
from annoy_service.service import Indexer, Settings
from catalog.bundle_store import BundleStore
from catalog.model import MODEL_ID
from catalog.records import PreviewSource, Source, Status, TrackRecord, encode_embedding
from catalog.storage import TrackTable
from infra.pump import StreamReader

REGION = "us-east-1"
MODEL = MODEL_ID
DIM = 200
EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


@dataclass
class Stack:
    table: TrackTable
    store: BundleStore
    announcer: Announcer
    bucket: str
    queue_url: str
    rng: np.random.Generator
    stream: StreamReader
    topic_arn: str

    def settings(self, **overrides: Any) -> Settings:
        """Test settings: few trees (quick builds), no debounce and no compaction unless a test sets them."""
        return Settings(**{"table": "Tracks", "bucket": self.bucket, "topic_arn": self.topic_arn,
                           "n_trees": 5, "debounce_s": 0.0, "compact_items": 10**9, "compact_share": 10.0, **overrides})

    def indexer(self, **overrides: Any) -> Indexer:
        hooks = {name: overrides.pop(name) for name in ("clock", "sleep", "workdir", "retrainer") if name in overrides}
        return Indexer(self.settings(**overrides), self.table, self.store, self.announcer, **hooks)

    def mark_ready(self, track_id: str, vector: Any = None, **fields: Any) -> np.ndarray:
        """The extractor's write: the raw vector it stored, as float32."""
        embedding = encode_embedding(self.rng.standard_normal(DIM) if vector is None else vector)
        self.table.mark_ready(track_id, embedding=embedding, dim=DIM, model=MODEL, tags=fields.pop("tags", {"rock": 0.9}),
                              fallback=TrackRecord(track_id=track_id, source=Source.SPOTIFY,
                                                   title=fields.pop("title", f"title of {track_id}"), artists=["Someone"]))
        return np.frombuffer(embedding, dtype="<f4").copy()

    def put_ready(self, track_id: str, vector: Any = None, model: str = MODEL, dim: int = DIM, **fields: Any) -> bytes:
        item = self.ready_item(track_id, vector, model, dim, **fields)
        self.table.table.put_item(Item=item)
        return item["embedding"]

    def ready_item(self, track_id: str, vector: Any = None, model: str = MODEL, dim: int = DIM, **fields: Any) -> dict[str, Any]:
        embedding = encode_embedding(self.rng.standard_normal(dim) if vector is None else vector)
        record = TrackRecord(
            track_id=track_id,
            source=Source.SPOTIFY,
            status=Status.READY,
            title=fields.pop("title", f"title of {track_id}"),
            artists=fields.pop("artists", ["Someone"]),
            album=fields.pop("album", "An Album"),
            preview_source=PreviewSource.DEEZER,
            embedding=embedding,
            model=model,
            dim=dim,
            tags=fields.pop("tags", {"rock": 0.9, "pop": 0.5}),
            **fields,
        )
        return record.to_item()

    def put_pending(self, track_id: str) -> None:
        self.table.put_pending(TrackRecord(track_id=track_id, source=Source.SPOTIFY, title=track_id))

    def announcements(self) -> list[dict[str, Any]]:
        """SNS envelopes delivered to the subscribed queue (drained)."""
        sqs = boto3.client("sqs", region_name=REGION)
        found = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def keys(self) -> list[str]:
        s3 = boto3.client("s3", region_name=REGION)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
