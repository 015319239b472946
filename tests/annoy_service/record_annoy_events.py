"""Records the Tracks stream events under tests/events/annoy_*.json.

Runs the catalogue's real writes (TrackTable.put_pending / mark_ready / add_playlists /
mark_failed, a delete) against moto's DynamoDB with a NEW_AND_OLD_IMAGES stream, reads
the stream records back and writes them in the shape Lambda delivers them (Binary
values base64-encoded, ApproximateCreationDateTime in epoch seconds).

    python -m tests.annoy_service.record_annoy_events   (from the repo root)
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from moto import mock_aws

from catalog.model import MODEL_ID
from catalog.records import PreviewSource, Source, TrackRecord, encode_embedding
from infra.resources import template_table_params

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
REGION = "us-east-1"
DIM = 200


def _lambda_json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _lambda_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lambda_json(v) for v in value]
    return value


def _lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    stream = dict(record["dynamodb"])
    stream["ApproximateCreationDateTime"] = float(int(stream["ApproximateCreationDateTime"].timestamp()))
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": _lambda_json(stream),
        "eventSourceARN": stream_arn,
    }


def main() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    # recent botocore routes dynamodbstreams to an account endpoint that moto does not serve
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with mock_aws():
        from catalog.storage import TrackTable

        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(**template_table_params("Tracks"))
        stream_arn = ddb.describe_table(TableName="Tracks")["Table"]["LatestStreamArn"]
        table = TrackTable("Tracks", boto3.resource("dynamodb", region_name=REGION).Table("Tracks"))
        rng = np.random.default_rng(5)
        track = TrackRecord(
            track_id="4uLU6hMCjMI75M1A2tKUQC",
            source=Source.SPOTIFY,
            title="Never Gonna Give You Up",
            artists=["Rick Astley"],
            album="Whenever You Need Somebody",
            duration_ms=213573,
            playlists={"37i9dQZF1DXcBWIGoYBM5M"},
            preview_source=PreviewSource.DEEZER,
        )
        broken = TrackRecord(track_id="local-0a1b2c3d4e5f60718293", source=Source.LOCAL, title="broken.mp3",
                             preview_source=PreviewSource.FILE)
        steps = [
            ("annoy_stream_insert_pending", lambda: table.put_pending(track)),
            ("annoy_stream_mark_ready", lambda: table.mark_ready(
                track.track_id, embedding=encode_embedding(rng.standard_normal(DIM)), dim=DIM,
                model=MODEL_ID, tags={"rock": 0.61, "pop": 0.44, "80s": 0.38}, fallback=track)),
            ("annoy_stream_ready_playlist_added", lambda: table.add_playlists(track.track_id, {"5ABHKGoOzxkaa28ttQV9sE"})),
            ("annoy_stream_ready_reextracted", lambda: table.mark_ready(
                track.track_id, embedding=encode_embedding(rng.standard_normal(DIM)), dim=DIM,
                model=MODEL_ID, tags={"rock": 0.58, "pop": 0.47}, fallback=track)),
            ("annoy_stream_ready_other_model", lambda: table.mark_ready(
                track.track_id, embedding=encode_embedding(rng.standard_normal(DIM)), dim=DIM,
                model="musicnn-mtt-v1", tags={"guitar": 0.7}, fallback=track)),
            ("annoy_stream_remove_other_model", lambda: table.table.delete_item(Key={"track_id": track.track_id})),
            ("annoy_stream_insert_pending_local", lambda: table.put_pending(broken)),
            ("annoy_stream_mark_failed", lambda: table.mark_failed(broken.track_id, "audio could not be decoded")),
        ]
        streams = boto3.client("dynamodbstreams", region_name=REGION)
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for name, write in steps:
            write()
            response = streams.get_records(ShardIterator=iterator)
            iterator = response["NextShardIterator"]
            records = [_lambda_record(r, stream_arn) for r in response["Records"]]
            assert len(records) == 1, (name, records)
            (EVENTS_DIR / f"{name}.json").write_text(json.dumps({"Records": records}, indent=2) + "\n")
            print(f"wrote {name}.json ({records[0]['eventName']})")
        # a ready item deleted: the same track made ready under the current model again, then removed
        table.put_pending(track)
        table.mark_ready(track.track_id, embedding=encode_embedding(rng.standard_normal(DIM)), dim=DIM,
                         model=MODEL_ID, tags={"rock": 0.6}, fallback=track)
        response = streams.get_records(ShardIterator=iterator)
        iterator = response["NextShardIterator"]
        table.table.delete_item(Key={"track_id": track.track_id})
        response = streams.get_records(ShardIterator=iterator)
        records = [_lambda_record(r, stream_arn) for r in response["Records"]]
        (EVENTS_DIR / "annoy_stream_remove_ready.json").write_text(json.dumps({"Records": records}, indent=2) + "\n")
        print("wrote annoy_stream_remove_ready.json")


if __name__ == "__main__":
    main()
