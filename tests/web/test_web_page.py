"""The web page in a real browser: headless Debian Chromium driven by Playwright, against the small
rendered demo catalogue crawled, extracted and indexed through the local stack.

Every test compares what the page renders (its data-track-id elements) with the API's own answer,
and fails on any console error the page did not expect. Screenshots go to .local/screenshots/.
"""

from __future__ import annotations

import math
import subprocess
from collections import Counter
from html.parser import HTMLParser
from typing import Any

import pytest
import requests
from webstack import (
    CHROMIUM_FLAGS,
    READY,
    Console,
    ServedCatalogue,
    api,
    chromium_path,
    ids,
    open_view,
    recommended,
    shot,
)

pytestmark = [pytest.mark.model, pytest.mark.stack]

DUMP_DOM_BUDGET_MS = 5_000


def test_track_view_lists_the_apis_recommendations_in_order_with_tags(page: Any, served: ServedCatalogue) -> None:
    query = served.clips[0]
    open_view(page, f"/?track={query.track_id}")

    expected = recommended(served, query.track_id)
    assert ids(page, "#recommendations") == expected
    assert len(expected) == 10 and query.track_id not in expected, "the API's default k, the query left out"
    body = api(served, "/recommendations", trackId=query.track_id)
    assert page.inner_text("#track-title") == body["query"]["title"]
    assert page.locator("#tags li").count() == len(body["query"]["tags"])
    bars = page.locator("#recommendations .similarity .bar-value").all_inner_texts()
    assert bars == [f"{r['similarity']:.3f}" for r in body["results"]]
    shot(page, "track")


def test_clicking_a_recommendation_opens_it_and_play_plays_its_audio(page: Any, served: ServedCatalogue) -> None:
    query = served.clips[1]
    open_view(page, f"/?track={query.track_id}")
    first = ids(page, "#recommendations")[0]

    page.click(f'#recommendations [data-track-id="{first}"] a.title')
    page.wait_for_url(f"**/?track={first}")
    page.wait_for_selector(READY)
    assert ids(page, "#recommendations") == recommended(served, first)

    with page.expect_response(f"**/tracks/{first}/audio") as answer:
        page.click("#play-track")
    response = answer.value
    assert response.status == 200 and response.headers["content-type"] == "audio/mpeg"
    page.wait_for_function("() => { const a = document.getElementById('audio'); return !a.paused && a.currentTime > 0.2; }")
    assert page.inner_text("#now-playing").startswith(api(served, "/recommendations", trackId=first)["query"]["title"])


def test_the_back_button_returns_to_the_previous_view(page: Any, served: ServedCatalogue) -> None:
    start = served.clips[2]
    open_view(page, f"/?track={start.track_id}")
    second = ids(page, "#recommendations")[3]
    page.click(f'#recommendations [data-track-id="{second}"] a.title')
    page.wait_for_url(f"**/?track={second}")
    page.wait_for_selector(READY)

    page.go_back()
    page.wait_for_url(f"**/?track={start.track_id}")
    page.wait_for_selector(READY)
    assert ids(page, "#recommendations") == recommended(served, start.track_id)
    page.go_forward()
    page.wait_for_url(f"**/?track={second}")
    page.wait_for_selector(READY)
    assert ids(page, "#recommendations") == recommended(served, second)


def test_keyboard_plays_pauses_and_moves_to_the_next_track(page: Any, served: ServedCatalogue) -> None:
    query = served.clips[3]
    open_view(page, f"/?track={query.track_id}")
    first = ids(page, "#recommendations")[0]
    playing = "() => { const a = document.getElementById('audio'); return !a.paused && a.currentTime > 0.1; }"

    page.keyboard.press(" ")
    page.wait_for_function(playing)
    assert page.eval_on_selector("#audio", "a => a.src").endswith(f"/tracks/{query.track_id}/audio")
    page.keyboard.press("n")
    page.wait_for_function(f"() => document.getElementById('audio').src.endsWith('/tracks/{first}/audio')")
    page.wait_for_function(playing)
    assert page.locator(f'#recommendations [data-track-id="{first}"].playing').count() == 1
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('audio').paused")


def test_api_errors_are_shown_as_messages_not_blank_panels(page: Any, served: ServedCatalogue) -> None:
    unknown = "local-00000000000000000000"
    answer = requests.get(served.url + "/recommendations", params={"trackId": unknown}, timeout=30)
    assert answer.status_code == 404
    open_view(page, f"/?track={unknown}")

    message = page.locator("#message")
    assert message.is_visible()
    assert page.inner_text("#message-text") == answer.json()["error"]["message"]
    # The one error the browser itself logs: the failed request.
    assert page.console.errors == ["Failed to load resource: the server responded with a status of 404 (Not Found)"]
    page.console.errors.clear()


