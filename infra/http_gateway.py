"""A loopback HTTP server that plays API Gateway HTTP API (payload format 2.0) in front of a handler.

Each request becomes the event API Gateway would send (routeKey from the
route that matched, lower-cased headers, comma-joined repeated query keys,
cookies split out, base64 for binary bodies); the handler runs in-process, one
invocation at a time as in a single Lambda container (Powertools' resolver keeps
the request being resolved on the app object, so concurrent invocations in one
process would trample each other), and its reply is written back the way API
Gateway writes it. The routes come from
the HttpApi events of the template's functions, so a path the deployment
does not route gets the same 404 here as there (an event without Path and
Method is the API's ``$default`` route, which catches every other request).
Each route has the authorizer the template gives it for the parameters served
(infra.authorizers): an IAM route refuses a request that is not SigV4-signed by
a local credential with API Gateway's 403 (verified with botocore's signer, see
infra.sigv4), a JWT route one without a valid bearer token from its issuer with
API Gateway's 401.

Requests API Gateway would refuse before any route (a request line or headers
beyond http.server's limits, a malformed Content-Length, a body over 10 MB)
get a JSON error here. In AWS, API Gateway's own limits answer them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3

from infra.authorizers import IAM, JWT, NO_AUTH, OPEN, Authorizer, JwtVerifier, TokenError, route_authorizer
from infra.context import LocalLambdaContext
from infra.resources import LOCAL_ACCOUNT_ID
from infra.sigv4 import Principal, SignatureError, verify
from infra.template import functions, load_template

Handler = Callable[[dict[str, Any], Any], Any]

LOCAL_API_ID = "local"
# The function whose CORS settings and context a route without its own function gets.
API_FUNCTION = "ApiFunction"
DEFAULT_TIMEOUT_S = 29.0
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
DEFAULT_ROUTE = "$default"
NOT_FOUND_BODY = b'{"message":"Not Found"}'
INTERNAL_ERROR_BODY = b'{"message":"Internal Server Error"}'
TOO_LARGE_BODY = b'{"message":"Request Entity Too Large"}'
UNAUTHORIZED_BODY = b'{"message":"Unauthorized"}'
# Codes of the errors the gateway itself answers, as {"error": {"code", "message"}}.
_ERROR_CODES = {400: "bad_request", 408: "request_timeout", 413: "payload_too_large", 414: "uri_too_long",
                431: "headers_too_large", 501: "not_implemented", 505: "http_version_not_supported"}
_CONTENT_LENGTH = re.compile(r"^[0-9]{1,19}$")

# API Gateway passes these content types to the integration as text; anything else is base64.
_TEXT_CONTENT_TYPE = re.compile(
    r"^(text/.*|application/(json|xml|javascript|x-www-form-urlencoded|[\w.+-]+\+(json|xml)))$"
)
_PATH_PARAM = re.compile(r"\{([A-Za-z0-9_]+)(\+?)\}")
# Hop-by-hop headers the server writes itself.
_SKIPPED_RESPONSE_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})


class RouteError(ValueError):
    """A route in template.yaml this gateway cannot play."""


@dataclass(frozen=True)
class Route:
    """One HttpApi route: method (or ANY) and path template, e.g. GET /tracks/{trackId}."""

    method: str
    path: str
    pattern: re.Pattern[str] = field(compare=False, repr=False)
    # The template function API Gateway invokes, and the route's authorizer (OPEN: none).
    function: str = field(default="", compare=False)
    auth: Authorizer = field(default=OPEN, compare=False)

    @classmethod
    def parse(cls, method: str, path: str, function: str = "", auth: Authorizer = OPEN) -> Route:
        if path == DEFAULT_ROUTE:
            return cls("ANY", DEFAULT_ROUTE, re.compile(r"^.*$", re.DOTALL), function, auth)
        method = method.upper()
        if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
            method = "ANY"
        if not path.startswith("/"):
            raise RouteError(f"route path must start with '/': {path!r}")
        regex, pos = "", 0
        for match in _PATH_PARAM.finditer(path):
            regex += re.escape(path[pos:match.start()])
            name, greedy = match.group(1), match.group(2)
            regex += f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)"
            pos = match.end()
        regex += re.escape(path[pos:])
        return cls(method, path, re.compile(f"^{regex}$"), function, auth)

    @property
    def key(self) -> str:
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        found = self.pattern.match(path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


def http_api_functions(template: Mapping[str, Any]) -> list[str]:
    """The template's functions that answer HttpApi routes, ApiFunction first."""
    names = [
        name
        for name, function in functions(dict(template)).items()
        if any(event.get("Type") == "HttpApi" for event in function["Properties"].get("Events", {}).values())
    ]
    return sorted(names, key=lambda name: name != API_FUNCTION)


