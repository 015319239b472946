"""api.handler with minimal v2 events: routes, validation, error bodies, the index and the Tracks table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from api_testkit import as_served, override

from catalog.crawl_requests import CrawlRequest
from catalog.model import MODEL_ID
from catalog.records import Source, Status, TrackRecord, encode_embedding
from catalog.storage import TrackTable

REPO_ROOT = Path(__file__).resolve().parents[2]


def call(api: Any, event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = api.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def assert_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def put_track(track_id: str, status: Status, **fields: Any) -> None:
    TrackTable(os.environ["TRACKS_TABLE"]).table.put_item(
        Item=TrackRecord(track_id=track_id, source=Source.SPOTIFY, status=status, title="T", artists=["A"], **fields).to_item()
    )


def test_recommendations_are_503_before_any_index_is_published(api, http_event, lambda_context) -> None:
    status, body, _ = call(api, http_event("GET", "/recommendations", {"trackId": "T000000000000000000001"}), lambda_context)
    assert status == 503
    assert_error(body, "index_unavailable")
    status, body, _ = call(api, http_event("GET", "/health"), lambda_context)
    assert status == 503


def test_recorded_recommendations_event_is_answered_from_the_index(api, publish, recorded_event, lambda_context) -> None:
    ids = ["4uLU6hMCjMI75M1A2tKUQC"] + [f"T{i:021d}" for i in range(1, 40)]
    bundle = publish(ids=ids, artists=[[f"Artist {i}"] for i in range(40)])
    status, body, headers = call(api, recorded_event("api_get_recommendations.json"), lambda_context)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    assert body["trackId"] == "4uLU6hMCjMI75M1A2tKUQC"
    assert body["indexVersion"] == bundle.manifest.version
    assert body["model"] == bundle.manifest.model
    assert body["query"]["title"] == "Song 0"
    assert len(body["results"]) == 5
    assert "4uLU6hMCjMI75M1A2tKUQC" not in {r["trackId"] for r in body["results"]}


def test_results_are_the_exact_nearest_neighbours_without_the_query(api, publish, http_event, lambda_context) -> None:
    bundle = publish(n=60)
    vectors = as_served(bundle.vectors)
    for query in (0, 17, 59):
        track_id = bundle.track_ids[query]
        status, body, _ = call(api, http_event("GET", "/recommendations", {"trackId": track_id, "k": "7"}), lambda_context)
        assert status == 200
        cosine = vectors @ vectors[query]
        expected = [i for i in np.argsort(-cosine) if i != query][:7]
        got = [r["trackId"] for r in body["results"]]
        assert track_id not in got
        assert got == [bundle.track_ids[i] for i in expected]
        sims = [r["similarity"] for r in body["results"]]
        assert sims == sorted(sims, reverse=True)
        np.testing.assert_allclose(sims, cosine[expected], atol=1e-5)
        first = body["results"][0]
        assert set(first) >= {"trackId", "title", "artists", "album", "source", "previewSource", "tags", "similarity"}


def test_k_defaults_to_10_and_k_100_returns_all_others(api, publish, http_event, lambda_context) -> None:
    bundle = publish(n=50)
    track_id = bundle.track_ids[3]
    _, body, _ = call(api, http_event("GET", "/recommendations", {"trackId": track_id}), lambda_context)
    assert len(body["results"]) == 10
    _, body, _ = call(api, http_event("GET", "/recommendations", {"trackId": track_id, "k": "100"}), lambda_context)
    assert len(body["results"]) == 49
    assert track_id not in {r["trackId"] for r in body["results"]}


def test_distinct_artists_gives_one_result_per_artist_and_none_by_the_query_artist(api, publish, http_event, lambda_context) -> None:
    artists = [[f"Band {i % 5}"] + (["Guest"] if i % 7 == 0 else []) for i in range(60)]
    bundle = publish(n=60, artists=artists)
    track_id = bundle.track_ids[1]
    query = {"trackId": track_id, "k": "10", "distinctArtists": "true"}
    status, body, _ = call(api, http_event("GET", "/recommendations", query), lambda_context)
    assert status == 200
    result_artists = [a for r in body["results"] for a in r["artists"]]
    assert len(result_artists) == len(set(result_artists))
    assert "Band 1" not in result_artists
    # Bands 0, 2, 3, 4 remain, one track each (Guest may ride along with one of them).
    assert len(body["results"]) == 4


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"k": "5"},
        {"trackId": "T000000000000000000001", "k": "0"},
        {"trackId": "T000000000000000000001", "k": "101"},
        {"trackId": "T000000000000000000001", "k": "ten"},
        {"trackId": "T000000000000000000001", "distinctArtists": "maybe"},
        {"trackId": "<script>alert(1)</script>"},
        {"trackId": "x" * 65},
    ],
)
def test_bad_parameters_are_400_json_errors_that_do_not_echo_the_request(api, publish, http_event, lambda_context, query) -> None:
    publish(n=20)
    status, body, _ = call(api, http_event("GET", "/recommendations", query), lambda_context)
    assert status == 400
    assert_error(body, "bad_request")
    text = json.dumps(body)
    for value in query.values():
        assert value not in text
    assert "requestContext" not in text and "headers" not in text


def test_unknown_track_is_404_and_the_body_says_what_the_table_knows(api, publish, http_event, lambda_context) -> None:
    publish(n=20)
    put_track("Pending000000000000000", Status.PENDING)
    put_track("Failed0000000000000000", Status.FAILED, error="audio could not be decoded")
    put_track("Ready00000000000000000", Status.READY)
    expected = {
        "Nobody0000000000000000": "track_not_found",
        "Pending000000000000000": "track_pending",
        "Failed0000000000000000": "track_failed",
        "Ready00000000000000000": "track_not_indexed",
    }
    for track_id, code in expected.items():
        status, body, _ = call(api, http_event("GET", "/recommendations", {"trackId": track_id}), lambda_context)
        assert status == 404
        assert_error(body, code)
    assert "pending" in call(api, http_event("GET", "/recommendations", {"trackId": "Pending000000000000000"}), lambda_context)[1]["error"]["message"]


class CountingTable:
    """A Tracks table that counts reads and answers none."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def get(self, track_id: str, consistent: bool = False) -> None:
        self.reads.append(track_id)


