"""One model identity: the id the extractor writes is the id annoy_service indexes, bumped or not."""

from __future__ import annotations

import boto3
import pytest
from extractor_events import BUCKET, REGION, TABLE, s3_message, sqs_event
from extractor_synth import drum_groove, encode

from annoy_service.publisher import Announcer
from annoy_service.service import Indexer, Result, Settings
from catalog.bundle_store import BundleStore
from catalog.model import MODEL_ID, MODEL_ID_VARIABLE
from catalog.records import Source, TrackRecord
from catalog.storage import AudioStore, TrackTable
from extractor import handler

TRACK_ID = "4uLU6hMCjMI75M1A2tKUQC"
INDEX_BUCKET = "index-bucket"


@pytest.fixture
def fresh_embedder():
    """The handler's cached model carries the id it was built with: rebuild it for this test and after."""
    handler.embedder.cache_clear()
    yield
    handler.embedder.cache_clear()


@pytest.mark.model
@pytest.mark.parametrize("model_id", [None, "musicnn-msd-v2"], ids=["default", "bumped"])
def test_the_extractors_model_id_is_the_one_annoy_service_indexes(
    aws, lambda_context, fresh_embedder, monkeypatch: pytest.MonkeyPatch, model_id: str | None
) -> None:
    # The template sets MODEL_ID for both functions or neither (template_checks); so does this test.
    if model_id is None:
        monkeypatch.delenv(MODEL_ID_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(MODEL_ID_VARIABLE, model_id)
    monkeypatch.setenv("INDEX_BUCKET", INDEX_BUCKET)
    topic_arn = boto3.client("sns", region_name=REGION).create_topic(Name="IndexTopic")["TopicArn"]
    monkeypatch.setenv("INDEX_TOPIC_ARN", topic_arn)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=INDEX_BUCKET)
    record = TrackRecord(track_id=TRACK_ID, source=Source.SPOTIFY, title="t", artists=["a"])
    TrackTable(TABLE).put_pending(record)
    data = encode(drum_groove(6.0, seed=1), "mp3")
    key = AudioStore(BUCKET, aws.s3).put_preview(record, "mp3", data, "audio/mpeg")

    assert handler.lambda_handler(sqs_event(s3_message(BUCKET, key, len(data))), lambda_context) == {
        "batchItemFailures": []
    }
    settings = Settings.from_env()
    outcome = Indexer(settings, TrackTable(TABLE), BundleStore(INDEX_BUCKET), Announcer(topic_arn)).rebuild_full()

    assert aws.item(TRACK_ID)["model"] == settings.model_id == (model_id or MODEL_ID)
    assert outcome.result is Result.REBUILT and outcome.count == 1 and outcome.skipped == {}