def same_code_functions(template: Mapping[str, Any], function_name: str) -> list[str]:
    """The HttpApi functions that run ``function_name``'s handler (ApiWriteFunction runs ApiFunction's code)."""
    every = functions(dict(template))
    handler = every.get(function_name, {}).get("Properties", {}).get("Handler")
    return [
        name for name in http_api_functions(template)
        if name != function_name and handler is not None and every[name]["Properties"].get("Handler") == handler
    ]


def routes_for_function(template: Mapping[str, Any], function_name: str,
                        parameters: Mapping[str, str] | None = None) -> list[Route]:
    """The HttpApi routes of one function in template.yaml, most specific first, with their
    authorizers as deployed with ``parameters`` (over the template's defaults)."""
    function = functions(dict(template)).get(function_name)
    if function is None:
        raise RouteError(f"template.yaml has no function {function_name!r}")
    routes = []
    for event in function["Properties"].get("Events", {}).values():
        if event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties", {})
        auth = route_authorizer(template, props, parameters)
        if "Path" not in props and "Method" not in props:
            routes.append(Route.parse("ANY", DEFAULT_ROUTE, function_name, auth))  # SAM's default route
        else:
            routes.append(Route.parse(props.get("Method", "ANY"), props.get("Path", "/{proxy+}"), function_name, auth))
    if not routes:
        raise RouteError(f"function {function_name!r} has no HttpApi events in template.yaml")
    return _most_specific_first(routes)


