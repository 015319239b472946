"""The page's upload box in a real browser: a clip dropped on it (or chosen) goes to
POST /recommendations/by-audio, and a copy of an indexed clip finds that very track first."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import requests
from webstack import ServedCatalogue, ids, open_view, shot

pytestmark = [pytest.mark.model, pytest.mark.stack]


def _results(response: Any) -> list[str]:
    assert response.status == 200
    return [r["trackId"] for r in response.json()["results"]]


def _api_by_audio(served: ServedCatalogue, clip: Path) -> list[str]:
    """The API's own answer for a clip: the query is a pure function of the bytes."""
    response = requests.post(
        served.url + "/recommendations/by-audio", data=clip.read_bytes(), headers={"content-type": "audio/mpeg"}, timeout=60
    )
    assert response.status_code == 200, response.text
    return [r["trackId"] for r in response.json()["results"]]


def test_a_dropped_clip_is_found_first(page: Any, served: ServedCatalogue) -> None:
    clip = served.clips[13]
    open_view(page, "/")
    data = base64.b64encode(clip.path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "audio/mpeg" }));
            return transfer;
        }""",
        [data, clip.path.name],
    )
    with page.expect_response("**/recommendations/by-audio*") as answer:
        page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expected = _results(answer.value)
    assert answer.value.request.headers["content-type"] == "audio/mpeg"
    page.wait_for_selector("#upload-list")
    assert ids(page, "#upload-list") == expected
    assert expected[0] == clip.track_id
    shot(page, "upload")


def test_a_chosen_file_is_found_first(page: Any, served: ServedCatalogue) -> None:
    clip = served.clips[14]
    open_view(page, "/")
    with page.expect_response("**/recommendations/by-audio*") as answer:
        page.set_input_files("#upload-input", str(clip.path))
    # Chromium keeps no body of the answer to this upload of a file on disk (CDP: "evicted from inspector
    # cache", with the page still on "/"; the dropped in-memory File's answer reads fine), so the page's
    # list is checked against the API's answer for the same bytes.
    assert answer.value.status == 200
    assert answer.value.request.headers["content-type"] == "audio/mpeg"
    page.wait_for_selector("#upload-list")
    expected = _api_by_audio(served, clip.path)
    assert ids(page, "#upload-list") == expected and expected[0] == clip.track_id