def test_recommendations_read_the_tracks_table_only_to_explain_a_miss(api, publish, http_event, lambda_context) -> None:
    from api import deps

    bundle = publish(n=30)
    table = CountingTable()
    override(api.app, deps.tracks_table, table)
    status, body, _ = call(api, http_event("GET", "/recommendations", {"trackId": bundle.track_ids[0]}), lambda_context)
    assert status == 200 and len(body["results"]) == 10
    assert table.reads == []
    status, body, _ = call(api, http_event("GET", "/recommendations", {"trackId": "Nobody0000000000000000"}), lambda_context)
    assert status == 404 and body["error"]["code"] == "track_not_found"
    assert table.reads == ["Nobody0000000000000000"]


def test_health_reports_version_count_model_and_age(api, publish, http_event, lambda_context) -> None:
    bundle = publish(n=25)
    status, body, _ = call(api, http_event("GET", "/health"), lambda_context)
    assert status == 200
    assert body["status"] == "ok"
    assert body["indexVersion"] == bundle.manifest.version
    assert body["count"] == 25
    assert body["model"] == bundle.manifest.model
    assert body["dim"] == bundle.manifest.dim
    assert 0 <= body["ageSeconds"] < 60


def test_get_track_returns_metadata_and_status_but_never_the_embedding(api, publish, http_event, lambda_context) -> None:
    bundle = publish(n=10)
    indexed = bundle.track_ids[2]
    put_track(indexed, Status.READY, embedding=encode_embedding([1.0, 2.0]), dim=2, model=MODEL_ID, tags={"rock": 0.9})
    status, body, _ = call(api, http_event("GET", f"/tracks/{indexed}", route="/tracks/{trackId}"), lambda_context)
    assert status == 200
    assert body["trackId"] == indexed and body["status"] == "ready"
    assert body["indexed"] is True and body["indexVersion"] == bundle.manifest.version
    assert "embedding" not in body and body["tags"] == {"rock": 0.9}
    put_track("Pending000000000000000", Status.PENDING)
    _, body, _ = call(api, http_event("GET", "/tracks/Pending000000000000000", route="/tracks/{trackId}"), lambda_context)
    assert body["status"] == "pending" and body["indexed"] is False

    status, body, _ = call(api, http_event("GET", "/tracks/Unknown000000000000000", route="/tracks/{trackId}"), lambda_context)
    assert status == 404
    assert_error(body, "track_not_found")
    status, body, _ = call(api, http_event("GET", "/tracks/bad%20id", route="/tracks/{trackId}"), lambda_context)
    assert status == 400
    assert_error(body, "bad_request")