def test_slow_answers_show_a_loading_state(page: Any, served: ServedCatalogue) -> None:
    held: list[Any] = []
    page.route("**/recommendations?*", lambda route: held.append(route))
    # Held from the moment it is sent, so the loading state checked is this request's, not that of
    # an earlier one (the page's first read of /openapi.json) which may also pass 200 ms on a loaded machine.
    with page.expect_request("**/recommendations?*"):
        page.goto(f"/?track={served.clips[4].track_id}")
    page.wait_for_function("() => document.querySelector('#loading') && !document.querySelector('#loading').hidden")
    assert page.get_attribute("#view", "aria-busy") == "true"
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector(READY)
    assert page.locator("#loading").is_hidden()
    assert page.get_attribute("#view", "aria-busy") is None


def test_a_phone_width_screen_needs_no_sideways_scrolling(browser: Any, served: ServedCatalogue) -> None:
    context = browser.new_context(base_url=served.url, viewport={"width": 360, "height": 780}, is_mobile=True)
    page = context.new_page()
    console = Console(page)
    try:
        open_view(page, f"/?track={served.clips[5].track_id}")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        assert ids(page, "#recommendations") == recommended(served, served.clips[5].track_id)
        shot(page, "track-phone")
    finally:
        context.close()
    assert console.errors == []


class _RecommendationIds(HTMLParser):
    """data-track-id of the elements inside the element with id="recommendations", in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if self.depth:
            self.depth += 1
            if values.get("data-track-id"):
                self.found.append(str(values["data-track-id"]))
        elif values.get("id") == "recommendations":
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1


def test_dump_dom_after_scripts_holds_the_recommended_ids_in_order(served: ServedCatalogue, tmp_path) -> None:
    track_id = served.clips[6].track_id
    dom = subprocess.run(
        [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}", f"--virtual-time-budget={DUMP_DOM_BUDGET_MS}",
         "--dump-dom", f"{served.url}/?track={track_id}"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    parser = _RecommendationIds()
    parser.feed(dom)
    assert parser.found == recommended(served, track_id)
    assert len(parser.found) == 10


def test_the_map_places_every_track_and_a_click_opens_it(page: Any, served: ServedCatalogue) -> None:
    points = api(served, "/map/points")["points"]
    open_view(page, "/map")

    assert sorted(ids(page, "#map")) == sorted(p["trackId"] for p in points)
    assert page.locator("#map circle.point").count() == len(points) == len(served.clips)
    legend = page.locator("#map-legend li").all_inner_texts()
    counts = Counter(p["tag"] for p in points)
    assert counts[legend[0]] == max(counts.values()), "the legend starts with the commonest top tag"
    # A dot no other dot covers (their layout follows the catalogue's embeddings): hover and click reach it.
    dots = page.eval_on_selector_all(
        "#map circle.point", "els => els.map(e => [e.dataset.trackId, +e.getAttribute('cx'), +e.getAttribute('cy'), +e.getAttribute('r')])"
    )
    clear_of = {
        track_id: min(math.dist((x, y), (ox, oy)) - r - other_r for other, ox, oy, other_r in dots if other != track_id)
        for track_id, x, y, r in dots
    }
    target_id = max(clear_of, key=clear_of.__getitem__)
    assert clear_of[target_id] > 4, "every dot on the map is within 4 units of another"
    target = next(p for p in points if p["trackId"] == target_id)
    dot = page.locator(f'#map circle[data-track-id="{target_id}"]')
    dot.hover()
    assert page.inner_text("#map-hover").startswith(target["title"])
    shot(page, "map")
    # The pointer picks the nearest dot: 2 units outside this one's edge, on the side away from its
    # nearest neighbour, where no dot is drawn, hovering and clicking still reach it.
    _, x, y, r = next(d for d in dots if d[0] == target_id)
    _, ox, oy, _ = min((d for d in dots if d[0] != target_id), key=lambda d: math.dist((x, y), d[1:3]))
    away = math.atan2(y - oy, x - ox)
    px, py = x + (r + 2) * math.cos(away), y + (r + 2) * math.sin(away)
    box = page.locator("#map").bounding_box()
    scale = box["width"] / 1000  # the viewBox is 1000 wide
    page.mouse.move(box["x"] + px * scale, box["y"] + py * scale)
    assert page.eval_on_selector("#map", "(svg, [x, y]) => document.elementFromPoint(x, y) === svg", [box["x"] + px * scale, box["y"] + py * scale])
    assert page.inner_text("#map-hover").startswith(target["title"])
    assert page.get_attribute("#map-near", "data-track-id") == target_id
    page.mouse.click(box["x"] + px * scale, box["y"] + py * scale)
    page.wait_for_url(f"**/?track={target['trackId']}")
    page.wait_for_selector(READY)
    assert ids(page, "#recommendations") == recommended(served, target["trackId"])
