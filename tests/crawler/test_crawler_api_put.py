"""PUT /tracks/{trackId} end to end: the loopback gateway (SigV4 as in AWS), the API's write route,
CrawlQueue, and the crawler's real CrawlQueue consumer with Spotify and Deezer as loopback fakes.

Nothing is swapped: the request is signed with botocore's signer, the API records it and queues
it, and the crawl happens afterwards in the crawler handler, fed the SQS event Lambda would send.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from crawler_aws import REGION, s3_keys, table_item
from crawler_fakes import Fakes, Reply, spotify_id, spotify_track

from crawler import handler as crawler_handler
from infra.context import LocalLambdaContext
from infra.http_gateway import serve, shutdown
from infra.pump import sqs_event_record
from infra.sigv4 import sign

INDEX_BUCKET = "index-bucket"
CRAWL_QUEUE = "crawl-queue"
# The write route answers from the table and the queue only; the fake Spotify is far slower than that.
PUT_BUDGET_S = 1.0
SLOW_SPOTIFY_S = 3.0


@pytest.fixture
def api_url(aws: None, user_secret: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=INDEX_BUCKET)
    monkeypatch.setenv("INDEX_BUCKET", INDEX_BUCKET)
    monkeypatch.setenv("CRAWL_QUEUE_URL", boto3.client("sqs", region_name=REGION).create_queue(QueueName=CRAWL_QUEUE)["QueueUrl"])
    sys.modules.pop("api.handler", None)
    api = importlib.import_module("api.handler")
    server, thread = serve(api.lambda_handler)  # routes and authorizers from template.yaml
    try:
        yield "http://{}:{}".format(*server.server_address[:2])
    finally:
        shutdown(server, thread)
        sys.modules.pop("api.handler", None)


def signed_put(url: str) -> requests.Response:
    headers = sign("PUT", url, boto3.session.Session().get_credentials(), REGION)
    return requests.put(url, headers=headers, timeout=10)


def crawl_queued_requests() -> dict[str, Any]:
    """Deliver CrawlQueue's messages to the crawler's handler as Lambda's SQS event source would."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=CRAWL_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    assert messages, "CrawlQueue is empty"
    event = {"Records": [sqs_event_record(m, arn) for m in messages]}
    return crawler_handler.lambda_handler(event, LocalLambdaContext(function_name="CrawlerFunction", timeout_s=900))


def test_a_signed_put_is_accepted_in_under_a_second_while_spotify_is_slow_and_the_crawler_ingests_it(
    api_url: str, crawler_env: Fakes
) -> None:
    track = spotify_track(spotify_id(91), "Requested", ["Someone"], isrc="USABC9999999")
    crawler_env.spotify.tracks[track["id"]] = track
    crawler_env.deezer.add("Requested", "Someone", "USABC9999999")
    crawler_env.spotify.latency_s = SLOW_SPOTIFY_S
    url = f"{api_url}/tracks/{track['id']}"

    unsigned = requests.put(url, timeout=10)
    # A warm container: its first request builds Powertools' validation models (seconds on a busy machine).
    assert signed_put(f"{api_url}/tracks/not-a-spotify-id").status_code == 400
    started = time.perf_counter()
    signed = signed_put(url)
    elapsed_s = time.perf_counter() - started

    assert unsigned.status_code == 403
    assert signed.status_code == 202, signed.text
    assert elapsed_s < PUT_BUDGET_S, f"PUT took {elapsed_s:.2f} s"
    assert signed.json()["status"] == "pending" and crawler_env.spotify.log == []
    assert requests.get(url, timeout=10).json()["status"] == "pending"

    crawler_env.spotify.latency_s = 0.0
    assert crawl_queued_requests() == {"batchItemFailures": []}
    assert s3_keys() == [f"previews/{track['id']}.mp3"]
    item = table_item(track["id"])
    assert item["status"] == "pending" and item["preview_source"] == "deezer" and item["title"] == "Requested"
    assert len(crawler_env.cdn.log) == 1