def routes_of_api(template: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> list[Route]:
    """Every HttpApi route of every function in template.yaml, most specific first."""
    routes = [route for name in http_api_functions(template)
              for route in routes_for_function(template, name, parameters)]
    if not routes:
        raise RouteError("template.yaml routes no HttpApi event to any function")
    return _most_specific_first(routes)


def _most_specific_first(routes: Iterable[Route]) -> list[Route]:
    # API Gateway prefers exact paths over parameters, parameters over greedy ones, a method over ANY,
    # and tries $default only when no other route matches.
    return sorted(routes, key=lambda r: (r.path == DEFAULT_ROUTE, r.path.count("+}"), r.path.count("{"),
                                         r.method == "ANY", -len(r.path)))


@dataclass(frozen=True)
class CorsConfig:
    """An HttpApi CorsConfiguration. With it, API Gateway answers preflights itself and sets the CORS headers."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ("*",)
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_s: int | None = None
    allow_credentials: bool = False

    def allowed_origin(self, origin: str) -> str | None:
        if "*" in self.allow_origins:
            return "*"
        return origin if origin in self.allow_origins else None


def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    """A template value with {"Ref": parameter} replaced by the parameter's default."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameters.get(value["Ref"], {}).get("Default", value["Ref"])
    if isinstance(value, list):
        return [_resolve(v, parameters) for v in value]
    return value


def cors_for_function(template: Mapping[str, Any], function_name: str) -> CorsConfig | None:
    """The CorsConfiguration of the HttpApi that routes to the function, parameters at their defaults."""
    function = functions(dict(template)).get(function_name)
    if function is None:
        raise RouteError(f"template.yaml has no function {function_name!r}")
    resources = template.get("Resources", {})
    parameters = template.get("Parameters", {})
    for event in function["Properties"].get("Events", {}).values():
        if event.get("Type") != "HttpApi":
            continue
        api_ref = event["Properties"].get("ApiId", {})
        api = resources.get(api_ref.get("Ref", "")) if isinstance(api_ref, dict) else None
        cors = (api or {}).get("Properties", {}).get("CorsConfiguration")
        if not cors:
            continue
        cors = {k: _resolve(v, parameters) for k, v in cors.items()}
        return CorsConfig(
            allow_origins=tuple(str(o) for o in cors.get("AllowOrigins", ())),
            allow_methods=tuple(str(m).upper() for m in cors.get("AllowMethods", ("*",))),
            allow_headers=tuple(str(h).lower() for h in cors.get("AllowHeaders", ())),
            expose_headers=tuple(str(h).lower() for h in cors.get("ExposeHeaders", ())),
            max_age_s=int(cors["MaxAge"]) if "MaxAge" in cors else None,
            allow_credentials=bool(cors.get("AllowCredentials", False)),
        )
    return None


def _is_text(content_type: str) -> bool:
    return bool(_TEXT_CONTENT_TYPE.match(content_type.split(";", 1)[0].strip().lower()))


def build_event(
    *,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    route: Route,
    path_parameters: Mapping[str, str],
    source_ip: str,
    protocol: str = "HTTP/1.1",
) -> dict[str, Any]:
    """The API Gateway HTTP API payload format 2.0 event for one request."""
    parts = urlsplit(target)
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-proto", "http")
    now = datetime.now(UTC)
    request_id = secrets.token_urlsafe(12)
    joined.setdefault("x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}")

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": joined,
    }
    if cookies:
        event["cookies"] = cookies
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": LOCAL_ACCOUNT_ID,
        "apiId": LOCAL_API_ID,
        "domainName": joined.get("host", "127.0.0.1"),
        "domainPrefix": joined.get("host", "127.0.0.1").split(".", 1)[0],
        "http": {
            "method": method,
            "path": parts.path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if body:
        if _is_text(joined.get("content-type", "")):
            try:
                event["body"] = body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    return event


@dataclass
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def parse_response(result: Any) -> GatewayResponse:
    """A handler's return value as API Gateway (format 2.0) turns it into HTTP."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # API Gateway's inference: anything without a statusCode is a 200 JSON body.
        body = result if isinstance(result, str) else json.dumps(result)
        return GatewayResponse(200, [("content-type", "application/json")], body.encode())
    headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
    if not any(name.lower() == "content-type" for name, _ in headers) and body:
        headers.append(("content-type", "application/json"))
    return GatewayResponse(int(result["statusCode"]), headers, body)


class _GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handlers: Mapping[str, Handler],
        routes: list[Route],
        cors: CorsConfig | None,
        function_name: str,
        quiet: bool,
        secrets: Mapping[str, str],
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(address, _RequestHandler)
        self.handlers = dict(handlers)
        self.routes = routes
        self.cors = cors
        self.function_name = function_name
        self.quiet = quiet
        # One lock for every function: functions that share a handler share its app object in this process.
        self.invocation_lock = threading.Lock()
        self.secrets = secrets
        self.clock = clock
        # One verifier per JWT authorizer: it keeps the issuer's keys, as API Gateway caches them.
        self.jwt_verifiers = {route.auth: JwtVerifier(route.auth) for route in routes if route.auth.kind == JWT}


class _RequestHandler(BaseHTTPRequestHandler):
    server: _GatewayServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait ~40 ms for each reply.
    disable_nagle_algorithm = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (request line or headers too long, bad syntax) as JSON, not HTML."""
        text = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"error": {"code": _ERROR_CODES.get(code, "bad_request"), "message": text}},
                          separators=(",", ":")).encode()
        self.close_connection = True
        self.send_response(code, message)
        self.send_header("content-type", "application/json")
        self.send_header("connection", "close")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if getattr(self, "command", None) != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _dispatch(self) -> None:
        raw_length = (self.headers.get("content-length") or "0").strip()
        if not _CONTENT_LENGTH.match(raw_length):
            self.send_error(400, "Content-Length must be a non-negative whole number of bytes")
            return
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            self._reply(GatewayResponse(413, [("content-type", "application/json")], TOO_LARGE_BODY))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        method = self.command.upper()
        path = urlsplit(self.path).path
        if method == "OPTIONS" and self.server.cors is not None and "access-control-request-method" in self.headers:
            # With CORS configured, API Gateway answers every preflight itself, before routing.
            self._reply(GatewayResponse(204, [], b""), preflight=True)
            return
        for route in self.server.routes:
            params = route.match(method, path)
            if params is not None:
                break
        else:
            self._reply(GatewayResponse(404, [("content-type", "application/json")], NOT_FOUND_BODY))
            return
        authorizer: dict[str, Any] | None = None
        if route.auth.kind == IAM:
            try:
                principal = verify(method, f"http://{self.headers.get('host', '')}{self.path}",
                                   {k.lower(): v for k, v in self.headers.items()}, body,
                                   self.server.secrets, self.server.clock)
            except SignatureError as exc:
                # API Gateway's IAM authorizer answers an unsigned or badly signed request itself.
                message = json.dumps({"message": str(exc)}).encode()
                self._reply(GatewayResponse(403, [("content-type", "application/json")], message))
                return
            authorizer = {"iam": _iam_identity(principal)}
        elif route.auth.kind == JWT:
            try:
                authorizer = {"jwt": self.server.jwt_verifiers[route.auth].verify(self.headers.get("authorization"))}
            except TokenError as exc:
                # API Gateway's JWT authorizer: 401, the reason in www-authenticate only.
                reason = str(exc).replace('"', "'")
                challenge = f'Bearer scope="" error="invalid_token" error_description="{reason}"'
                self._reply(GatewayResponse(401, [("content-type", "application/json"), ("www-authenticate", challenge)],
                                            UNAUTHORIZED_BODY))
                return
        elif route.auth.kind != NO_AUTH:
            raise RouteError(f"route {route.key}: authorizer {route.auth!r} is not played locally")
        event = build_event(
            method=method,
            target=self.path,
            headers=self.headers.items(),
            body=body,
            route=route,
            path_parameters=params,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        if authorizer is not None:
            event["requestContext"]["authorizer"] = authorizer
        function_name = route.function or self.server.function_name
        context = LocalLambdaContext(function_name=function_name, timeout_s=DEFAULT_TIMEOUT_S)
        try:
            with self.server.invocation_lock:
                result = self.server.handlers[function_name](event, context)
            response = parse_response(result)
        except Exception:  # a crashed invocation is a 500, as API Gateway answers it
            self.log_error("handler raised for %s %s", method, path)
            response = GatewayResponse(500, [("content-type", "application/json")], INTERNAL_ERROR_BODY)
        self._reply(response)

    def _cors_headers(self, preflight: bool) -> list[tuple[str, str]]:
        cors = self.server.cors
        origin = self.headers.get("origin")
        allowed = cors.allowed_origin(origin) if cors is not None and origin else None
        if cors is None or allowed is None:
            return []
        headers = [("access-control-allow-origin", allowed)]
        if cors.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        if preflight:
            headers.append(("access-control-allow-methods", ",".join(cors.allow_methods)))
            if cors.allow_headers:
                headers.append(("access-control-allow-headers", ",".join(cors.allow_headers)))
            if cors.max_age_s is not None:
                headers.append(("access-control-max-age", str(cors.max_age_s)))
        elif cors.expose_headers:
            headers.append(("access-control-expose-headers", ",".join(cors.expose_headers)))
        return headers

    def _reply(self, response: GatewayResponse, preflight: bool = False) -> None:
        self.send_response(response.status)
        headers = response.headers
        if self.server.cors is not None:
            # API Gateway ignores the integration's CORS headers and sets its own.
            headers = [h for h in headers if not h[0].lower().startswith("access-control-")]
            headers += self._cors_headers(preflight)
        for name, value in headers:
            if name.lower() not in _SKIPPED_RESPONSE_HEADERS:
                self.send_header(name, value)
        self.send_header("apigw-requestid", secrets.token_urlsafe(12))
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.quiet:
            return
        super().log_message(format, *args)


def _iam_identity(principal: Principal) -> dict[str, Any]:
    """requestContext.authorizer.iam as API Gateway fills it for a SigV4-signed request."""
    return {
        "accessKey": principal.access_key,
        "accountId": LOCAL_ACCOUNT_ID,
        "callerId": principal.access_key,
        "principalOrgId": None,
        "userArn": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/local",
        "userId": principal.access_key,
    }


def local_secrets() -> dict[str, str]:
    """The credentials this process has (the local stack's, or the tests'): the keys a signature may use."""
    credentials = boto3.session.Session().get_credentials()
    if credentials is None:
        return {}
    frozen = credentials.get_frozen_credentials()
    return {frozen.access_key: frozen.secret_key}


def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    routes: list[Route] | None = None,
    *,
    cors: CorsConfig | None = None,
    function_name: str = API_FUNCTION,
    quiet: bool = True,
    also: Mapping[str, Handler] | None = None,
    secrets: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    parameters: Mapping[str, str] | None = None,
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the gateway in a daemon thread; ``server.server_address`` has the bound port.

    Stop it with :func:`shutdown`. Without ``routes``, the routes (with their
    authorizers) and the CORS configuration are the function's in template.yaml,
    plus those of each function in ``also`` (name → handler), which answer them, as
    API Gateway sends each route to its own integration; a function that runs the
    same handler as ``function_name`` (ApiWriteFunction) is answered by ``handler``
    unless ``also`` names it. ``parameters`` are the template parameters deployed
    (``{"WriteAuth": "jwt", "JwtIssuer": ..., "JwtAudience": ...}``), over its defaults.
    Signed requests are checked against ``secrets`` (access key -> secret key), by
    default the credentials of this process.
    """
    also = dict(also or {})
    if routes is None:
        template = load_template()
        handlers = {name: handler for name in same_code_functions(template, function_name)}
        handlers.update(also)
        handlers[function_name] = handler
        routes = _most_specific_first(route for name in handlers
                                      for route in routes_for_function(template, name, parameters))
        cors = cors if cors is not None else cors_for_function(template, function_name)
    else:
        handlers = {**also, function_name: handler}
    for route in routes:
        if (route.function or function_name) not in handlers:
            raise RouteError(f"no handler given for {route.function}, which route {route.key} goes to")
    server = _GatewayServer((host, port), handlers, routes, cors, function_name, quiet,
                            local_secrets() if secrets is None else secrets, clock)
    thread = threading.Thread(target=server.serve_forever, name=f"http-gateway-{function_name}", daemon=True)
    thread.start()
    return server, thread


def shutdown(server: ThreadingHTTPServer, thread: threading.Thread, timeout_s: float = 5.0) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout_s)