def queued_requests() -> list[CrawlRequest]:
    sqs = boto3.client("sqs")
    url = os.environ["CRAWL_QUEUE_URL"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [CrawlRequest.from_body(m["Body"]) for m in messages]


def test_put_track_records_the_request_queues_the_crawl_and_answers_202(
    api, recorded_event, http_event, lambda_context
) -> None:
    track_id = recorded_event("api_put_track.json")["pathParameters"]["trackId"]

    status, body, _ = call(api, recorded_event("api_put_track.json"), lambda_context)

    assert status == 202 and body["trackId"] == track_id and body["status"] == "pending"
    assert [r.track_id for r in queued_requests()] == [track_id]
    item = TrackTable(os.environ["TRACKS_TABLE"]).get(track_id)
    assert item.status is Status.PENDING and item.requested_at == body["requestedAt"] and item.crawled_at == ""
    view_status, view, _ = call(api, http_event("GET", f"/tracks/{track_id}", route="/tracks/{trackId}"), lambda_context)
    assert view_status == 200 and view["status"] == "pending" and view["requestedAt"] == body["requestedAt"]


def test_a_second_put_of_a_waiting_track_queues_nothing_more(api, recorded_event, lambda_context) -> None:
    first, _, _ = call(api, recorded_event("api_put_track.json"), lambda_context)
    again, body, _ = call(api, recorded_event("api_put_track.json"), lambda_context)

    assert (first, again) == (202, 202) and body["message"] == "track is already waiting"
    assert len(queued_requests()) == 1


@pytest.mark.parametrize(
    ("existing", "http_status", "queued"),
    [
        ({"status": Status.READY}, 200, 0),
        ({"status": Status.FAILED, "error": "no preview found"}, 202, 1),
        # Its crawl died on the way (older than PENDING_STALE_AFTER_S): asked for again.
        ({"status": Status.PENDING, "crawled_at": "2020-01-01T00:00:00Z"}, 202, 1),
        ({"status": Status.PENDING, "crawled_at": "2999-01-01T00:00:00Z"}, 202, 0),
    ],
    ids=["ready", "failed", "stale-pending", "fresh-pending"],
)
def test_put_of_a_known_track_answers_its_state_and_queues_only_what_needs_a_crawl(
    api, recorded_event, lambda_context, existing, http_status, queued
) -> None:
    track_id = recorded_event("api_put_track.json")["pathParameters"]["trackId"]
    put_track(track_id, **existing)

    status, body, _ = call(api, recorded_event("api_put_track.json"), lambda_context)

    assert status == http_status and body["status"] == ("ready" if http_status == 200 else "pending")
    assert len(queued_requests()) == queued


def test_put_track_rejects_a_non_spotify_id_without_queueing(api, http_event, lambda_context) -> None:
    for track_id in ("short", "local-0123456789abcdef0123", "4uLU6hMCjMI75M1A2tKUQ_"):
        event = http_event("PUT", f"/tracks/{track_id}", route="/tracks/{trackId}")
        status, body, _ = call(api, event, lambda_context)
        assert status == 400
        assert_error(body, "invalid_track_id")
    assert queued_requests() == []


def test_put_track_is_503_when_the_request_cannot_be_queued(api, recorded_event, lambda_context) -> None:
    boto3.client("sqs").delete_queue(QueueUrl=os.environ["CRAWL_QUEUE_URL"])

    status, body, _ = call(api, recorded_event("api_put_track.json"), lambda_context)

    assert status == 503
    assert_error(body, "ingest_unavailable")
    assert "sqs" not in json.dumps(body).lower()


def test_openapi_document_is_served_as_is(api, http_event, lambda_context) -> None:
    status, body, _ = call(api, http_event("GET", "/openapi.json"), lambda_context)
    assert status == 200
    assert body == json.loads((REPO_ROOT / "api" / "openapi.json").read_text())
    assert body["openapi"].startswith("3.1")


def test_openapi_document_describes_exactly_the_routes_of_the_template_and_the_resolver(api) -> None:
    from api import by_audio_handler
    from infra.http_gateway import http_api_functions, routes_for_function
    from infra.template import load_template

    document = json.loads((REPO_ROOT / "api" / "openapi.json").read_text())
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item if method != "parameters"}
    template = load_template()
    # The document describes the whole HttpApi; each route goes to one function, and each
    # function's routes are exactly what its resolver serves (ApiWriteFunction runs ApiFunction's app).
    apps = {"ApiFunction": api.app, "ApiWriteFunction": api.app, "ByAudioFunction": by_audio_handler.app}
    assert set(http_api_functions(template)) == set(apps)
    template_routes, resolver_routes = set(), set()
    for app in {id(app): app for app in apps.values()}.values():
        routes: set[str] = set()
        for function in (name for name, served_by in apps.items() if served_by is app):
            # $default is API Gateway's catch-all for what no route matches (answered 404 / 405), not a documented route.
            own = {route.key for route in routes_for_function(template, function)} - {"$default"}
            assert not own & (routes | template_routes), f"{function} routes a path another function routes"
            routes |= own
        generated = app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)["paths"]
        served = {f"{method.upper()} {path}" for path, item in generated.items() for method in item}
        assert routes == served
        template_routes |= routes
        resolver_routes |= served
    assert documented == template_routes == resolver_routes


