"""ExtractorFunction end to end on moto: SQS records of S3 events in, Tracks items and deleted audio out."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from botocore.exceptions import ClientError
from extractor_events import BUCKET, load_event, s3_message, sqs_event
from extractor_synth import drum_groove, encode, sine, stereo, string_pad

from catalog.keys import preview_key
from catalog.model import MODEL_ID
from catalog.records import PreviewSource, Source, Status, TrackRecord, decode_embedding
from catalog.settings import MissingSettingError
from catalog.storage import AudioStore, TrackTable
from extractor import handler
from extractor.constants import EMBEDDING_DIM, MAX_AUDIO_BYTES, TOP_TAGS

SPOTIFY_ID = "4uLU6hMCjMI75M1A2tKUQC"
OTHER_ID = "7ouMYWpwJ422jRcDASZB7P"


def track(track_id: str = SPOTIFY_ID) -> TrackRecord:
    return TrackRecord(
        track_id=track_id,
        source=Source.SPOTIFY,
        title="Never Gonna Give You Up",
        artists=["Rick Astley"],
        album="Whenever You Need Somebody",
        duration_ms=213_573,
        preview_source=PreviewSource.DEEZER,
        crawled_at="2024-05-02T10:15:00Z",
    )


def upload(aws, record: TrackRecord, data: bytes, ext: str = "mp3", playlist: str = "") -> dict:
    """Store a preview the way the crawler does and return the SQS record S3 would send."""
    key = AudioStore(BUCKET, aws.s3).put_preview(record, ext, data, "audio/mpeg", playlist=playlist)
    return s3_message(BUCKET, key, len(data))


def crawl(aws, record: TrackRecord, playlist: str = "") -> None:
    table = TrackTable(aws.table.name, aws.table)
    table.put_pending(record)
    table.add_playlists(record.track_id, {playlist} if playlist else set())


def failures(response: dict) -> set[str]:
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


@pytest.mark.model
def test_a_preview_becomes_a_ready_item_with_embedding_tags_and_model_and_its_audio_is_deleted(
    aws, lambda_context
) -> None:
    crawl(aws, track(), playlist="37i9dQZF1DXcBWIGoYBM5M")
    message = upload(aws, track(), encode(stereo(drum_groove(6.0, seed=1)), "mp3"))

    response = handler.lambda_handler(sqs_event(message), lambda_context)

    assert response == {"batchItemFailures": []}
    item = aws.item(SPOTIFY_ID)
    assert item["status"] == Status.READY.value
    assert item["model"] == MODEL_ID and int(item["dim"]) == EMBEDDING_DIM
    vector = decode_embedding(bytes(item["embedding"].value), EMBEDDING_DIM)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert len(item["tags"]) == TOP_TAGS
    assert item["extracted_at"].endswith("Z")
    # Descriptors are stored with the embedding, typed; drum_groove plays at 120 BPM.
    descriptors = TrackRecord.from_item(item).descriptors
    assert abs(descriptors.tempoBpm - 120.0) < 120.0 * 0.04
    assert set(item["descriptors"]) == set(descriptors.to_json())
    # The crawler's fields are untouched.
    assert item["title"] == "Never Gonna Give You Up" and item["playlists"] == {"37i9dQZF1DXcBWIGoYBM5M"}
    assert not aws.object_exists(preview_key(SPOTIFY_ID, "mp3"))


@pytest.mark.model
def test_an_object_whose_item_does_not_exist_yet_is_processed_with_its_object_metadata(aws, lambda_context) -> None:
    message = upload(aws, track(), encode(string_pad(5.0, seed=2), "ogg"), ext="ogg", playlist="my-playlist")

    response = handler.lambda_handler(sqs_event(message), lambda_context)

    assert failures(response) == set()
    item = TrackRecord.from_item(aws.item(SPOTIFY_ID))
    assert item.status is Status.READY and item.vector().shape == (EMBEDDING_DIM,)
    assert item.title == "Never Gonna Give You Up" and item.artists == ["Rick Astley"]
    assert item.source is Source.SPOTIFY and item.preview_source is PreviewSource.DEEZER
    assert item.duration_ms == 213_573 and item.playlists == {"my-playlist"}


@pytest.mark.model
def test_a_ready_track_without_descriptors_gets_them_when_its_audio_is_extracted_again(aws, lambda_context) -> None:
    crawl(aws, track())
    TrackTable(aws.table.name, aws.table).mark_ready(
        SPOTIFY_ID, embedding=b"\x00\x00\x80?", dim=1, model=MODEL_ID, tags={}
    )
    assert TrackRecord.from_item(aws.item(SPOTIFY_ID)).descriptors is None
    message = upload(aws, track(), encode(stereo(drum_groove(6.0, seed=1)), "mp3"))

    assert failures(handler.lambda_handler(sqs_event(message), lambda_context)) == set()

    record = TrackRecord.from_item(aws.item(SPOTIFY_ID))
    assert record.status is Status.READY and record.vector().shape == (EMBEDDING_DIM,)
    assert record.descriptors is not None and abs(record.descriptors.tempoBpm - 120.0) < 120.0 * 0.04


@pytest.mark.model
def test_a_duplicate_delivery_after_success_changes_nothing(aws, lambda_context) -> None:
    crawl(aws, track())
    message = upload(aws, track(), encode(drum_groove(4.0, seed=5), "wav"), ext="wav")
    assert failures(handler.lambda_handler(sqs_event(message), lambda_context)) == set()
    first = aws.item(SPOTIFY_ID)

    again = handler.lambda_handler(sqs_event(message), lambda_context)

    assert failures(again) == set()
    assert aws.item(SPOTIFY_ID) == first


@pytest.mark.model
def test_the_model_is_built_once_per_container_and_its_cold_start_reported(
    aws, lambda_context, monkeypatch, capsys
) -> None:
    built = []

    class CountingEmbedder(handler.Embedder):
        def __init__(self) -> None:
            built.append(1)
            super().__init__()

    monkeypatch.setattr(handler, "Embedder", CountingEmbedder)
    handler.embedder.cache_clear()
    try:
        for n, track_id in enumerate((SPOTIFY_ID, OTHER_ID)):
            message = upload(aws, track(track_id), encode(drum_groove(4.0, seed=n), "flac"), ext="flac")
            assert failures(handler.lambda_handler(sqs_event(message), lambda_context)) == set()
    finally:
        handler.embedder.cache_clear()

    assert built == [1]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    cold = [m for m in metrics if "ModelColdStartMs" in m]
    # EMF lists a metric's values; one build, one value.
    assert len(cold) == 1 and len(cold[0]["ModelColdStartMs"]) == 1 and cold[0]["ModelColdStartMs"][0] > 0


BAD_AUDIO = {
    "undecodable": (b"<html>preview unavailable</html>" * 40, "UndecodableAudioError"),
    "empty": (b"", "EmptyAudioError"),
    "silent": (encode(np.zeros(44_100 * 5, dtype=np.float32), "flac"), "SilentAudioError"),
    "too short": (encode(sine(1.5, 440.0), "mp3"), "TooShortAudioError"),
    "oversize": (encode(sine(3.5, 440.0), "wav").ljust(MAX_AUDIO_BYTES + 1, b"\0"), "OversizeAudioError"),
}


@pytest.mark.parametrize("kind", list(BAD_AUDIO))
def test_audio_that_cannot_embed_marks_the_item_failed_deletes_the_audio_and_the_message_succeeds(
    aws, lambda_context, kind: str
) -> None:
    data, error = BAD_AUDIO[kind]
    crawl(aws, track())
    message = upload(aws, track(), data)

    response = handler.lambda_handler(sqs_event(message), lambda_context)

    assert failures(response) == set()
    item = aws.item(SPOTIFY_ID)
    assert item["status"] == Status.FAILED.value
    assert item["error"].startswith(error)
    assert "embedding" not in item
    assert not aws.object_exists(preview_key(SPOTIFY_ID, "mp3"))


def test_a_transient_s3_error_fails_only_its_message(aws, lambda_context, monkeypatch) -> None:
    crawl(aws, track(SPOTIFY_ID))
    crawl(aws, track(OTHER_ID))
    throttled = upload(aws, track(SPOTIFY_ID), encode(sine(4.0, 440.0), "mp3"))
    bad = upload(aws, track(OTHER_ID), b"not audio at all" * 100)
    store = handler.extraction().store
    real_get = store.get

    def get(key: str):
        if key == preview_key(SPOTIFY_ID, "mp3"):
            raise ClientError(
                {
                    "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                    "ResponseMetadata": {"HTTPStatusCode": 503},
                },
                "GetObject",
            )
        return real_get(key)

    monkeypatch.setattr(store, "get", get)

    response = handler.lambda_handler(sqs_event(throttled, bad), lambda_context)

    assert failures(response) == {throttled["messageId"]}
    # The throttled track is left for the retry, noting why on the pending item; the other message finished.
    assert aws.item(SPOTIFY_ID)["status"] == Status.PENDING.value
    assert aws.item(SPOTIFY_ID)["error"].startswith("ClientError: An error occurred (SlowDown) when calling the GetObject")
    assert aws.object_exists(preview_key(SPOTIFY_ID, "mp3"))
    assert aws.item(OTHER_ID)["status"] == Status.FAILED.value


def test_a_throttled_table_write_keeps_the_audio_for_the_retry(aws, lambda_context, monkeypatch) -> None:
    crawl(aws, track())
    message = upload(aws, track(), b"")
    table = handler.extraction().table

    def throttled(*args, **kwargs):
        raise ClientError(
            {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "UpdateItem",
        )

    monkeypatch.setattr(table, "mark_failed", throttled)

    response = handler.lambda_handler(sqs_event(message), lambda_context)

    assert failures(response) == {message["messageId"]}
    assert aws.object_exists(preview_key(SPOTIFY_ID, "mp3"))
    assert aws.item(SPOTIFY_ID)["status"] == Status.PENDING.value


def test_a_missing_object_is_a_duplicate_delivery_and_succeeds(aws, lambda_context) -> None:
    crawl(aws, track())
    message = s3_message(BUCKET, preview_key(SPOTIFY_ID, "mp3"), 48_000)

    response = handler.lambda_handler(sqs_event(message), lambda_context)

    assert failures(response) == set()
    assert aws.item(SPOTIFY_ID)["status"] == Status.PENDING.value


def test_the_s3_test_event_is_accepted_and_ignored(aws, lambda_context) -> None:
    response = handler.lambda_handler(load_event("extractor_sqs_s3_test_event.json"), lambda_context)

    assert response == {"batchItemFailures": []}
    assert aws.table.scan()["Items"] == []


def test_keys_arrive_url_encoded_and_a_key_that_is_not_a_preview_is_left_alone(aws, lambda_context) -> None:
    key = "previews/not a track id!.mp3"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    message = s3_message(BUCKET, key, 1)
    assert "not+a+track+id%21" in message["body"]

    response = handler.lambda_handler(sqs_event(message), lambda_context)

    assert failures(response) == set()
    assert aws.object_exists(key)
    assert aws.table.scan()["Items"] == []


def test_a_message_that_is_not_an_s3_event_fails_so_it_reaches_the_dead_letter_queue(aws, lambda_context) -> None:
    message = s3_message(BUCKET, preview_key(SPOTIFY_ID, "mp3"), 10)
    message["body"] = '{"hello": "world"}'

    response = handler.lambda_handler(sqs_event(message), lambda_context)

    assert failures(response) == {message["messageId"]}


def test_a_missing_setting_fails_the_batch_with_the_variable_named(aws, lambda_context, monkeypatch) -> None:
    monkeypatch.delenv("TRACKS_TABLE")
    handler.extraction.cache_clear()

    with pytest.raises(MissingSettingError, match="TRACKS_TABLE"):
        handler.extraction()


THIRD_ID = "0VjIjW4GlUZAMYd2vXMi3b"


@pytest.mark.model
def test_a_batch_is_embedded_in_one_model_call_and_a_failure_is_mapped_to_its_own_message(
    aws, lambda_context, monkeypatch
) -> None:
    for track_id in (SPOTIFY_ID, OTHER_ID, THIRD_ID):
        crawl(aws, track(track_id))
    first = upload(aws, track(SPOTIFY_ID), encode(drum_groove(4.0, seed=3), "mp3"))
    throttled = upload(aws, track(OTHER_ID), encode(sine(4.0, 330.0), "mp3"))
    third = upload(aws, track(THIRD_ID), encode(string_pad(4.0, seed=4), "mp3"))
    store = handler.extraction().store
    real_get = store.get

    def get(key: str):
        if key == preview_key(OTHER_ID, "mp3"):
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetObject")
        return real_get(key)

    monkeypatch.setattr(store, "get", get)
    model = handler.embedder()
    calls: list[int] = []
    real_embed_patches_iter = model.embed_patches_iter

    def embed_patches_iter(per_clip):
        calls.append(len(per_clip))
        return real_embed_patches_iter(per_clip)

    monkeypatch.setattr(model, "embed_patches_iter", embed_patches_iter)

    response = handler.lambda_handler(sqs_event(first, throttled, third), lambda_context)

    assert calls == [2], "one model call for the batch, holding the two clips that downloaded"
    assert failures(response) == {throttled["messageId"]}
    assert [aws.item(t)["status"] for t in (SPOTIFY_ID, OTHER_ID, THIRD_ID)] == ["ready", "pending", "ready"]
    # Each clip of the shared model call is still described from its own audio: the groove plays at 120 BPM.
    grooves = TrackRecord.from_item(aws.item(SPOTIFY_ID)).descriptors
    assert grooves is not None and abs(grooves.tempoBpm - 120.0) < 120.0 * 0.04
    assert TrackRecord.from_item(aws.item(THIRD_ID)).descriptors is not None


@pytest.mark.model
def test_a_clip_is_described_and_stored_while_the_model_runs_the_next(aws, lambda_context, monkeypatch) -> None:
    crawl(aws, track(SPOTIFY_ID))
    crawl(aws, track(OTHER_ID))
    first = upload(aws, track(SPOTIFY_ID), encode(drum_groove(4.0, seed=3), "mp3"))
    second = upload(aws, track(OTHER_ID), encode(string_pad(4.0, seed=4), "mp3"))
    model = handler.embedder()
    work = handler.extraction()
    # A 4 s clip is one patch: one chunk per clip, so the second clip's chunk runs after the first is handed over.
    monkeypatch.setattr(model, "patches_per_forward", 1)
    finishing_started = threading.Event()
    forwards: list[bool] = []
    real_predict, real_finish = model.predict, work.finish

    def predict(patches):
        # The second chunk waits (bounded) for the first clip's write to have begun beside it.
        forwards.append(finishing_started.wait(timeout=30) if forwards else True)
        return real_predict(patches)

    def finish(clip, embedded):
        finishing_started.set()
        return real_finish(clip, embedded)

    monkeypatch.setattr(model, "predict", predict)
    monkeypatch.setattr(work, "finish", finish)

    response = handler.lambda_handler(sqs_event(first, second), lambda_context)

    assert failures(response) == set()
    assert forwards == [True, True], "the first clip was stored while the second ran through the model"
    assert [aws.item(t)["status"] for t in (SPOTIFY_ID, OTHER_ID)] == ["ready", "ready"]


@pytest.mark.model
def test_a_failed_model_call_fails_exactly_the_messages_whose_clips_it_held(aws, lambda_context, monkeypatch) -> None:
    crawl(aws, track(SPOTIFY_ID))
    crawl(aws, track(OTHER_ID))
    clip = upload(aws, track(SPOTIFY_ID), encode(drum_groove(4.0, seed=5), "mp3"))
    undecodable = upload(aws, track(OTHER_ID), b"not audio at all" * 100)
    test_event = load_event("extractor_sqs_s3_test_event.json")["Records"][0]

    def broken(clips):
        raise RuntimeError("ResourceExhaustedError: OOM when allocating tensor")

    monkeypatch.setattr(handler.embedder(), "embed_patches_iter", broken)

    response = handler.lambda_handler(sqs_event(clip, undecodable, test_event), lambda_context)

    assert failures(response) == {clip["messageId"]}
    assert aws.item(SPOTIFY_ID)["status"] == "pending" and aws.object_exists(preview_key(SPOTIFY_ID, "mp3"))
    assert aws.item(OTHER_ID)["status"] == "failed"


def test_clips_the_batch_model_call_cannot_place_fail_alone_with_the_reason_and_the_batch_goes_on(
    aws, lambda_context, monkeypatch
) -> None:
    from extractor.constants import N_TAGS
    from extractor.embed import Embedder

    for track_id in (SPOTIFY_ID, OTHER_ID, THIRD_ID):
        crawl(aws, track(track_id))
    # Three clips of one length: the one model call's patches split into equal thirds, in message order.
    messages = [upload(aws, track(t), encode(sine(4.0, 330.0), "wav"), ext="wav") for t in (SPOTIFY_ID, OTHER_ID, THIRD_ID)]
    calls: list[int] = []

    def predict(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Only the network is replaced: not finite for the first clip, zero for the second, fine for the third.
        calls.append(patches.shape[0])
        third = patches.shape[0] // 3
        midlevel = np.ones((patches.shape[0], EMBEDDING_DIM), np.float32)
        midlevel[:third] = np.nan
        midlevel[third : 2 * third] = 0.0
        return np.full((patches.shape[0], N_TAGS), 0.5, np.float32), midlevel

    model = object.__new__(Embedder)
    model.model_id = MODEL_ID
    model.patches_per_forward = 10_000  # every patch of the batch in one forward pass
    monkeypatch.setattr(model, "predict", predict)
    monkeypatch.setattr(handler.extraction(), "embedder", lambda: model)

    response = handler.lambda_handler(sqs_event(*messages), lambda_context)

    assert len(calls) == 1 and calls[0] % 3 == 0, "one model call for the batch"
    assert response == {"batchItemFailures": []}, "a permanent audio error settles its message"
    items = [aws.item(t) for t in (SPOTIFY_ID, OTHER_ID, THIRD_ID)]
    assert [item["status"] for item in items] == ["failed", "failed", "ready"]
    for item in items[:2]:
        assert item["error"] == "UnembeddableAudioError: the model gave no finite, non-zero embedding for this audio"
    assert [aws.object_exists(preview_key(t, "wav")) for t in (SPOTIFY_ID, OTHER_ID, THIRD_ID)] == [False] * 3
