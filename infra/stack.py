"""The local stack: moto in server mode on 127.0.0.1 + the template's resources + the event pump.

No AWS account and no Docker: moto runs as a child process (server mode), the
resources come from template.yaml, and the handlers run in this process,
called by the pump (infra.pump) and the loopback HTTP gateway (infra.http_gateway).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from infra.pump import (
    LOCAL_VISIBILITY_S,
    EventPump,
    Handler,
    Invoker,
    SqsMapping,
    SqsPoller,
    StreamMapping,
    StreamPoller,
    handler_path,
    load_handler,
    mappings_from_template,
)
from infra.resources import LOCAL_REGION, LOCAL_STACK_NAME, LocalResources, LocalStackBuilder
from infra.template import REPO_ROOT, TEMPLATE_PATH, functions, load_template

LOCAL_ENV_FILE = REPO_ROOT / "config" / "local.env"
MOTO_START_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
log = logging.getLogger("infra.stack")

# Set per function at import time; every other variable is the same for all functions.
PER_FUNCTION_VARIABLES = frozenset({"POWERTOOLS_SERVICE_NAME"})
_import_lock = threading.Lock()


def read_env_file(path: Path = LOCAL_ENV_FILE) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        values[key.strip()] = value.strip().strip('"')
    return values


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    """In the moto child: be sent SIGTERM when the stack's process dies, even by SIGKILL (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class MotoServer:
    """moto_server as a child process: its state is apart from any in-process moto mock."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None) -> None:
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError("the local stack binds to loopback only")
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + MOTO_START_TIMEOUT_S
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self.process.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"moto server did not open {self.endpoint} in {MOTO_START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class LocalStack:
    """The template's resources in a moto server, and the means to run its functions locally."""

    def __init__(self, template_path: Path = TEMPLATE_PATH, stack_name: str = LOCAL_STACK_NAME,
                 host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None) -> None:
        self.template = load_template(template_path)
        self.stack_name = stack_name
        self.moto = MotoServer(host, port, log_path)
        self.resources = LocalResources()
        self.base_env = read_env_file()

    @property
    def endpoint(self) -> str:
        return self.moto.endpoint

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=LOCAL_REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def start(self) -> LocalStack:
        self.moto.start()
        try:
            self.resources = LocalStackBuilder(self.template, self.client, self.stack_name).build()
        except Exception:
            self.moto.stop()
            raise
        return self

    def stop(self) -> None:
        self.moto.stop()

    def env(self) -> dict[str, str]:
        """What a process needs to reach the stack: base settings, endpoint, every function's variables."""
        env: dict[str, str] = {}
        for variables in self.resources.function_env.values():
            env.update({k: v for k, v in variables.items() if k not in PER_FUNCTION_VARIABLES})
        env.update(self.base_env)  # config/local.env overrides the template's tunables locally
        env["AWS_ENDPOINT_URL"] = self.endpoint
        return env

    def apply_env(self) -> None:
        """Point this process (boto3 and the handlers it imports) at the stack."""
        os.environ.update(self.env())
        _forget_clients()

    def handler(self, function: str) -> Handler:
        """Import a template function's handler with the variables it would see at import in Lambda."""
        path = handler_path(functions(self.template)[function])
        per_function = {k: v for k, v in self.resources.function_env[function].items() if k in PER_FUNCTION_VARIABLES}
        with _import_lock:
            saved = {k: os.environ.get(k) for k in per_function}
            os.environ.update(per_function)
            try:
                return load_handler(path)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    def wait_for_index(self, count: int, timeout_s: float = 120.0, poll_s: float = 0.5) -> dict[str, Any]:
        """LATEST.json once it names an index of ``count`` tracks; AssertionError after ``timeout_s``."""
        import json

        from catalog.keys import LATEST_KEY

        s3 = self.client("s3")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                latest = json.loads(s3.get_object(Bucket=self.resources.refs["IndexBucket"], Key=LATEST_KEY)["Body"].read())
                if latest["count"] == count:
                    return latest
            except s3.exceptions.NoSuchKey:
                pass
            time.sleep(poll_s)
        raise AssertionError(f"no index of {count} tracks was published within {timeout_s:.0f} s")

    def serve_api(self, host: str = "127.0.0.1", port: int = 0, quiet: bool = True,
                  parameters: Mapping[str, str] | None = None) -> tuple[Any, threading.Thread]:
        """The loopback HTTP API: every HttpApi route in the template, each answered by its own
        function, guarded as deployed with the template ``parameters`` (WriteAuth, JwtIssuer, JwtAudience)."""
        from infra.http_gateway import API_FUNCTION, http_api_functions, serve

        handlers = {name: self.handler(name) for name in http_api_functions(self.template)}
        api = handlers.pop(API_FUNCTION)
        return serve(api, host=host, port=port, quiet=quiet, also=handlers, parameters=parameters)

    def timeouts(self) -> dict[str, float]:
        return {name: float(f["Properties"].get("Timeout", 3)) for name, f in functions(self.template).items()}

    def pollers(self, only: set[str] | None = None, handlers: dict[str, Handler] | None = None,
                retry_delay_s: float = 1.0, visibility_s: int = LOCAL_VISIBILITY_S) -> list[SqsPoller | StreamPoller]:
        """Pollers for the template's event source mappings (optionally of some functions only).

        ``handlers`` replaces the real handler of a function (tests use it to record events).
        """
        mappings = [m for m in mappings_from_template(self.template, self.resources, self.stack_name)
                    if only is None or m.function in only]
        resolved = dict(handlers or {})
        for mapping in mappings:
            if mapping.function not in resolved:
                resolved[mapping.function] = self.handler(mapping.function)
        invoker = Invoker(resolved, self.timeouts())
        pollers: list[SqsPoller | StreamPoller] = []
        for mapping in mappings:
            if isinstance(mapping, SqsMapping):
                pollers.append(SqsPoller(mapping, self.client("sqs"), invoker, retry_delay_s=retry_delay_s,
                                         visibility_s=visibility_s))
            elif isinstance(mapping, StreamMapping):
                pollers.append(StreamPoller(mapping, self.client("dynamodbstreams"), self.client("sqs"), invoker))
        return pollers

    def pump(self, only: set[str] | None = None, handlers: dict[str, Handler] | None = None) -> EventPump:
        return EventPump(self.pollers(only, handlers))


