"""The small rendered demo catalogue through the whole local stack, served on the loopback gateway,
and headless Debian Chromium driven by Playwright: what the page's browser tests run against.

``python tests/web/webstack.py`` serves it until Ctrl-C (for looking at the page while developing).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

CHROMIUM = "/usr/bin/chromium"
# Chromium on a machine with no network but loopback: no background connections, no GPU, no sandbox (root in CI).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INDEX_WAIT_S = 120.0
# The first upload builds musicnn in ByAudioFunction's handler (and loads TensorFlow, if nothing has): allow a loaded machine.
WARM_UP_S = 300.0
READY = "body[data-ready=true]"
TIMEOUT_MS = 20_000
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / ".local" / "screenshots"


@dataclass(frozen=True)
class Clip:
    track_id: str
    title: str
    instrument: str
    composer: str
    path: Path


@dataclass(frozen=True)
class ServedCatalogue:
    url: str
    clips: list[Clip]


class Console:
    """Every console error and uncaught exception of a page; a test names the ones it expects."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))


def open_view(page: Any, path: str) -> None:
    page.goto(path)
    page.wait_for_selector(READY)


def ids(page: Any, selector: str) -> list[str]:
    """data-track-id of the elements under ``selector``, in document order."""
    return page.eval_on_selector_all(f"{selector} [data-track-id]", "els => els.map(e => e.dataset.trackId)")


def shot(page: Any, name: str, full_page: bool = True) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=full_page)


def api(served: ServedCatalogue, path: str, **params: Any) -> dict[str, Any]:
    """The API's own answer, to compare the page with."""
    response = requests.get(served.url + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def recommended(served: ServedCatalogue, track_id: str) -> list[str]:
    return [r["trackId"] for r in api(served, "/recommendations", trackId=track_id)["results"]]


def chromium_path() -> str:
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found is None:
        raise RuntimeError("Debian's chromium is not installed; `make install` installs it (apt-get install chromium)")
    return found


def warm_by_audio(url: str, clip: Clip) -> None:
    """One upload before any page does one, as a provisioned-concurrency container would already be warm:
    a page's upload then takes the time of a query, not that of building the model as well."""
    response = requests.post(
        url + "/recommendations/by-audio", data=clip.path.read_bytes(), headers={"content-type": "audio/mpeg"}, timeout=WARM_UP_S
    )
    assert response.status_code == 200, response.text


@contextmanager
def served_catalogue() -> Iterator[ServedCatalogue]:
    """Render (or reuse) the small catalogue, crawl, extract and index it on a fresh local stack, serve the API."""
    from catalog.keys import local_track_id
    from crawler.pipeline import cli_crawler, crawl_sources
    from demo.catalog import build
    from infra.cli import drain_extract_queue
    from infra.http_gateway import shutdown
    from infra.stack import running_stack

    folder = build("small", None, progress=False).folder
    clips = [
        Clip(local_track_id((folder / c["file"]).read_bytes()), c["title"], c["instrument"], c["composer"], folder / c["file"])
        for c in json.loads((folder / "catalogue.json").read_text())["clips"]
    ]
    with running_stack() as stack:
        pump = stack.pump(only={"AnnoyServiceFunction"})
        pump.start()
        gateway = None
        try:
            summary = crawl_sources(cli_crawler(), [str(folder)])
            if summary.new + summary.known != len(clips):
                raise AssertionError(f"the crawl took {summary.new + summary.known} of {len(clips)} clips: {summary.format()}")
            report = drain_extract_queue(stack)
            if report.dead:
                raise AssertionError(f"{report.dead} clips were dead-lettered by the extractor")
            stack.wait_for_index(timeout_s=INDEX_WAIT_S, count=len(clips))
            gateway = stack.serve_api(host="127.0.0.1", port=0)
            url = f"http://127.0.0.1:{gateway[0].server_address[1]}"
            warm_by_audio(url, clips[0])
            yield ServedCatalogue(url, clips)
        finally:
            if gateway is not None:
                shutdown(*gateway)
            pump.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    with served_catalogue() as served:
        print(f"serving the page at {served.url}/", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
