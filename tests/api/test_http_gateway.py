"""The loopback gateway turns HTTP requests into API Gateway v2 events and writes replies back as API Gateway does."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from infra.context import LocalLambdaContext
from infra.http_gateway import (
    CorsConfig,
    Route,
    cors_for_function,
    routes_for_function,
    serve,
    shutdown,
)
from infra.template import load_template

ROUTES = [Route.parse("GET", "/tracks/{trackId}"), Route.parse("PUT", "/tracks/{trackId}"), Route.parse("GET", "/echo")]


class RecordingHandler:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.reply: Any = {"statusCode": 200, "body": "{}"}
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self.lock:
            self.events.append(event)
            self.contexts.append(context)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.fixture
def gateway() -> Iterator[tuple[str, RecordingHandler]]:
    handler = RecordingHandler()
    server, thread = serve(handler, routes=ROUTES)
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}", handler
    finally:
        shutdown(server, thread)
    assert not thread.is_alive()


def test_get_reaches_handler_as_v2_event_and_reply_comes_back(gateway: tuple[str, RecordingHandler]) -> None:
    url, handler = gateway
    handler.reply = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Trace": "abc"},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": json.dumps({"ok": True}),
        "isBase64Encoded": False,
    }
    response = requests.get(
        f"{url}/tracks/abc%20d?k=5&tag=rock&tag=jazz&empty=",
        headers={"X-Custom-Header": "Value", "Cookie": "session=s1; theme=dark"},
        timeout=5,
    )
    assert response.status_code == 201
    assert response.json() == {"ok": True}
    assert response.headers["x-trace"] == "abc"
    assert response.raw.headers.getlist("set-cookie") == ["a=1; Path=/", "b=2"]
    assert response.headers["apigw-requestid"]

    (event,) = handler.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /tracks/{trackId}"
    assert event["rawPath"] == "/tracks/abc%20d"
    assert event["rawQueryString"] == "k=5&tag=rock&tag=jazz&empty="
    assert event["queryStringParameters"] == {"k": "5", "tag": "rock,jazz", "empty": ""}
    assert event["pathParameters"] == {"trackId": "abc d"}
    assert event["cookies"] == ["session=s1", "theme=dark"]
    assert event["headers"]["x-custom-header"] == "Value"
    assert "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is False and "body" not in event
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "GET",
        "path": "/tracks/abc%20d",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": response.request.headers["User-Agent"],
    }
    assert ctx["routeKey"] == "GET /tracks/{trackId}"
    assert ctx["stage"] == "$default"
    assert ctx["requestId"] and isinstance(ctx["timeEpoch"], int)
    assert ctx["domainName"] == url.removeprefix("http://")
    context = handler.contexts[0]
    assert context.function_name == "ApiFunction"
    assert 0 < context.get_remaining_time_in_millis() <= 29_000
    assert context.invoked_function_arn.endswith(":function:ApiFunction")


def test_event_has_the_keys_of_the_recorded_api_gateway_event(
    gateway: tuple[str, RecordingHandler], recorded_event: Callable[[str], dict[str, Any]]
) -> None:
    url, handler = gateway
    requests.get(f"{url}/tracks/4uLU6hMCjMI75M1A2tKUQC", timeout=5)
    recorded = recorded_event("api_get_track.json")
    (event,) = handler.events
    assert set(event) == set(recorded)
    assert set(event["requestContext"]) == set(recorded["requestContext"])
    assert set(event["requestContext"]["http"]) == set(recorded["requestContext"]["http"])


def test_request_matching_no_route_is_404_without_calling_the_handler(gateway: tuple[str, RecordingHandler]) -> None:
    url, handler = gateway
    for method, path in (("GET", "/nowhere"), ("DELETE", "/tracks/x"), ("GET", "/tracks/x/y"), ("GET", "/tracks/")):
        response = requests.request(method, url + path, timeout=5)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"message": "Not Found"}
    assert handler.events == []


def test_binary_request_body_is_base64_and_base64_reply_is_decoded(gateway: tuple[str, RecordingHandler]) -> None:
    url, handler = gateway
    payload = bytes(range(256))
    handler.reply = {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": base64.b64encode(payload[::-1]).decode(),
        "isBase64Encoded": True,
    }
    response = requests.put(
        f"{url}/tracks/x", data=payload, headers={"content-type": "application/octet-stream"}, timeout=5
    )
    assert response.content == payload[::-1]
    assert handler.events[0]["isBase64Encoded"] is True
    assert base64.b64decode(handler.events[0]["body"]) == payload

    requests.put(f"{url}/tracks/x", json={"a": "é"}, timeout=5)
    assert handler.events[1]["isBase64Encoded"] is False
    assert json.loads(handler.events[1]["body"]) == {"a": "é"}


def test_reply_without_status_code_is_a_200_json_body(gateway: tuple[str, RecordingHandler]) -> None:
    url, handler = gateway
    handler.reply = {"hello": "world"}
    response = requests.get(f"{url}/echo", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"hello": "world"}


def test_handler_that_raises_is_a_500_internal_server_error(gateway: tuple[str, RecordingHandler]) -> None:
    url, handler = gateway
    handler.reply = RuntimeError("boom: secret detail")
    response = requests.get(f"{url}/echo", timeout=5)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert "secret" not in response.text


def test_routes_come_from_the_api_function_in_template_yaml() -> None:
    template = load_template()
    routes = {route.key for route in routes_for_function(template, "ApiFunction")}
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    # An HttpApi event without Path and Method is API Gateway's $default route.
    declared = {
        f"{e['Properties']['Method']} {e['Properties']['Path']}" if "Path" in e["Properties"] else "$default"
        for e in events
        if e["Type"] == "HttpApi"
    }
    assert routes == declared
    assert {"GET /recommendations", "GET /health", "PUT /tracks/{trackId}", "POST /stations/{stationId}/next", "GET /map",
            "$default"} <= routes


def test_exact_route_wins_over_parameter_and_greedy_routes() -> None:
    events = {
        f"E{i}": {"Type": "HttpApi", "Properties": {"Method": method, "Path": path}}
        for i, (method, path) in enumerate([("ANY", "/{proxy+}"), ("GET", "/tracks/{id}"), ("GET", "/tracks/top")])
    }
    template = {"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Events": events}}}}
    routes = routes_for_function(template, "Fn")
    matched = next(r for r in routes if r.match("GET", "/tracks/top") is not None)
    assert matched.key == "GET /tracks/top"
    assert Route.parse("ANY", "/{proxy+}").match("POST", "/a/b/c") == {"proxy": "a/b/c"}


def test_lambda_context_counts_down() -> None:
    context = LocalLambdaContext(function_name="ApiFunction", timeout_s=1.0)
    assert 0 < context.get_remaining_time_in_millis() <= 1000
    assert context.aws_request_id != LocalLambdaContext(function_name="ApiFunction").aws_request_id


def test_cors_comes_from_template_yaml_and_preflight_is_answered_by_the_gateway() -> None:
    handler = RecordingHandler()
    handler.reply = {"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "https://evil.example"}, "body": "{}"}
    declared = load_template()["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert cors_for_function(load_template(), "ApiFunction") == CorsConfig(
        allow_origins=("*",), allow_methods=tuple(declared["AllowMethods"]), allow_headers=("content-type",), max_age_s=600
    )
    assert {"GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"} == set(declared["AllowMethods"])
    server, thread = serve(handler)  # routes and CORS from template.yaml
    url = "http://{}:{}".format(*server.server_address[:2])
    try:
        preflight = requests.options(
            f"{url}/tracks/4uLU6hMCjMI75M1A2tKUQC",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"},
            timeout=5,
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert preflight.headers["access-control-allow-methods"] == ",".join(declared["AllowMethods"])
        assert preflight.headers["access-control-allow-headers"] == "content-type"
        assert preflight.headers["access-control-max-age"] == "600"
        assert handler.events == []
        response = requests.get(f"{url}/health", headers={"Origin": "https://app.example"}, timeout=5)
        assert response.headers["access-control-allow-origin"] == "*"
        assert len(handler.events) == 1
    finally:
        shutdown(server, thread)


def test_cors_only_for_listed_origins() -> None:
    handler = RecordingHandler()
    cors = CorsConfig(allow_origins=("https://ok.example",))
    server, thread = serve(handler, routes=ROUTES, cors=cors)
    url = "http://{}:{}".format(*server.server_address[:2])
    try:
        ok = requests.get(f"{url}/echo", headers={"Origin": "https://ok.example"}, timeout=5)
        other = requests.get(f"{url}/echo", headers={"Origin": "https://other.example"}, timeout=5)
        assert ok.headers["access-control-allow-origin"] == "https://ok.example"
        assert "access-control-allow-origin" not in other.headers
    finally:
        shutdown(server, thread)