# Objects a handler module builds once per container from boto3 clients (module, function).
_CONTAINER_CACHES = (
    ("extractor.handler", "extraction"),
    ("dead_letters.handler", "dead_letters"),
    ("annoy_service.handler", "dependencies"),
    ("api.deps", "_index_cache_for"),
    ("api.deps", "_table_on"),
    ("api.routes.tracks", "_crawl_queue_on"),
    ("api.routes.history", "_listens_on"),
    ("api.routes.history", "_train_queue_on"),
    ("history.train_handler", "_index_cache"),
    ("api.routes.stations", "_stations_on"),
    ("api.routes.web", "_lookup_for"),
    ("crawler.pipeline", "default_crawler"),
)


def _forget_clients() -> None:
    """Drop the cached boto3 clients, and what handlers built from them: they hold the endpoint they were made with.

    A new stack in the same process is a new set of Lambda containers: without this, a handler
    imported for an earlier stack keeps talking to that stack's (stopped) moto server.
    """
    from catalog import storage

    storage.client.cache_clear()
    storage.signing_client.cache_clear()
    storage.resource.cache_clear()
    for module_name, function in _CONTAINER_CACHES:
        module = sys.modules.get(module_name)
        if module is not None:
            getattr(module, function).cache_clear()


@contextmanager
def running_stack(log_path: Path | None = None) -> Iterator[LocalStack]:
    """A started stack with this process pointed at it; on exit the stack stops and the environment is restored."""
    saved = dict(os.environ)
    stack = LocalStack(log_path=log_path).start()
    try:
        stack.apply_env()
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
        _forget_clients()
