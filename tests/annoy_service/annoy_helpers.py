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
from catalog.records import PreviewSource, Source, Status, TrackRecord, encode_embedding
from catalog.storage import TrackTable
from infra.pump import stream_event_record

REGION = "us-east-1"
MODEL = "musicnn-msd-v1"
DIM = 200
EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


class StreamReader:
    """The table's real DynamoDB stream, read as Lambda delivers it (the local pump's converter)."""

    def __init__(self, table_name: str) -> None:
        ddb = boto3.client("dynamodb", region_name=REGION)
        self.arn = ddb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        self.streams = boto3.client("dynamodbstreams", region_name=REGION)
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
        hooks = {name: overrides.pop(name) for name in ("clock", "sleep", "workdir") if name in overrides}
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
