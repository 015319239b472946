"""The fault suite (issue 12): each row of the hostile probe's table as a test, through the real handlers.

Every test in this folder is marked ``faults`` (run alone with ``pytest -m faults``) and
runs in `make test`. They drive the loopback gateway and the event pump against a moto
server on 127.0.0.1, as a user's `make up` would; none takes more than a few seconds.

Rows and where their tests live:

- bad LATEST.json, wrong-shape LATEST, garbage tracks.ann, missing manifest, the API's
  index folder: ``test_fault_index_*.py`` (index self-healing)
- .m3u symlink loop, empty or random files in a crawled folder, moto killed mid-crawl
  (the crawl's part): ``test_fault_crawl_*.py`` (crawl isolation)
- float wav of huge amplitude, the ExtractDLQ, a killed extractor, moto down for status
  and GET /tracks, oversize URL and headers, malformed Content-Length, unknown routes,
  wrong methods and HEAD, PUT without Spotify credentials, object reprs in errors, and
  `make down` / `make up`: the other ``test_fault_*.py`` files here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.stack import LocalStack, running_stack

FAULTS_DIR = Path(__file__).resolve().parent
HANDLER_MODULES = ("api.handler", "api.by_audio_handler")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FAULTS_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """A moto server with template.yaml's resources; this process points at it."""
    with running_stack() as local:
        yield local


@pytest.fixture(scope="module")
def api_url(stack: LocalStack) -> Iterator[str]:
    """Every HttpApi function behind the loopback gateway, routes from template.yaml, against ``stack``."""
    from infra.http_gateway import shutdown

    # The handlers read their settings at import, as in Lambda: import them with this stack's environment.
    for name in HANDLER_MODULES:
        sys.modules.pop(name, None)
    server, thread = stack.serve_api()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        shutdown(server, thread)
        for name in HANDLER_MODULES:
            sys.modules.pop(name, None)