@pytest.mark.parametrize(
    ("known_to_spotify", "reason"),
    [(False, "Spotify does not know this track"), (True, "no preview found")],
    ids=["unknown-to-spotify", "no-preview"],
)
def test_a_request_that_can_never_be_crawled_shows_failed_with_the_reason(
    api_url: str, crawler_env: Fakes, known_to_spotify: bool, reason: str
) -> None:
    track = spotify_track(spotify_id(92), "Unheard", ["Nobody"], isrc="USABC0000001")
    if known_to_spotify:
        crawler_env.spotify.tracks[track["id"]] = track
    url = f"{api_url}/tracks/{track['id']}"

    assert signed_put(url).status_code == 202
    assert crawl_queued_requests() == {"batchItemFailures": []}

    view = requests.get(url, timeout=10).json()
    assert view["status"] == "failed" and reason in view["error"]
    assert s3_keys() == []


def test_a_crawl_that_may_succeed_later_fails_its_message_for_a_retry(api_url: str, crawler_env: Fakes) -> None:
    track = spotify_track(spotify_id(93), "Later", ["Someone"])
    crawler_env.spotify.tracks[track["id"]] = track
    crawler_env.spotify.fail(r"/v1/tracks", Reply.json({"error": {"status": 503, "message": "down"}}, status=503), times=50)
    assert signed_put(f"{api_url}/tracks/{track['id']}").status_code == 202

    response = crawl_queued_requests()

    assert len(response["batchItemFailures"]) == 1
    assert table_item(track["id"])["status"] == "pending"


def test_put_a_deezer_track_by_its_dz_id(api_url: str, crawler_env: Fakes) -> None:
    entry = crawler_env.deezer.add("Deezer Only", "Somebody", isrc="FRXYZ2600001")

    response = signed_put(f"{api_url}/tracks/dz-{entry.id}")
    missing = signed_put(f"{api_url}/tracks/dz-999")
    bad = signed_put(f"{api_url}/tracks/dz-abc")

    assert (response.status_code, missing.status_code) == (202, 202), response.text
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_track_id"
    assert crawl_queued_requests() == {"batchItemFailures": []}
    assert s3_keys() == [f"previews/dz-{entry.id}.mp3"]
    item = table_item(f"dz-{entry.id}")
    assert (item["source"], item["deezer_id"], item["isrc"], item["status"]) == ("deezer", str(entry.id), "FRXYZ2600001", "pending")
    view = requests.get(f"{api_url}/tracks/dz-999", timeout=10).json()
    assert view["status"] == "failed" and view["source"] == "deezer" and "Deezer does not know this track" in view["error"]


def test_put_a_spotify_track_already_reached_through_deezer_adds_no_second_track(api_url: str, crawler_env: Fakes) -> None:
    entry = crawler_env.deezer.add("Both", "Services", isrc="FRXYZ2600002")
    track = spotify_track(spotify_id(94), "Both", ["Services"], isrc="FRXYZ2600002")
    crawler_env.spotify.tracks[track["id"]] = track
    assert signed_put(f"{api_url}/tracks/dz-{entry.id}").status_code == 202
    assert crawl_queued_requests() == {"batchItemFailures": []}
    downloads = len(crawler_env.cdn.log)

    assert signed_put(f"{api_url}/tracks/{track['id']}").status_code == 202
    assert crawl_queued_requests() == {"batchItemFailures": []}

    assert len(crawler_env.cdn.log) == downloads and s3_keys() == [f"previews/dz-{entry.id}.mp3"]
    assert table_item(f"dz-{entry.id}")["spotify_id"] == track["id"]
    # The requested id's item names the entry that holds the recording instead of staying pending.
    view = requests.get(f"{api_url}/tracks/{track['id']}", timeout=10).json()
    assert view["status"] == "failed" and f"in the catalogue as dz-{entry.id}" in view["error"]
