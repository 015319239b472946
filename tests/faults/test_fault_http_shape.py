"""Rows "100 KB query string, 70 KB header", "unknown routes, wrong methods, HEAD",
"Content-Length: abc or -5", "PUT with no Spotify credentials": every answer is JSON in
the documented {"error": {"code", "message"}} shape, from the real ApiFunction behind
the loopback gateway (routes from template.yaml). PUT is asynchronous (202, then the
crawler): missing Spotify credentials are the failed track's reason, "not_configured: set
...", at GET /tracks/{id}; a setting the API itself lacks is a 503 not_configured."""

from __future__ import annotations

import http.client
import json
import re
import socket
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from catalog.records import Source, TrackRecord
from catalog.storage import TrackTable
from crawler.pipeline import default_crawler
from infra.pump import SqsPoller
from infra.resources import LOCAL_REGION
from infra.sigv4 import sign
from infra.stack import LocalStack
from infra.template import REPO_ROOT

SPOTIFY_ID = "4uLU6hMCjMI75M1A2tKUQC"
UNKNOWN_SPOTIFY_ID = "0000000000000000000000"
OPENAPI = json.loads((REPO_ROOT / "api" / "openapi.json").read_text())


def assert_error(response: requests.Response | tuple[int, dict[str, str], bytes], status: int, code: str) -> dict:
    if isinstance(response, requests.Response):
        got_status, headers, body = response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content
    else:
        got_status, headers, body = response
    assert got_status == status, body
    assert headers["content-type"] == "application/json"
    parsed = json.loads(body)
    assert set(parsed) == {"error"} and set(parsed["error"]) == {"code", "message"}
    assert parsed["error"]["code"] == code
    assert not re.search(r"<[\w.]+ object at 0x[0-9a-f]+>", parsed["error"]["message"])
    return parsed["error"]


def raw_request(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client would send; read the answer with http.client's parser."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def test_a_100_kb_query_string_is_a_json_414(api_url: str) -> None:
    response = requests.get(f"{api_url}/recommendations?trackId={'a' * 100_000}", timeout=10)
    assert_error(response, 414, "uri_too_long")


def test_a_70_kb_header_is_a_json_431(api_url: str) -> None:
    response = requests.get(f"{api_url}/health", headers={"X-Big": "b" * 70_000}, timeout=10)
    assert_error(response, 431, "headers_too_large")


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_a_malformed_content_length_is_a_json_400_not_a_dropped_connection(api_url: str, length: str) -> None:
    request = f"PUT /tracks/{SPOTIFY_ID} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    error = assert_error(raw_request(api_url, request), 400, "bad_request")
    assert "Content-Length" in error["message"]


@pytest.mark.parametrize("path", ["/tracks", "/nowhere", "/tracks/a/b", "/recommendations/extra", "/app/a/b"])
def test_unknown_routes_are_404_in_the_documented_shape(api_url: str, path: str) -> None:
    assert_error(requests.get(api_url + path, timeout=10), 404, "route_not_found")


def documented_methods(template_path: str) -> set[str]:
    methods = {m.upper() for m in OPENAPI["paths"][template_path] if m != "parameters"}
    return methods | ({"HEAD"} if "GET" in methods else set())


@pytest.mark.parametrize(("method", "path", "template_path"), [
    ("POST", "/recommendations", "/recommendations"),
    ("DELETE", f"/tracks/{SPOTIFY_ID}", "/tracks/{trackId}"),
    ("PATCH", "/health", "/health"),
    ("PUT", "/openapi.json", "/openapi.json"),
    ("POST", "/", "/"),
    # ByAudioFunction's path: API Gateway's $default brings the GET to ApiFunction.
    ("GET", "/recommendations/by-audio", "/recommendations/by-audio"),
])
def test_wrong_methods_are_405_with_allow(api_url: str, method: str, path: str, template_path: str) -> None:
    response = requests.request(method, api_url + path, timeout=10)
    assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == documented_methods(template_path)


@pytest.mark.parametrize("path", ["/health", "/openapi.json", f"/tracks/{SPOTIFY_ID}", "/recommendations?trackId=x", "/"])
def test_head_answers_what_get_answers_without_a_body(stack: LocalStack, api_url: str, path: str) -> None:
    TrackTable(stack.resources.refs["TracksTable"]).put_pending(TrackRecord(track_id=SPOTIFY_ID, source=Source.SPOTIFY))
    get = requests.get(api_url + path, timeout=10)
    head = requests.head(api_url + path, timeout=10)
    assert get.status_code != 404 or get.json()["error"]["code"] != "route_not_found"
    assert head.status_code == get.status_code
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.content == b""


def test_put_without_spotify_credentials_fails_the_track_as_not_configured_naming_the_setting(
    stack: LocalStack, api_url: str
) -> None:
    """PUT only queues the request (202); the crawler, which holds the Spotify credentials, finds
    them missing and marks the track failed with the setting to fix: not a 502 blaming Spotify."""
    url = f"{api_url}/tracks/{UNKNOWN_SPOTIFY_ID}"
    put = requests.put(url, headers=sign("PUT", url, boto3.session.Session().get_credentials(), LOCAL_REGION), timeout=30)
    assert put.status_code == 202, put.text
    assert requests.get(url, timeout=10).json()["status"] == "pending"

    (poller,) = stack.pollers(only={"CrawlerFunction"})
    assert isinstance(poller, SqsPoller)
    default_crawler.cache_clear()  # the crawler of this stack, as a fresh container builds it
    try:
        batch = poller.poll_once(wait_s=1)
    finally:
        default_crawler.cache_clear()
    assert (batch.succeeded, batch.failed) == (1, 0)  # settled: retrying cannot fix configuration
    track = requests.get(url, timeout=10).json()
    assert track["status"] == "failed"
    assert track["error"].startswith("not_configured: set ")
    assert "SPOTIFY_SECRET_ID" in track["error"] and "client_id" in track["error"]


def test_a_setting_the_api_lacks_is_a_503_not_configured_naming_it(
    api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.routes import tracks

    tracks._crawl_queue_on.cache_clear()
    monkeypatch.delenv("CRAWL_QUEUE_URL")
    url = f"{api_url}/tracks/{UNKNOWN_SPOTIFY_ID}"
    response = requests.put(url, headers=sign("PUT", url, boto3.session.Session().get_credentials(), LOCAL_REGION), timeout=30)
    error = assert_error(response, 503, "not_configured")
    assert "CRAWL_QUEUE_URL" in error["message"]
