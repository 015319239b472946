"""pytest plugin: every AWS call a template function makes during the tests must be allowed by its policy.

Each botocore client gets a ``before-parameter-build`` hook (service, operation,
parameters, region). The call is attributed to the template function whose
handler is on the calling thread's stack (worker threads inherit the function
of the thread that submitted them), to the one routed by the event's
``routeKey`` when functions share a handler; calls outside any handler (test
set-up, CLIs, the pump playing Lambda) are not a function's. infra.iam decides
each call against the function's statements in the translated template, with
the names the code was given by its environment. A denied call fails the test
that made it, naming the function, the action, the resource and the template
resource to grant it on. The functions, handlers and routes come from
template.yaml, so functions and routes added later are checked the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import botocore.session
import pytest

from infra.http_gateway import routes_of_api
from infra.iam import Decision, PolicyChecker
from infra.pump import handler_path
from infra.template import functions, load_template

_inherited: contextvars.ContextVar[str | None] = contextvars.ContextVar("iam_function", default=None)


@dataclass(frozen=True)
class Call:
    """One recorded call of a function, with the environment values its policy resolves against."""

    function: str
    service: str
    region: str
    operation: str
    params: dict[str, Any]
    env: dict[str, str]


@dataclass(frozen=True)
class Denial:
    function: str
    decision: Decision
    operation: str
    logical_id: str | None

    def message(self) -> str:
        request = self.decision.request
        target = f"!GetAtt {self.logical_id}.Arn (or the ARN above)" if self.logical_id else repr(request.resource)
        return (
            f"{self.function} called {self.operation}, which needs {request.describe()}, and its policy in "
            f"template.yaml does not allow it ({self.decision.reason}). Add to {self.function}'s Policies: "
            f"Effect: Allow, Action: [{request.action}], Resource: {target}."
        )


@dataclass
class Recorder:
    checker: PolicyChecker
    # (module, function name) of each handler -> the template functions using it, with their routes.
    handlers: dict[tuple[str, str], list[str]]
    routes: dict[str, str]
    calls: Counter[str] = field(default_factory=Counter)
    denials: list[Denial] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _captures: list[list[Call]] = field(default_factory=list)

    def function_on_stack(self) -> str | None:
        frame = sys._getframe(1)
        found = None
        while frame is not None:
            names = self.handlers.get((frame.f_globals.get("__name__", ""), frame.f_code.co_name))
            if names:
                found = self._one_of(names, frame.f_locals.get("event"))
            frame = frame.f_back
        return found or _inherited.get()

    def _one_of(self, names: list[str], event: Any) -> str:
        if len(names) == 1:
            return names[0]
        route = event.get("routeKey") if isinstance(event, dict) else None
        if route in self.routes:
            return self.routes[route]
        raise AssertionError(f"handler shared by {names} got an event whose routeKey {route!r} none of them routes")

    def on_call(self, service: str, region: str, operation: str, params: dict[str, Any]) -> None:
        function = self.function_on_stack()
        if function is None:
            return
        decisions = self.checker.check(function, service, operation, params, region, os.environ)
        with self._lock:
            self.calls[function] += 1
            for capture in self._captures:
                capture.append(Call(function, service, region, operation, dict(params), dict(os.environ)))
            for decision in decisions:
                if not decision.allowed:
                    logical = self.checker.logical_id_of(function, decision.request.resource, os.environ, region)
                    self.denials.append(Denial(function, decision, f"{service}:{operation}", logical))

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[Call]]:
        """The calls functions make inside the block (besides being checked as always)."""
        calls: list[Call] = []
        with self._lock:
            self._captures.append(calls)
        try:
            yield calls
        finally:
            with self._lock:
                self._captures.remove(calls)

    def take_denials(self) -> list[Denial]:
        with self._lock:
            taken, self.denials = self.denials, []
        return taken


def _build_recorder() -> Recorder:
    template = load_template()
    handlers: dict[tuple[str, str], list[str]] = {}
    for name, function in functions(template).items():
        module, _, attr = handler_path(function).rpartition(".")
        handlers.setdefault((module, attr), []).append(name)
    # The routeKey API Gateway puts in the event ("$default" for the catch-all) -> the function it invokes.
    routes = {route.key: route.function for route in routes_of_api(template)}
    return Recorder(PolicyChecker(), handlers, routes)


def _instrument(recorder: Recorder) -> None:
    original_create_client = botocore.session.Session.create_client

    def create_client(self: botocore.session.Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original_create_client(self, service_name, *args, **kwargs)
        region = client.meta.region_name
        service = client.meta.service_model.service_name

        def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
            recorder.on_call(service, region, model.name, params)

        client.meta.events.register("before-parameter-build.*.*", hook)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]

    original_submit = ThreadPoolExecutor.submit

    def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        owner = recorder.function_on_stack()

        def run(*a: Any, **k: Any) -> Any:
            token = _inherited.set(owner)
            try:
                return fn(*a, **k)
            finally:
                _inherited.reset(token)

        return original_submit(self, run, *args, **kwargs)

    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]


_recorder: Recorder | None = None


def recorder() -> Recorder:
    assert _recorder is not None, "the IAM recorder plugin is not loaded"
    return _recorder


def pytest_configure(config: pytest.Config) -> None:
    global _recorder
    _recorder = _build_recorder()
    _instrument(_recorder)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if call.when != "teardown" or _recorder is None:
        return
    denials = _recorder.take_denials()
    if denials:
        unique = list(dict.fromkeys(d.message() for d in denials))
        report.outcome = "failed"
        report.longrepr = "AWS calls not allowed by template.yaml (tests/iam_recorder.py):\n- " + "\n- ".join(unique)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _recorder is not None and _recorder.calls:
        checked = ", ".join(f"{name} {count}" for name, count in sorted(_recorder.calls.items()))
        terminalreporter.write_line(f"IAM: AWS calls checked against template.yaml per function: {checked}")