def test_unknown_route_and_unexpected_errors_are_json_errors(api, http_event, lambda_context) -> None:
    from api import deps

    status, body, _ = call(api, http_event("GET", "/nowhere"), lambda_context)
    assert status == 404
    assert_error(body, "route_not_found")

    class BrokenCache:
        def current(self) -> None:
            raise RuntimeError("database password is hunter2")

    override(api.app, deps.index_cache, BrokenCache())
    status, body, _ = call(api, http_event("GET", "/recommendations", {"trackId": "T000000000000000000001"}), lambda_context)
    assert status == 500
    assert_error(body, "internal_error")
    assert "hunter2" not in json.dumps(body)


def test_both_functions_answer_unknown_routes_wrong_methods_and_head_in_the_error_shape(
    api, http_event, lambda_context
) -> None:
    from api import by_audio_handler

    for function in (api, by_audio_handler):
        status, body, _ = call(function, http_event("GET", "/nowhere", route="$default"), lambda_context)
        assert status == 404, function.__name__
        assert_error(body, "route_not_found")
        # A path the other function routes: still a 405 naming that path's methods.
        status, body, headers = call(function, http_event("GET", "/recommendations/by-audio"), lambda_context)
        assert status == 405, function.__name__
        assert_error(body, "method_not_allowed")
        assert headers["Allow"] == "POST"
    head = by_audio_handler.lambda_handler(http_event("HEAD", "/recommendations/by-audio"), lambda_context)
    assert head["statusCode"] == 405 and head["body"] == ""
    get, head = (api.lambda_handler(http_event(method, "/health"), lambda_context) for method in ("GET", "HEAD"))
    assert head["statusCode"] == get["statusCode"] and get["body"] and head["body"] == ""


def test_cors_origin_comes_from_the_environment_and_get_never_imports_spotipy(tmp_path) -> None:
    script = """
import json, sys
from api.handler import lambda_handler
from infra.context import LocalLambdaContext
event = json.load(open(sys.argv[1]))
event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
event["routeKey"] = event["requestContext"]["routeKey"] = "GET /openapi.json"
event["headers"]["origin"] = "https://app.example.org"
response = lambda_handler(event, LocalLambdaContext(function_name="ApiFunction"))
print(json.dumps({"status": response["statusCode"], "headers": response["headers"],
                  "spotipy": "spotipy" in sys.modules, "crawler": "crawler.pipeline" in sys.modules}))
"""
    env = {
        **os.environ,
        "INDEX_BUCKET": "b",
        "TRACKS_TABLE": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CORS_ALLOW_ORIGIN": "https://app.example.org",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    out = subprocess.run(
        [sys.executable, "-c", script, str(REPO_ROOT / "tests" / "events" / "api_get_recommendations.json")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["headers"]["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert result["spotipy"] is False and result["crawler"] is False


def test_settings_are_read_per_request_and_what_they_build_is_kept(aws_env, monkeypatch) -> None:
    from api import deps

    first = deps.settings()
    assert (first.index_bucket, first.tracks_table) == (os.environ["INDEX_BUCKET"], os.environ["TRACKS_TABLE"])
    assert deps.index_cache(first) is deps.index_cache(deps.settings())
    assert deps.tracks_table(first) is deps.tracks_table(deps.settings())
    monkeypatch.setenv("INDEX_BUCKET", "another-bucket")
    monkeypatch.setenv("INDEX_RECHECK_S", "5")
    second = deps.settings()
    cache = deps.index_cache(second)
    assert (cache.bucket, cache.recheck_s) == ("another-bucket", 5.0)
    assert cache is not deps.index_cache(first)
