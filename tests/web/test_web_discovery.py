"""The page's discovery views in a real browser: search, stations steered by feedback, paths, playlist
continuation, and the path drawn on the map; each checked against the API's own answer."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from webstack import READY, ServedCatalogue, api, ids, open_view, recommended, shot

pytestmark = [pytest.mark.model, pytest.mark.stack]

SEARCH_LIMIT = 20
PATH_LENGTH = 10


def test_search_lists_the_apis_matches_and_a_click_opens_the_track(page: Any, served: ServedCatalogue) -> None:
    expected = [r["trackId"] for r in api(served, "/search", q="Bach", limit=SEARCH_LIMIT)["results"]]
    bach = {c.track_id for c in served.clips if c.composer == "Johann Sebastian Bach"}
    assert expected and set(expected) <= bach

    open_view(page, "/?q=Bach")

    assert ids(page, "#search-results") == expected
    shot(page, "search")
    page.click(f'#search-results [data-track-id="{expected[0]}"] a.title')
    page.wait_for_url(f"**/?track={expected[0]}")
    page.wait_for_selector(READY)
    assert ids(page, "#recommendations") == recommended(served, expected[0])


def test_the_search_form_leads_to_the_search_view(page: Any, served: ServedCatalogue) -> None:
    open_view(page, "/")
    page.fill("#search-input", "Mozart")
    page.press("#search-input", "Enter")
    page.wait_for_url("**/?q=Mozart")
    page.wait_for_selector(READY)
    expected = [r["trackId"] for r in api(served, "/search", q="Mozart", limit=SEARCH_LIMIT)["results"]]
    assert expected and ids(page, "#search-results") == expected


def _next_tracks(response: Any) -> list[str]:
    assert response.status == 200
    return [t["trackId"] for t in response.json()["tracks"]]


def test_a_station_queue_changes_at_once_on_like_and_dislike(page: Any, served: ServedCatalogue) -> None:
    seed = served.clips[8]
    open_view(page, f"/?track={seed.track_id}")
    with page.expect_response("**/stations/*/next") as first:
        page.click("#start-station")
    page.wait_for_url("**/?station=*")
    page.wait_for_selector(READY)
    queue = _next_tracks(first.value)
    assert ids(page, "#queue") == queue and len(queue) == 10
    shot(page, "station")

    for signal in ("dislike", "like"):
        target = ids(page, "#queue")[0]
        with page.expect_response("**/stations/*/feedback") as sent, page.expect_response("**/stations/*/next") as refilled:
            page.click(f'#queue [data-track-id="{target}"] button[data-signal="{signal}"]')
        assert sent.value.status == 204
        assert sent.value.request.post_data_json == {"trackId": target, "signal": signal}
        changed = _next_tracks(refilled.value)
        page.wait_for_function(
            "expected => JSON.stringify([...document.querySelectorAll('#queue [data-track-id]')].map(e => e.dataset.trackId)) === JSON.stringify(expected)",
            arg=changed,
        )
        assert changed != queue and not set(changed) & set(queue), "the next tracks are new ones"
        queue = changed


def test_keyboard_like_steers_the_playing_track_of_a_station(page: Any, served: ServedCatalogue) -> None:
    open_view(page, f"/?track={served.clips[9].track_id}")
    with page.expect_response("**/stations/*/next"):
        page.click("#start-station")
    page.wait_for_selector(READY)
    page.keyboard.press(" ")
    playing = ids(page, "#queue")[0]
    page.wait_for_function("() => !document.getElementById('audio').paused")
    with page.expect_response("**/stations/*/feedback") as sent, page.expect_response("**/stations/*/next"):
        page.keyboard.press("l")
    assert sent.value.request.post_data_json == {"trackId": playing, "signal": "like"}


def test_station_weights_are_sliders_that_patch_the_station(page: Any, served: ServedCatalogue) -> None:
    open_view(page, f"/?track={served.clips[10].track_id}")
    with page.expect_response("**/stations/*/next"):
        page.click("#start-station")
    page.wait_for_selector(READY)
    station_id = page.url.split("station=")[1]
    assert page.input_value('#weights input[name="dislikeWeight"]') == "0.5"
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched, page.expect_response("**/stations/*/next"):
        page.eval_on_selector('#weights input[name="dislikeWeight"]',
                              "el => { el.value = '2'; el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change')); }")
    assert patched.value.status == 200
    assert api(served, f"/stations/{station_id}")["dislikeWeight"] == 2.0


def test_the_path_view_lists_the_apis_path_and_the_map_draws_it(page: Any, served: ServedCatalogue) -> None:
    start, end = served.clips[0].track_id, served.clips[-1].track_id
    expected = [t["trackId"] for t in api(served, "/path", **{"from": start, "to": end, "length": PATH_LENGTH})["tracks"]]

    open_view(page, f"/?path={start},{end}")

    assert ids(page, "#path") == expected and expected[0] == start and expected[-1] == end
    shot(page, "path")
    with page.expect_request(lambda r: "/map/points" in r.url) as asked:
        page.click("text=See it on the map")
    page.wait_for_url("**/map")
    page.wait_for_selector(READY)
    # The map asks for the path's tracks by id, so a sampled map of a big catalogue still draws all of it.
    assert parse_qs(urlsplit(asked.value.url).query)["include"] == expected
    assert page.locator("#map-trail").count() == 1
    assert sorted(page.eval_on_selector_all("#map circle.on-trail", "els => els.map(e => e.dataset.trackId)")) == sorted(expected)
    shot(page, "map-path")


def test_continue_as_playlist_shows_the_apis_continuation(page: Any, served: ServedCatalogue) -> None:
    seed = served.clips[11].track_id
    open_view(page, f"/?track={seed}")
    with page.expect_response("**/playlists/continue") as answer:
        page.click("#continue-playlist")
    expected = [t["trackId"] for t in answer.value.json()["tracks"]]
    page.wait_for_selector("#playlist")
    assert ids(page, "#playlist") == expected and seed not in expected


def test_a_path_to_another_track_is_picked_by_search(page: Any, served: ServedCatalogue) -> None:
    start = served.clips[12].track_id
    open_view(page, f"/?track={start}")
    page.click("#path-to")
    page.fill("#path-search", "Haydn")
    page.press("#path-search", "Enter")
    page.wait_for_selector("#path-target-list")
    target = ids(page, "#path-target-list")[0]
    page.click(f'#path-target-list [data-track-id="{target}"] button.go')
    page.wait_for_url(f"**/?path={start},{target}")
    page.wait_for_selector(READY)
    assert ids(page, "#path")[-1] == target
