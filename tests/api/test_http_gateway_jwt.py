"""The loopback gateway under WriteAuth=jwt refuses a protected write without a valid bearer
token (API Gateway's 401) and passes one signed by the issuer's key; under WriteAuth=iam it
keeps SigV4. Routes and authorizers come from template.yaml; the issuer is a loopback
OpenID provider serving its discovery document and JWKS, and counts what it is asked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
import requests
from botocore.credentials import Credentials
from cryptography.hazmat.primitives.asymmetric import rsa

from infra.http_gateway import serve, shutdown
from infra.sigv4 import sign

AUDIENCE = "soundslike-web"
TRACK_URL = "/tracks/4uLU6hMCjMI75M1A2tKUQC"
SECRETS = {"AKIDLOCAL": "local-secret"}


class RecordingHandler:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        return {"statusCode": 202, "body": "{}"}


@dataclass
class Issuer:
    """A loopback OpenID provider: /.well-known/openid-configuration names its JWKS, which holds one RSA key."""

    url: str
    key: rsa.RSAPrivateKey
    kid: str = "key-1"
    requests: list[str] = field(default_factory=list)

    def token(self, key: rsa.RSAPrivateKey | None = None, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "sub": "listener-1", "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state: dict[str, Issuer] = {}

    class Provider(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = state["issuer"]
            found.requests.append(self.path)
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": found.url, "jwks_uri": f"{found.url}/jwks.json"}
            elif self.path == "/jwks.json":
                public = jwt.algorithms.RSAAlgorithm.to_jwk(found.key.public_key(), as_dict=True)
                body = {"keys": [{**public, "kid": found.kid, "use": "sig", "alg": "RS256"}]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["issuer"] = Issuer(f"http://127.0.0.1:{server.server_address[1]}", key)
    try:
        yield state["issuer"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def jwt_gateway(issuer: Issuer) -> Iterator[tuple[str, RecordingHandler]]:
    handler = RecordingHandler()
    parameters = {"WriteAuth": "jwt", "JwtIssuer": issuer.url, "JwtAudience": AUDIENCE}
    server, thread = serve(handler, parameters=parameters, secrets=SECRETS)  # routes from template.yaml
    try:
        yield "http://{}:{}".format(*server.server_address[:2]), handler
    finally:
        shutdown(server, thread)


def _put(url: str, token: str | None = None, **headers: str) -> requests.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.put(f"{url}{TRACK_URL}", headers=headers, timeout=5)


def test_a_write_without_a_bearer_token_is_refused_with_401_and_never_reaches_the_function(jwt_gateway) -> None:
    url, handler = jwt_gateway
    response = _put(url)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert handler.events == []


def test_a_sigv4_signature_does_not_pass_the_jwt_authorizer(jwt_gateway) -> None:
    url, handler = jwt_gateway
    headers = sign("PUT", f"{url}{TRACK_URL}", Credentials("AKIDLOCAL", "local-secret"), "us-east-1")
    response = requests.put(f"{url}{TRACK_URL}", headers=headers, timeout=5)
    assert response.status_code == 401
    assert handler.events == []


def test_a_token_signed_by_the_issuer_reaches_the_function_with_its_claims(jwt_gateway, issuer: Issuer) -> None:
    url, handler = jwt_gateway
    response = _put(url, issuer.token(scope="history/write profile"))
    assert response.status_code == 202
    (event,) = handler.events
    assert event["routeKey"] == "PUT /tracks/{trackId}"
    authorizer = event["requestContext"]["authorizer"]["jwt"]
    assert authorizer["claims"]["sub"] == "listener-1"
    assert authorizer["claims"]["iss"] == issuer.url
    assert authorizer["scopes"] == ["history/write", "profile"]
    # The issuer's keys are read once and kept, as API Gateway caches them.
    assert _put(url, issuer.token(sub="listener-2")).status_code == 202
    assert issuer.requests == ["/.well-known/openid-configuration", "/jwks.json"]


def test_an_access_token_without_aud_is_matched_by_its_client_id(jwt_gateway, issuer: Issuer) -> None:
    url, handler = jwt_gateway
    assert _put(url, issuer.token(aud=None, client_id=AUDIENCE)).status_code == 202
    assert _put(url, issuer.token(aud=None, client_id="another-app")).status_code == 401
    assert len(handler.events) == 1


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda issuer: issuer.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
         "the token is not valid"),
        (lambda issuer: issuer.token(kid="unknown-key"), "signing key is not the issuer's"),
        (lambda issuer: issuer.token(aud="another-app"), "does not have a valid audience"),
        (lambda issuer: issuer.token(iss="https://elsewhere.example"), "the token is not valid"),
        (lambda issuer: issuer.token(exp=int(time.time()) - 60), "the token is not valid"),
        (lambda issuer: issuer.token(exp=None), "the token is not valid"),
        (lambda issuer: issuer.token()[:-4] + "AAAA", "the token is not valid"),
    ],
    ids=["other-key", "unknown-kid", "wrong-audience", "wrong-issuer", "expired", "no-exp", "tampered"],
)
def test_a_token_the_authorizer_cannot_trust_is_refused_with_its_reason(jwt_gateway, issuer: Issuer, make, reason) -> None:
    url, handler = jwt_gateway
    response = _put(url, make(issuer))
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert reason in response.headers["www-authenticate"]
    assert handler.events == []


def test_listener_routes_stay_open_under_the_jwt_choice(jwt_gateway) -> None:
    url, handler = jwt_gateway
    assert requests.post(f"{url}/stations", json={}, timeout=5).status_code == 202
    assert requests.get(f"{url}{TRACK_URL}", timeout=5).status_code == 202
    assert [event["routeKey"] for event in handler.events] == ["POST /stations", "GET /tracks/{trackId}"]
    assert all("authorizer" not in event["requestContext"] for event in handler.events)


def test_the_default_iam_choice_keeps_sigv4_and_refuses_a_bearer_token(issuer: Issuer) -> None:
    handler = RecordingHandler()
    server, thread = serve(handler, secrets=SECRETS)  # template.yaml's defaults: WriteAuth=iam
    url = "http://{}:{}".format(*server.server_address[:2])
    try:
        assert _put(url, issuer.token()).status_code == 403
        assert _put(url).status_code == 403
        headers = sign("PUT", f"{url}{TRACK_URL}", Credentials("AKIDLOCAL", "local-secret"), "us-east-1")
        assert requests.put(f"{url}{TRACK_URL}", headers=headers, timeout=5).status_code == 202
        (event,) = handler.events
        assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKIDLOCAL"
        assert issuer.requests == []
    finally:
        shutdown(server, thread)
