"""moto-backed Tracks table, index bucket and IndexPublished topic (with an SQS subscriber) for annoy_service tests."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import numpy as np
import pytest
from annoy_helpers import REGION, Stack
from moto import mock_aws

from annoy_service import handler
from annoy_service.publisher import Announcer
from catalog import storage
from catalog.bundle_store import BundleStore
from catalog.storage import TrackTable
from infra.context import LocalLambdaContext
from infra.pump import StreamReader
from infra.resources import template_table_params


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_METRICS_NAMESPACE": "soundslike",
        "POWERTOOLS_SERVICE_NAME": "annoy_service",
        "TRACKS_TABLE": "Tracks",
        "INDEX_BUCKET": "index-bucket",
        "INDEX_KEEP_VERSIONS": "5",
        "INDEX_N_TREES": "5",
        "INDEX_DEBOUNCE_S": "0",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MODEL_ID", raising=False)
    with mock_aws():
        storage.client.cache_clear()
        storage.resource.cache_clear()
        handler.dependencies.cache_clear()
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(**template_table_params("Tracks"))
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="index-bucket")
        sns = boto3.client("sns", region_name=REGION)
        topic_arn = sns.create_topic(Name="IndexTopic")["TopicArn"]
        monkeypatch.setenv("INDEX_TOPIC_ARN", topic_arn)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="index-readers")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield Stack(
            table=TrackTable("Tracks"),
            store=BundleStore("index-bucket"),
            announcer=Announcer(topic_arn),
            bucket="index-bucket",
            queue_url=queue_url,
            rng=np.random.default_rng(7),
            stream=StreamReader("Tracks", ddb, boto3.client("dynamodbstreams", region_name=REGION)),
            topic_arn=topic_arn,
        )
        storage.client.cache_clear()
        storage.resource.cache_clear()
        handler.dependencies.cache_clear()


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="AnnoyServiceFunction", timeout_s=900, memory_limit_in_mb=3008)
