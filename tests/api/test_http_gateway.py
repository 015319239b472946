"""The loopback gateway turns HTTP requests into API Gateway v2 events and writes replies back as API Gateway does."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
import requests
from botocore.credentials import Credentials

from infra.authorizers import OPEN, SIGV4
from infra.context import LocalLambdaContext
from infra.http_gateway import (
    CorsConfig,
    Route,
    RouteError,
    cors_for_function,
    routes_for_function,
    routes_of_api,
    same_code_functions,
    serve,
    shutdown,
)
from infra.sigv4 import sign
from infra.template import functions, load_template

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


def test_routes_come_from_every_function_in_template_yaml_with_their_function_and_authorizer() -> None:
    template = load_template()
    every = functions(template)
    # An HttpApi event without Path and Method is API Gateway's $default route.
    expected = {
        (f"{event['Properties']['Method']} {event['Properties']['Path']}" if "Path" in event["Properties"] else "$default"): name
        for name, function in every.items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    open_routes = {route for function in every.values() for route in function.get("Metadata", {}).get("OpenRoutes", [])}
    routes = {route.key: (route.function, route.auth) for route in routes_of_api(template)}
    assert {key: function for key, (function, _) in routes.items()} == expected
    # By default (WriteAuth=iam) every write that is not a listener route needs SigV4; the rest are open.
    for key, (_, auth) in routes.items():
        protected = key.split()[0] not in ("GET", "HEAD", "OPTIONS") and key not in open_routes
        assert auth == (SIGV4 if protected else OPEN), key
    assert routes["PUT /tracks/{trackId}"] == ("ApiWriteFunction", SIGV4)
    assert routes["GET /tracks/{trackId}"] == ("ApiFunction", OPEN)
    # The stations' writes are open listener routes, on the function whose role may write.
    assert routes["POST /stations/{stationId}/next"] == ("ApiWriteFunction", OPEN)
    assert routes["GET /stations/{stationId}"] == ("ApiFunction", OPEN)
    # Every request no route matches reaches ApiFunction, which answers 404 / 405 in the documented shape.
    assert routes["$default"] == ("ApiFunction", OPEN)


def test_a_function_running_the_same_handler_is_served_by_it_and_a_route_without_a_handler_is_refused() -> None:
    # ApiWriteFunction is ApiFunction's code with another role: serve(api handler) answers its routes too.
    assert same_code_functions(load_template(), "ApiFunction") == ["ApiWriteFunction"]
    with pytest.raises(RouteError, match="WriteFn"):
        serve(RecordingHandler(), routes=PROTECTED, function_name="ReadFn")


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
    configured = load_template()["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    methods = tuple(configured["AllowMethods"])
    allow_headers = tuple(h.lower() for h in configured["AllowHeaders"])
    assert "authorization" in allow_headers and "x-amz-date" in allow_headers  # a page may sign its writes
    assert cors_for_function(load_template(), "ApiFunction") == CorsConfig(
        allow_origins=("*",), allow_methods=methods, allow_headers=allow_headers, max_age_s=600
    )
    assert {"GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"} == set(methods)
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
        assert preflight.headers["access-control-allow-methods"] == ",".join(methods)
        assert preflight.headers["access-control-allow-headers"] == ",".join(allow_headers)
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


# ---------------------------------------------------------------- SigV4 on protected routes

PROTECTED = [Route.parse("PUT", "/tracks/{trackId}", "WriteFn", SIGV4), Route.parse("GET", "/tracks/{trackId}", "ReadFn")]
SECRETS = {"AKIDLOCAL": "local-secret"}
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def protected(request: pytest.FixtureRequest) -> Iterator[tuple[str, RecordingHandler, list[datetime]]]:
    handler = RecordingHandler()
    clock = [NOW]
    server, thread = serve(handler, routes=PROTECTED, function_name="ReadFn", also={"WriteFn": handler},
                           secrets=SECRETS, clock=lambda: clock[0])
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}", handler, clock
    finally:
        shutdown(server, thread)


def _signed(url: str, secret: str = "local-secret", at: datetime = NOW, body: bytes = b"") -> dict[str, str]:
    with freeze_signing_time(at):
        return sign("PUT", url, Credentials("AKIDLOCAL", secret), "us-east-1", body)


@contextmanager
def freeze_signing_time(at: datetime) -> Iterator[None]:
    # botocore stamps X-Amz-Date from its clock; the gateway's clock is injected as well.
    with patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        yield


def test_an_unsigned_write_is_refused_by_the_gateway_and_never_reaches_the_function(protected) -> None:
    url, handler, _ = protected
    response = requests.put(f"{url}/tracks/4uLU6hMCjMI75M1A2tKUQC", timeout=5)
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}
    assert handler.events == []


def test_a_signed_write_reaches_its_function_with_the_iam_identity(protected) -> None:
    url, handler, _ = protected
    target = f"{url}/tracks/4uLU6hMCjMI75M1A2tKUQC?x=1"
    response = requests.put(target, data=b'{"a": 1}', headers=_signed(target, body=b'{"a": 1}'), timeout=5)
    assert response.status_code == 200
    (event,) = handler.events
    assert event["routeKey"] == "PUT /tracks/{trackId}"
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKIDLOCAL"
    assert handler.contexts[0].function_name == "WriteFn"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda url, headers: (url, _signed(url, secret="wrong")), "signature we calculated does not match"),
        (lambda url, headers: (url + "?tampered=1", headers), "signature we calculated does not match"),
        (lambda url, headers: (url, {**headers, "Authorization": headers["Authorization"].replace("AKIDLOCAL", "AKIDOTHER")}),
         "security token included in the request is invalid"),
        (lambda url, headers: (url, _signed(url, at=NOW - timedelta(minutes=6))), "Signature expired"),
    ],
    ids=["wrong-secret", "tampered-query", "unknown-key", "expired"],
)
def test_a_badly_signed_write_is_refused_with_api_gateways_reason(protected, mutate, message) -> None:
    url, handler, _ = protected
    target = f"{url}/tracks/4uLU6hMCjMI75M1A2tKUQC"
    sent_url, headers = mutate(target, _signed(target))
    response = requests.put(sent_url, headers=headers, timeout=5)
    assert response.status_code == 403 and message in response.json()["message"]
    assert handler.events == []


def test_open_routes_need_no_signature(protected) -> None:
    url, handler, _ = protected
    assert requests.get(f"{url}/tracks/4uLU6hMCjMI75M1A2tKUQC", timeout=5).status_code == 200
    assert handler.contexts[0].function_name == "ReadFn"
