"""POST /users/{userId}/history through the loopback gateway: SigV4 only, both formats, gzip, twice, errors, then training."""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from api_testkit import spotify_like_id
from test_api_history_import import LISTENS_TABLE, basic_record, extended_record

from catalog.crawl_requests import CrawlRequest
from catalog.listens import ListenTable
from catalog.records import Source, Status, TrackRecord
from catalog.storage import TrackTable
from catalog.train_requests import TrainRequest
from infra.authorizers import NO_AUTH, route_authorizer
from infra.context import LocalLambdaContext
from infra.pump import sqs_event_record
from infra.resources import template_table_params
from infra.sigv4 import sign
from infra.template import functions, load_template

TRAIN_QUEUE = "soundslike-test-train"


@pytest.fixture
def history_api(api: Any, publish: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[str]:
    """The api on the loopback gateway over 40 published tracks, with Listens and TrainQueue."""
    from history import train_handler
    from infra.http_gateway import serve, shutdown

    publish(n=40)
    boto3.client("dynamodb").create_table(**template_table_params(LISTENS_TABLE, "ListensTable"))
    monkeypatch.setenv("LISTENS_TABLE", LISTENS_TABLE)
    monkeypatch.setenv("TRAIN_QUEUE_URL", boto3.client("sqs").create_queue(QueueName=TRAIN_QUEUE)["QueueUrl"])
    monkeypatch.setenv("SOUNDSLIKE_STATE_DIR", str(tmp_path / "state"))
    train_handler._index_cache.cache_clear()
    server, thread = serve(api.lambda_handler)
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        shutdown(server, thread)
        train_handler._index_cache.cache_clear()


def post(url: str, body: bytes, content_type: str = "application/json", signed: bool = True) -> requests.Response:
    headers = {"content-type": content_type}
    if signed:
        headers = sign("POST", url, boto3.session.Session().get_credentials(), "us-east-1", body, headers)
    return requests.post(url, data=body, headers=headers, timeout=30)


def queued() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=os.environ["TRAIN_QUEUE_URL"], MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=os.environ["TRAIN_QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])
    return messages


def stored(user: str) -> int:
    return len(list(ListenTable(LISTENS_TABLE).listens_of(user)))


def export(n: int, tracks: int = 40) -> bytes:
    """n plays, 10 minutes apart, of the first ``tracks`` catalogue tracks in turn."""
    return json.dumps([extended_record(i % tracks, 10 * i) for i in range(n)]).encode()


def test_the_route_is_a_protected_write_of_api_write_function() -> None:
    template = load_template()
    events = functions(template)["ApiWriteFunction"]["Properties"]["Events"]
    (event,) = [e for e in events.values() if e["Properties"].get("Path") == "/users/{userId}/history"]
    put = next(e for e in events.values() if e["Properties"].get("Path") == "/tracks/{trackId}")
    assert event["Properties"]["Method"] == "POST"
    # Under the same authorizer as PUT /tracks/{trackId}, whichever WriteAuth chooses.
    for parameters in ({"WriteAuth": "iam"}, {"WriteAuth": "jwt", "JwtIssuer": "https://id.example", "JwtAudience": "app"}):
        guard = route_authorizer(template, put["Properties"], parameters)
        assert guard.kind != NO_AUTH
        assert route_authorizer(template, event["Properties"], parameters) == guard
    assert "POST /users/{userId}/history" not in functions(template)["ApiFunction"]["Metadata"].get("OpenRoutes", [])


def test_an_unsigned_post_is_refused_and_stores_nothing(history_api: str) -> None:
    response = post(f"{history_api}/users/ana/history", export(5), signed=False)
    assert response.status_code == 403 and response.json() == {"message": "Missing Authentication Token"}
    assert stored("ana") == 0 and queued() == []


def test_a_signed_post_imports_counts_and_queues_training_and_twice_adds_nothing(history_api: str) -> None:
    url = f"{history_api}/users/ana/history"
    body = json.dumps(
        [extended_record(i, 10 * i) for i in range(10)]
        + [extended_record(100, 200, uri=False), extended_record(3, 300, ms=5_000)]
        + [{"ts": "2026-03-02T10:00:00Z", "ms_played": 600_000, "episode_name": "An episode"}]
    ).encode()
    first = post(url, body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["userId"] == "ana" and answer["training"]["status"] == "queued"
    assert answer["import"] == {
        "files": 1, "records": 13, "plays": 12, "added": 12, "alreadyImported": 0,
        "matched": 11, "unmatched": 1, "skips": 1, "notMusic": 1, "crawlRequested": 0, "feedPlaysReplaced": 0,
    }
    assert stored("ana") == 12
    (message,) = queued()
    request = TrainRequest.from_body(message["Body"])
    assert request.user_id == "ana" and request.requested_at == answer["training"]["requestedAt"]
    assert request.last_import["added"] == 12

    again = post(url, body)
    assert again.status_code == 200
    assert (again.json()["import"]["added"], again.json()["import"]["alreadyImported"]) == (0, 12)
    assert stored("ana") == 12 and stored("bo") == 0
    assert len(queued()) == 1


def crawl_requests() -> list[str]:
    """The track ids waiting on CrawlQueue, in the order they were sent (the messages are deleted)."""
    sqs, url = boto3.client("sqs"), os.environ["CRAWL_QUEUE_URL"]
    ids: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            ids.append(CrawlRequest.from_body(message["Body"]).track_id)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return ids


def test_crawl_true_queues_the_unmatched_tracks_most_played_first_within_the_limit(
    history_api: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Four Spotify tracks the catalogue does not have, played 4, 3, 2 and 1 times; the most played
    # one was refused by an earlier crawl (no preview) and is not asked for again.
    unknown = [spotify_like_id(900 + i) for i in range(4)]
    TrackTable(os.environ["TRACKS_TABLE"]).put_failed(TrackRecord(track_id=unknown[0], source=Source.SPOTIFY, error="no preview"))
    plays = [unknown[i] for i in range(4) for _ in range(4 - i)]
    body = json.dumps(
        [extended_record(900, 10 * n) | {"spotify_track_uri": f"spotify:track:{track}"} for n, track in enumerate(plays)]
        + [extended_record(1, 500)]
    ).encode()
    monkeypatch.setenv("HISTORY_MAX_CRAWL_REQUESTS", "2")
    url = f"{history_api}/users/ana/history"

    plain = post(url, body)
    assert plain.status_code == 200 and plain.json()["import"]["crawlRequested"] == 0
    assert crawl_requests() == []

    first = post(f"{url}?crawl=true", body)
    assert first.status_code == 200, first.text
    assert (first.json()["import"]["unmatched"], first.json()["import"]["crawlRequested"]) == (10, 2)
    assert crawl_requests() == unknown[1:3]
    tracks = TrackTable(os.environ["TRACKS_TABLE"])
    requested = [tracks.get(t) for t in unknown]
    assert requested[0] is not None and requested[0].status is Status.FAILED
    assert all(r is not None and r.status is Status.PENDING and r.requested_at for r in requested[1:3])
    assert requested[3] is None

    # Posting again asks for the rest: the two just requested are waiting, the failed one stays refused.
    again = post(f"{url}?crawl=true", body)
    assert (again.json()["import"]["added"], again.json()["import"]["crawlRequested"]) == (0, 1)
    assert crawl_requests() == [unknown[3]]
    assert post(f"{url}?crawl=true", body).json()["import"]["crawlRequested"] == 0

def test_crawl_requests_that_cannot_be_queued_are_a_503_after_the_plays_are_stored(history_api: str) -> None:
    boto3.client("sqs").delete_queue(QueueUrl=os.environ["CRAWL_QUEUE_URL"])
    body = json.dumps([extended_record(901, 0) | {"spotify_track_uri": f"spotify:track:{spotify_like_id(901)}"}, extended_record(1, 10)]).encode()
    response = post(f"{history_api}/users/ana/history?crawl=true", body)
    assert response.status_code == 503 and response.json()["error"]["code"] == "crawl_unavailable", response.text
    assert "only 0 crawl requests could be queued" in response.json()["error"]["message"]
    assert stored("ana") == 2 and queued() == []


def test_the_basic_format_gzipped_imports_like_the_file(history_api: str) -> None:
    records = [basic_record(i, 10 * i) for i in range(8)]
    response = post(f"{history_api}/users/bo/history", gzip.compress(json.dumps(records).encode()), "application/gzip")
    assert response.status_code == 200, response.text
    assert (response.json()["import"]["added"], response.json()["import"]["matched"]) == (8, 8)
    assert stored("bo") == 8


def test_a_malformed_record_is_named_and_what_came_before_is_kept(history_api: str) -> None:
    records = [basic_record(i, 10 * i) for i in range(6)] + [{"endTime": "yesterday", "msPlayed": 1}, basic_record(7, 70)]
    response = post(f"{history_api}/users/ana/history", json.dumps(records).encode())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_export"
    assert error["message"].startswith('record 6: endTime must look like "2024-03-01 21:04"')
    assert stored("ana") == 6 and queued() == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'[{"endTime": "2026-03-01 20:00", "artistName": "A", "trackName": "B", "msPlayed": 1}, {"endTime": ', "application/json", 400, "malformed_export"),
        (b'{"plays": []}', "application/json", 400, "malformed_export"),
        (b"not gzip at all", "application/gzip", 400, "malformed_export"),
        (b"[]", "text/csv", 415, "unsupported_media_type"),
    ],
)
def test_bodies_that_are_not_exports_get_their_error(history_api: str, body: bytes, content_type: str, status: int, code: str) -> None:
    response = post(f"{history_api}/users/ana/history", body, content_type)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    # The parser's own message quotes the input; the API's never does.
    assert "endTime\": " not in response.json()["error"]["message"]


def test_an_export_over_the_limit_decompressed_is_413(history_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body = export(200)
    monkeypatch.setenv("HISTORY_MAX_EXPORT_BYTES", str(len(body) // 2))
    response = post(f"{history_api}/users/ana/history", gzip.compress(body), "application/gzip")
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    monkeypatch.setenv("HISTORY_MAX_EXPORT_BYTES", str(len(body)))
    assert post(f"{history_api}/users/ana/history", gzip.compress(body), "application/gzip").status_code == 200


def test_a_bad_user_id_is_400(history_api: str) -> None:
    response = post(f"{history_api}/users/no%20spaces/history", export(2))
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


def test_the_queued_request_trains_the_listener_whom_get_then_shows(history_api: str) -> None:
    from history.train_handler import lambda_handler

    posted = post(f"{history_api}/users/ana/history", export(60, tracks=20))
    assert posted.status_code == 200
    assert requests.get(f"{history_api}/users/ana", timeout=10).status_code == 404  # not trained yet
    (message,) = queued()
    arn = boto3.client("sqs").get_queue_attributes(QueueUrl=os.environ["TRAIN_QUEUE_URL"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    result = lambda_handler({"Records": [sqs_event_record(message, arn)]}, LocalLambdaContext(function_name="HistoryTrainFunction"))
    assert result == {"batchItemFailures": []}
    profile = requests.get(f"{history_api}/users/ana", timeout=10).json()
    assert profile["plays"] == 60 and profile["distinctTracks"] == 20
    assert profile["lastImport"] == {"at": profile["lastImport"]["at"], **posted.json()["import"]}
    assert profile["models"]["affinity"] is not None
    recommended = requests.get(f"{history_api}/users/ana/recommendations", params={"k": 5}, timeout=10)
    assert recommended.status_code == 200 and spotify_like_id(0) not in {r["trackId"] for r in recommended.json()["results"]}


def test_a_training_message_that_is_not_one_is_dropped_and_no_index_is_retried(history_api: str) -> None:
    from history.train_handler import lambda_handler

    context = LocalLambdaContext(function_name="HistoryTrainFunction")
    bad = {"messageId": "m1", "receiptHandle": "r", "body": '{"userId": "no spaces"}', "attributes": {}, "eventSource": "aws:sqs"}
    assert lambda_handler({"Records": [bad]}, context) == {"batchItemFailures": []}
    boto3.client("s3").delete_object(Bucket=os.environ["INDEX_BUCKET"], Key="index/LATEST.json")
    good = bad | {"messageId": "m2", "body": TrainRequest("ana", "2026-03-01T00:00:00Z").to_body()}
    assert lambda_handler({"Records": [good]}, context) == {"batchItemFailures": [{"itemIdentifier": "m2"}]}


def test_a_space_changed_request_reads_latest_again_and_keeps_the_last_import(
    history_api: str, publish: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from api.index_cache import IndexCache
    from catalog.train_requests import REASON_SPACE_CHANGED
    from history import train_handler

    # A warm trainer container: its index is never old enough to be checked again by itself.
    cache = IndexCache(os.environ["INDEX_BUCKET"], directory=tmp_path / "trainer", clock=lambda: 0.0)
    monkeypatch.setattr(train_handler, "_index_cache", functools.cache(lambda bucket: cache))
    context = LocalLambdaContext(function_name="HistoryTrainFunction")

    def train(request: TrainRequest, message_id: str) -> dict[str, Any]:
        record = {"messageId": message_id, "receiptHandle": "r", "body": request.to_body(), "attributes": {}, "eventSource": "aws:sqs"}
        assert train_handler.lambda_handler({"Records": [record]}, context) == {"batchItemFailures": []}
        return requests.get(f"{history_api}/users/ana", timeout=10).json()

    posted = post(f"{history_api}/users/ana/history", export(60, tracks=20))
    assert posted.status_code == 200
    (message,) = queued()
    first = train(TrainRequest.from_body(message["Body"]), "m1")
    old_version = first["models"]["indexVersion"]
    newer = publish(n=40, seed=8)  # a new base, LATEST moved on
    assert newer.manifest.version != old_version
    # An import's request trains on what the container holds (the API's cache rules) ...
    assert train(TrainRequest("ana", "2026-03-01T00:00:00Z", first["lastImport"]), "m2")["models"]["indexVersion"] == old_version
    # ... one sent because the searched space changed reads LATEST first, and keeps the last import.
    again = train(TrainRequest("ana", "2026-03-01T00:01:00Z", reason=REASON_SPACE_CHANGED, space="pca:8:0123456789abcdef"), "m3")
    assert again["models"]["indexVersion"] == newer.manifest.version
    assert again["lastImport"] == first["lastImport"]
