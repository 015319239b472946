"""Fixtures for the extractor: an in-process AWS (moto) with the audio bucket and
Tracks table, real SQS/S3 event shapes from tests/events/, and a shared model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from extractor_events import BUCKET, REGION, TABLE
from moto import mock_aws

from infra.context import LocalLambdaContext
from infra.resources import template_table_params

# Before any handler import: Powertools reads these when its objects are created.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "soundslike-test")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "extractor")


@dataclass
class Stack:
    """The extractor's AWS resources inside moto."""

    s3: Any
    table: Any
    bucket: str = BUCKET

    def object_exists(self, key: str) -> bool:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key)
        return any(o["Key"] == key for o in listed.get("Contents", []))

    def item(self, track_id: str) -> dict[str, Any] | None:
        return self.table.get_item(Key={"track_id": track_id}, ConsistentRead=True).get("Item")


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="ExtractorFunction", timeout_s=120, memory_limit_in_mb=3008)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    from catalog import storage
    from extractor import handler

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AUDIO_BUCKET", BUCKET)
    monkeypatch.setenv("TRACKS_TABLE", TABLE)

    def forget_clients() -> None:
        storage.client.cache_clear()
        storage.resource.cache_clear()
        handler.extraction.cache_clear()

    with mock_aws():
        forget_clients()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        table = dynamodb.create_table(**template_table_params(TABLE))
        yield Stack(s3=s3, table=table)
    forget_clients()


@pytest.fixture(scope="session")
def embedder():
    """One model for every test that embeds directly (the handler keeps its own)."""
    from extractor.embed import Embedder

    return Embedder()
