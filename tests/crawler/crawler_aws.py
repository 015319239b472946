"""moto-side helpers for the crawler tests: names of the table, bucket and secret, and readers."""

from __future__ import annotations

import json
from typing import Any

import boto3

TABLE = "Tracks"
BUCKET = "audio-bucket"
SECRET = "spotify-secret"
REGION = "us-east-1"


def put_secret(values: dict[str, Any]) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    try:
        sm.create_secret(Name=SECRET, SecretString=json.dumps(values))
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=SECRET, SecretString=json.dumps(values))


def read_secret() -> dict[str, Any]:
    return json.loads(boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=SECRET)["SecretString"])


def table_item(track_id: str) -> dict[str, Any] | None:
    return boto3.resource("dynamodb", region_name=REGION).Table(TABLE).get_item(Key={"track_id": track_id}).get("Item")


def s3_keys() -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def s3_object(key: str) -> dict[str, Any]:
    return boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=key)
