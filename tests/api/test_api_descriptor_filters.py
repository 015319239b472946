"""Descriptor filters through GET /recommendations, descriptors in every summary and in GET /tracks/{trackId}."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

from api.descriptor_filters import DescriptorFilter, parse_filters
from api.errors import ApiError
from catalog.descriptors import Descriptors, Mode, camelot_compatible
from catalog.model import MODEL_ID
from catalog.records import Source, Status, TrackRecord, encode_embedding
from catalog.storage import TrackTable

N = 60
QUERY = 0
WITHOUT = {7, 19, 33}  # tracks extracted before descriptors existed
KEYS = [(key, mode) for key in range(12) for mode in Mode]  # every key appears
TEMPOS = (60.0, 90.0, 120.0, 125.0, 128.0, 140.0, 174.0)


def descriptors_of(i: int) -> dict[str, Any] | None:
    if i in WITHOUT:
        return None
    key, mode = KEYS[(7 * i) % len(KEYS)]
    return Descriptors.of_key(
        key=key,
        mode=mode,
        tempoBpm=TEMPOS[i % len(TEMPOS)],
        tempoConfidence=0.5,
        keyConfidence=0.8,
        loudnessLufs=-30.0 + (i % 25),
        dynamicRangeDb=6.0,
        energy=0.5,
        brightness=1500.0,
        onsetRate=2.0,
        percussiveness=0.3,
        danceability=0.6,
    ).to_json()


DESCRIPTORS = [descriptors_of(i) for i in range(N)]


@pytest.fixture
def index(publish):
    return publish(n=N, descriptors=DESCRIPTORS)


def call(api, http_event, lambda_context, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = api.lambda_handler(http_event("GET", "/recommendations", query), lambda_context)
    return response["statusCode"], json.loads(response["body"])


def expected(bundle, accept, k: int) -> list[str]:
    """The k nearest tracks to the query that ``accept`` passes, by brute force."""
    order = np.argsort(-(bundle.vectors @ bundle.vectors[QUERY]), kind="stable")
    ids = [bundle.track_ids[i] for i in order if i != QUERY and accept(i)]
    return ids[:k]


def ids(body: dict[str, Any]) -> list[str]:
    return [r["trackId"] for r in body["results"]]


def recommend(api, http_event, lambda_context, bundle, **query: str) -> dict[str, Any]:
    status, body = call(api, http_event, lambda_context, {"trackId": bundle.track_ids[QUERY], **query})
    assert status == 200, body
    return body


def test_every_summary_carries_the_descriptors_and_tracks_without_them_still_answer(
    api, index, http_event, lambda_context
) -> None:
    body = recommend(api, http_event, lambda_context, index, k="100")
    assert len(body["results"]) == N - 1
    assert body["query"]["descriptors"] == DESCRIPTORS[QUERY]
    by_id = {r["trackId"]: r for r in body["results"]}
    for i, track_id in enumerate(index.track_ids[1:], start=1):
        if i in WITHOUT:
            assert "descriptors" not in by_id[track_id]
        else:
            assert by_id[track_id]["descriptors"] == DESCRIPTORS[i]


def test_tempo_range_keeps_the_nearest_tracks_in_range_and_widens_the_search_for_k(
    api, index, http_event, lambda_context
) -> None:
    body = recommend(api, http_event, lambda_context, index, k="5", minTempo="120", maxTempo="130")
    in_range = lambda i: DESCRIPTORS[i] is not None and 120 <= DESCRIPTORS[i]["tempoBpm"] <= 130  # noqa: E731
    assert ids(body) == expected(index, in_range, 5)
    assert len(ids(body)) == 5


def test_tempo_octaves_let_a_60_bpm_track_match_120(api, index, http_event, lambda_context) -> None:
    plain = recommend(api, http_event, lambda_context, index, k="100", minTempo="115", maxTempo="122")
    octaves = recommend(api, http_event, lambda_context, index, k="100", minTempo="115", maxTempo="122",
                        tempoOctaves="true")
    assert {r["descriptors"]["tempoBpm"] for r in plain["results"]} == {120.0}
    assert {r["descriptors"]["tempoBpm"] for r in octaves["results"]} == {60.0, 120.0}
    with_octaves = lambda i: DESCRIPTORS[i] is not None and DESCRIPTORS[i]["tempoBpm"] in (60.0, 120.0)  # noqa: E731
    assert ids(octaves) == expected(index, with_octaves, 100)


def test_compatible_keys_are_those_of_the_camelot_rule_relative_to_the_query(api, index, http_event, lambda_context) -> None:
    body = recommend(api, http_event, lambda_context, index, k="100", key="compatible")
    seed = DESCRIPTORS[QUERY]["camelot"]
    compatible = lambda i: DESCRIPTORS[i] is not None and camelot_compatible(seed, DESCRIPTORS[i]["camelot"])  # noqa: E731
    assert ids(body) == expected(index, compatible, 100)
    codes = {r["descriptors"]["camelot"] for r in body["results"]}
    assert seed in codes and len(codes) >= 3  # the same code, a neighbour and the relative key all occur


def test_loudness_range_and_mode(api, index, http_event, lambda_context) -> None:
    body = recommend(api, http_event, lambda_context, index, k="100", minLoudness="-20", maxLoudness="-10.5")
    loud = lambda i: DESCRIPTORS[i] is not None and -20 <= DESCRIPTORS[i]["loudnessLufs"] <= -10.5  # noqa: E731
    assert ids(body) == expected(index, loud, 100) and body["results"]
    body = recommend(api, http_event, lambda_context, index, k="100", mode="minor")
    minor = lambda i: DESCRIPTORS[i] is not None and DESCRIPTORS[i]["mode"] == "minor"  # noqa: E731
    assert ids(body) == expected(index, minor, 100) and body["results"]


def test_filters_combine_with_each_other_and_with_distinct_artists(api, publish, http_event, lambda_context) -> None:
    artists = [[f"Artist {i % 5}"] for i in range(N)]
    bundle = publish(n=N, descriptors=DESCRIPTORS, artists=artists)
    body = recommend(api, http_event, lambda_context, bundle, k="10", mode="major", minTempo="100",
                     distinctArtists="true")
    passes = lambda i: DESCRIPTORS[i] is not None and DESCRIPTORS[i]["mode"] == "major" and DESCRIPTORS[i]["tempoBpm"] >= 100  # noqa: E731
    # The artist cap counts only tracks the filters let through: one per artist, none by the query's.
    seen, want = {artists[QUERY][0]}, []
    for track_id in expected(bundle, passes, N):
        artist = artists[int(track_id[1:])][0]
        if artist not in seen:
            seen.add(artist)
            want.append(track_id)
    assert ids(body) == want and len(want) >= 2


def test_a_filter_that_few_tracks_pass_returns_fewer_than_k(api, index, http_event, lambda_context) -> None:
    body = recommend(api, http_event, lambda_context, index, k="20", minTempo="170", mode="minor")
    rare = lambda i: DESCRIPTORS[i] is not None and DESCRIPTORS[i]["tempoBpm"] >= 170 and DESCRIPTORS[i]["mode"] == "minor"  # noqa: E731
    assert 0 < len(ids(body)) < 20
    assert ids(body) == expected(index, rare, 20)


@pytest.mark.parametrize(
    "query",
    [
        {"minTempo": "fast"},
        {"minTempo": "130", "maxTempo": "120"},
        {"maxTempo": "-3"},
        {"minLoudness": "-5", "maxLoudness": "-10"},
        {"minLoudness": "nan"},
        {"key": "same"},
        {"mode": "dorian"},
        {"tempoOctaves": "maybe"},
    ],
)
def test_bad_filters_are_400_invalid_filter(api, index, http_event, lambda_context, query: dict[str, str]) -> None:
    status, body = call(api, http_event, lambda_context, {"trackId": index.track_ids[QUERY], **query})
    assert status == 400
    assert body["error"]["code"] == "invalid_filter"
    assert all(value not in body["error"]["message"] for value in query.values())


def test_key_compatible_for_a_query_without_descriptors_is_422(api, index, http_event, lambda_context) -> None:
    status, body = call(api, http_event, lambda_context, {"trackId": index.track_ids[7], "key": "compatible"})
    assert status == 422 and body["error"]["code"] == "query_has_no_key"
    status, body = call(api, http_event, lambda_context, {"trackId": index.track_ids[7], "minTempo": "100"})
    assert status == 200 and body["results"]


def test_get_track_shows_every_descriptor(api, index, http_event, lambda_context) -> None:
    track_id = index.track_ids[4]
    stored = Descriptors.from_json(DESCRIPTORS[4])
    TrackTable(os.environ["TRACKS_TABLE"]).mark_ready(
        track_id, embedding=encode_embedding([1.0, 0.0]), dim=2, model=MODEL_ID, tags={}, descriptors=stored,
        fallback=TrackRecord(track_id=track_id, source=Source.SPOTIFY, status=Status.READY),
    )
    response = api.lambda_handler(http_event("GET", f"/tracks/{track_id}", route="/tracks/{trackId}"), lambda_context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 200 and body["descriptors"] == stored.to_json()


def test_parse_filters_takes_json_values_as_well_as_query_strings() -> None:
    from_body = parse_filters({"minTempo": 120, "maxTempo": 130.5, "tempoOctaves": True, "key": "compatible", "mode": "minor"})
    from_query = parse_filters({"minTempo": "120", "maxTempo": "130.5", "tempoOctaves": "true", "key": "compatible",
                                "mode": "minor"})
    assert from_body == from_query == DescriptorFilter(
        min_tempo=120.0, max_tempo=130.5, tempo_octaves=True, compatible_key=True, mode=Mode.MINOR
    )
    assert parse_filters({}).accept(None) is None
    with pytest.raises(ApiError) as caught:
        parse_filters({"minTempo": True})
    assert caught.value.status == 400


# -- the other list endpoints: continuation, path, station batches -----------------------


def post_json(api, http_event, lambda_context, path: str, body: dict[str, Any], route: str | None = None):
    response = api.lambda_handler(http_event("POST", path, route=route, body=body), lambda_context)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def minor_and_fast(i: int) -> bool:
    return DESCRIPTORS[i] is not None and DESCRIPTORS[i]["mode"] == "minor" and DESCRIPTORS[i]["tempoBpm"] >= 120


def test_continuation_takes_the_filters_in_its_body(api, index, http_event, lambda_context) -> None:
    by_id = dict(zip(index.track_ids, range(N), strict=True))
    request = {"seeds": [index.track_ids[QUERY]], "length": 8, "maxPerArtist": None, "mode": "minor", "minTempo": 120}
    status, body = post_json(api, http_event, lambda_context, "/playlists/continue", request)
    assert status == 200, body
    picked = [by_id[t["trackId"]] for t in body["tracks"]]
    assert len(picked) == 8 and all(minor_and_fast(i) for i in picked)
    # The same request without the filters picks tracks that fail them: the filters did the work.
    unfiltered = {k: v for k, v in request.items() if k not in ("mode", "minTempo")}
    _, plain = post_json(api, http_event, lambda_context, "/playlists/continue", unfiltered)
    assert not all(minor_and_fast(by_id[t["trackId"]]) for t in plain["tracks"])
    status, bad = post_json(api, http_event, lambda_context, "/playlists/continue", {**request, "maxTempo": 110})
    assert status == 400 and bad["error"]["code"] == "invalid_filter"


def test_path_steps_between_the_ends_pass_the_filters(api, index, http_event, lambda_context) -> None:
    by_id = dict(zip(index.track_ids, range(N), strict=True))
    start, end = index.track_ids[QUERY], index.track_ids[N - 1]
    query = {"from": start, "to": end, "length": "6", "mode": "minor", "minTempo": "120"}
    response = api.lambda_handler(http_event("GET", "/path", query), lambda_context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 200, body
    steps = [t["trackId"] for t in body["tracks"]]
    assert steps[0] == start and steps[-1] == end and len(steps) == 6
    assert all(minor_and_fast(by_id[t]) for t in steps[1:-1])


def test_a_station_batch_takes_the_filters_of_its_next_request(api, index, http_event, lambda_context) -> None:
    by_id = dict(zip(index.track_ids, range(N), strict=True))
    status, station = post_json(api, http_event, lambda_context, "/stations",
                                {"name": "Fast minor", "seeds": [index.track_ids[QUERY]], "maxPerArtist": None})
    assert status == 201, station
    route = "/stations/{stationId}/next"
    path = f"/stations/{station['stationId']}/next"
    status, batch = post_json(api, http_event, lambda_context, path, {"n": 6, "mode": "minor", "minTempo": 120}, route)
    assert status == 200, batch
    picked = [by_id[t["trackId"]] for t in batch["tracks"]]
    assert len(picked) == 6 and all(minor_and_fast(i) for i in picked)
    status, bad = post_json(api, http_event, lambda_context, path, {"n": 6, "mode": "dorian"}, route)
    assert status == 400 and bad["error"]["code"] == "bad_request"
