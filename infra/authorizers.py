"""Which authorizer guards each HttpApi route, for given template parameters, and API Gateway's
JWT authorizer played for the loopback gateway (its IAM authorizer is infra.sigv4).

A route's authorizer is its event's ``Auth.Authorizer``, else the ``security`` of its
operation in the HttpApi's DefinitionBody (where the protected routes take the WriteAuth
parameter's choice through Fn::If, which SAM does not resolve in an event's Auth), else the
HttpApi's DefaultAuthorizer, else none. Intrinsics are resolved as CloudFormation would,
with the parameters given over the template's defaults.

A JWT is checked as API Gateway documents it: the issuer's signing keys come from
``ISSUER/.well-known/openid-configuration`` (``jwks_uri``); the token's ``kid`` names the
key, RSA signatures only; ``iss`` must be the issuer; ``aud``, or ``client_id`` when the
token has no ``aud``, must be one of the audiences; ``exp`` must be in the future and
``nbf``/``iat`` not (the process clock, as PyJWT reads it). A refused token gets 401
``{"message":"Unauthorized"}`` with the reason in ``www-authenticate``.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from infra.resources import LOCAL_REGION, LOCAL_STACK_NAME, LocalResources, Resolver

NO_AUTH = "NONE"
IAM = "AWS_IAM"
JWT = "JWT"
# The template parameters that choose the protected routes' authorizer and configure the JWT one.
WRITE_AUTH_PARAMETER = "WriteAuth"
JWT_ISSUER_PARAMETER = "JwtIssuer"
JWT_AUDIENCE_PARAMETER = "JwtAudience"
# RSA only: API Gateway's JWT authorizer accepts no other signatures.
JWT_ALGORITHMS = ["RS256", "RS384", "RS512"]
DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TIMEOUT_S = 5.0
_AUTHORIZER_KEY = "x-amazon-apigateway-authorizer"
# An OpenAPI operation key for a route of method ANY.
ANY_METHOD_KEY = "x-amazon-apigateway-any-method"


class AuthorizerError(ValueError):
    """The template names an authorizer this module cannot read."""


class TokenError(Exception):
    """A request's bearer token is missing or refused (API Gateway answers 401)."""


@dataclass(frozen=True)
class Authorizer:
    """A route's authorizer: none, IAM (SigV4), or a JWT authorizer with its issuer and audiences."""

    kind: str = NO_AUTH
    issuer: str = ""
    audience: tuple[str, ...] = ()


OPEN = Authorizer(NO_AUTH)
SIGV4 = Authorizer(IAM)


def _resolver(template: Mapping[str, Any], parameters: Mapping[str, str]) -> Resolver:
    return Resolver(dict(template), LocalResources(), LOCAL_STACK_NAME, LOCAL_REGION, parameters=parameters)


def _http_api(template: Mapping[str, Any], event_props: Mapping[str, Any]) -> dict[str, Any]:
    api_ref = event_props.get("ApiId", {})
    name = api_ref.get("Ref", "") if isinstance(api_ref, dict) else ""
    return dict(template.get("Resources", {}).get(name, {}).get("Properties", {}))


def _named(api: Mapping[str, Any], name: str, resolver: Resolver) -> Authorizer:
    """The authorizer an event or a security requirement names, from the API's Auth or its securitySchemes."""
    if name == NO_AUTH:
        return OPEN
    if name == IAM:
        return SIGV4
    jwt_config: Any = api.get("Auth", {}).get("Authorizers", {}).get(name, {}).get("JwtConfiguration")
    if jwt_config is None:
        schemes = api.get("DefinitionBody", {}).get("components", {}).get("securitySchemes", {})
        scheme = resolver.resolve(schemes.get(name)) or {}
        settings = scheme.get(_AUTHORIZER_KEY, {})
        if str(settings.get("type", "")).lower() == "jwt":
            jwt_config = settings.get("jwtConfiguration")
    if jwt_config is None:
        raise AuthorizerError(f"authorizer {name!r} is neither AWS_IAM nor a JWT authorizer of the HttpApi")
    jwt_config = resolver.resolve(jwt_config)
    return Authorizer(JWT, str(jwt_config.get("issuer", "")), tuple(str(a) for a in jwt_config.get("audience", [])))


def body_security(template: Mapping[str, Any], event_props: Mapping[str, Any],
                  parameters: Mapping[str, str] | None = None) -> list[dict[str, Any]] | None:
    """The resolved ``security`` of the route's operation in its HttpApi's DefinitionBody, or None."""
    api = _http_api(template, event_props)
    path = str(event_props.get("Path", "/{proxy+}"))
    method = str(event_props.get("Method", "ANY")).lower()
    method = ANY_METHOD_KEY if method == "any" else method
    operation = api.get("DefinitionBody", {}).get("paths", {}).get(path, {}).get(method)
    if not isinstance(operation, dict) or "security" not in operation:
        return None
    return _resolver(template, parameters or {}).resolve(operation["security"])


def route_authorizer(template: Mapping[str, Any], event_props: Mapping[str, Any],
                     parameters: Mapping[str, str] | None = None) -> Authorizer:
    """The authorizer API Gateway puts on an HttpApi event's route, with ``parameters`` over the defaults."""
    resolver = _resolver(template, parameters or {})
    api = _http_api(template, event_props)
    name = event_props.get("Auth", {}).get("Authorizer")
    if name is None:
        security = body_security(template, event_props, parameters)
        if security:
            # Alternatives are not used here: one requirement, one authorizer.
            (name,) = security[0]
    if name is None:
        name = api.get("Auth", {}).get("DefaultAuthorizer", NO_AUTH)
    return _named(api, str(name), resolver)


def _claim_string(value: Any) -> str:
    # API Gateway passes claims to the integration as strings; arrays as "[a b]".
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return value if isinstance(value, str) else json.dumps(value)


class JwtVerifier:
    """Checks bearer tokens for one JWT authorizer; the issuer's keys are fetched on first use and kept."""

    def __init__(self, authorizer: Authorizer) -> None:
        if authorizer.kind != JWT or not authorizer.issuer or not authorizer.audience:
            raise AuthorizerError(f"a JWT authorizer needs an issuer and an audience: {authorizer}")
        self.authorizer = authorizer
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def _key_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._keys is None:
                url = self.authorizer.issuer.rstrip("/") + DISCOVERY_PATH
                try:
                    with urllib.request.urlopen(url, timeout=DISCOVERY_TIMEOUT_S) as response:  # noqa: S310
                        jwks_uri = json.load(response)["jwks_uri"]
                except (OSError, ValueError, KeyError) as exc:
                    raise TokenError(f"the issuer's keys cannot be read from {url}: {exc}") from None
                self._keys = jwt.PyJWKClient(jwks_uri, timeout=int(DISCOVERY_TIMEOUT_S))
            return self._keys

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """requestContext.authorizer.jwt for the request's Authorization header, or TokenError saying why not."""
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise TokenError("the request has no bearer token")
        try:
            key = self._key_client().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=JWT_ALGORITHMS, issuer=self.authorizer.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.PyJWKClientError as exc:
            raise TokenError(f"the token's signing key is not the issuer's: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"the token is not valid: {exc}") from None
        # API Gateway checks client_id only when the token has no aud.
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if not set(map(str, audiences)) & set(self.authorizer.audience):
            raise TokenError("the token does not have a valid audience")
        scope = claims.get("scope")
        return {
            "claims": {name: _claim_string(value) for name, value in claims.items()},
            "scopes": scope.split() if isinstance(scope, str) else None,
        }
