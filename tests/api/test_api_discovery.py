"""Search, multi-seed recommendations, stations, continuation and paths through the Lambda handler.

Each test publishes a bundle whose vectors and metadata it chose, so the
expected answer is computed here with numpy and compared exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pytest
from api_testkit import as_served, clustered_vectors, override, spotify_like_id

from api.discovery import CONTEXT_DECAY, CONTEXT_TRACKS, SEED_WEIGHT, Candidates, rising_walk
from api.stations import DISLIKED_SOUND_PUSH
from catalog.bundle import TrackMeta


def call(api: Any, event: dict[str, Any], context: Any) -> tuple[int, Any]:
    response = api.lambda_handler(event, context)
    body = response.get("body") or ""
    return response["statusCode"], json.loads(body) if body else None


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def metas_for(n: int, **columns: list[Any]) -> list[TrackMeta]:
    """TrackMeta for spotify_like_id(0..n-1); each keyword gives one field per track."""
    rows = []
    for i in range(n):
        fields = {"title": f"Song {i}", "artists": (f"Artist {i}",), **{k: v[i] for k, v in columns.items()}}
        fields["artists"] = tuple(fields["artists"])
        rows.append(TrackMeta(track_id=spotify_like_id(i), source="spotify", **fields))
    return rows


def ids(body_tracks: list[dict[str, Any]]) -> list[str]:
    return [t["trackId"] for t in body_tracks]


def exact_order(vectors: np.ndarray, query: np.ndarray, exclude: set[int] = frozenset()) -> list[str]:
    return [spotify_like_id(int(i)) for i in np.argsort(-(vectors @ query), kind="stable") if int(i) not in exclude]


# -- GET /search -------------------------------------------------------------------------


SEARCH_TITLES = [
    ("True Blue", ["Madonna"], "True Blue"),
    ("Blue", ["Joni Mitchell"], "Blue"),
    ("Skyblue", ["Peter Gabriel"], "Up"),
    ("Blue Moon", ["Billie Holiday"], "Lady"),
    ("Déjà Vu", ["Beyoncé"], "B'Day"),
    ("Song for Rain", ["Blue Öyster Cult"], "Agents"),
    ("Moonlight Sonata", ["Ludwig van Beethoven"], "Sonatas"),
    ("Nothing", ["Nobody"], "Bluesy Album"),
]


def search_catalogue(publish: Any) -> None:
    n = len(SEARCH_TITLES)
    publish(vectors=clustered_vectors(n), metas=metas_for(
        n, title=[t for t, _, _ in SEARCH_TITLES], artists=[a for _, a, _ in SEARCH_TITLES],
        album=[al for _, _, al in SEARCH_TITLES]))


def titles(body: dict[str, Any]) -> list[str]:
    return [r["title"] for r in body["results"]]


def test_search_ranks_exact_title_then_exact_other_then_prefix_then_substring(api, publish, http_event, lambda_context) -> None:
    search_catalogue(publish)
    status, body = call(api, http_event("GET", "/search", {"q": "BLUE"}), lambda_context)
    assert status == 200
    assert [(r["title"], r["match"], r["field"]) for r in body["results"]] == [
        ("Blue", "exact", "title"),
        ("Blue Moon", "prefix", "title"),  # title words first, shorter titles first
        ("True Blue", "prefix", "title"),
        ("Song for Rain", "prefix", "artist"),
        ("Nothing", "prefix", "album"),  # "Bluesy"
        ("Skyblue", "substring", "title"),
    ]


def test_search_folds_case_and_accents_and_matches_word_prefixes(api, publish, http_event, lambda_context) -> None:
    search_catalogue(publish)
    for q, expected in (
        ("beyonce", ["Déjà Vu"]),
        ("DEJA vu", ["Déjà Vu"]),
        ("oyster", ["Song for Rain"]),
        ("moon sona", ["Moonlight Sonata"]),  # every word a prefix of some word
        ("sonata beeth", ["Moonlight Sonata"]),  # across title and artist
        ("moon", ["Blue Moon", "Moonlight Sonata"]),
        ("zzz", []),
    ):
        status, body = call(api, http_event("GET", "/search", {"q": q}), lambda_context)
        assert status == 200 and titles(body) == expected, q
    _, body = call(api, http_event("GET", "/search", {"q": "blue", "limit": "2"}), lambda_context)
    assert titles(body) == ["Blue", "Blue Moon"]


@pytest.mark.parametrize("q", ["", "   ", "!!!", "x" * 200])
def test_search_refuses_empty_and_long_queries(api, publish, http_event, lambda_context, q) -> None:
    search_catalogue(publish)
    status, body = call(api, http_event("GET", "/search", {"q": q}), lambda_context)
    assert_error(status, body, 400, "empty_query" if q and len(q) < 200 else "bad_request")
    status, _ = call(api, http_event("GET", "/search", {"q": "x" * 199}), lambda_context)
    assert status == 200


def test_search_structure_is_built_once_per_served_index(tmp_path) -> None:
    from api_testkit import build_bundle, open_bundle

    from api.search import search_structure

    def served(name: str) -> Any:
        manifest = build_bundle(tmp_path / name, [spotify_like_id(i) for i in range(8)], clustered_vectors(8))
        return open_bundle(tmp_path / name, manifest)

    first, second = served("a"), served("b")
    metas = lambda index: (index.meta(t) for t in index.track_ids())  # noqa: E731
    built = search_structure(first, metas(first))
    assert search_structure(first, iter(())) is built  # the same index: not rebuilt (an empty source would show)
    assert len(built) == 8
    rebuilt = search_structure(second, metas(second))
    assert rebuilt is not built and len(rebuilt) == 8


# -- GET /recommendations with several seeds and the list policy --------------------------


def test_several_seeds_query_their_normalised_mean_and_never_come_back(api, publish, http_event, lambda_context) -> None:
    vectors = clustered_vectors(60)
    publish(vectors=vectors, metas=metas_for(60))
    vectors = as_served(vectors)  # what the index serves
    seeds = [3, 17, 42]
    query = {"trackId": ",".join(spotify_like_id(s) for s in seeds), "k": "8"}
    status, body = call(api, http_event("GET", "/recommendations", query), lambda_context)
    assert status == 200, body
    mean = unit(vectors[seeds].mean(axis=0))
    expected = exact_order(vectors, mean, set(seeds))[:8]
    assert ids(body["results"]) == expected
    np.testing.assert_allclose([r["similarity"] for r in body["results"]], [vectors[int(t[1:])] @ mean for t in expected], atol=1e-5)
    assert body["seeds"] == [spotify_like_id(s) for s in seeds] and body["trackId"] == spotify_like_id(3)


def test_exclude_and_max_per_artist_with_seeds_counted(api, publish, http_event, lambda_context) -> None:
    vectors = clustered_vectors(60)
    artists = [[f"Band {i % 4}"] for i in range(60)]
    publish(vectors=vectors, metas=metas_for(60, artists=artists))
    seed = spotify_like_id(0)
    order = exact_order(vectors, vectors[0], {0})
    excluded = order[:3]
    query = {"trackId": seed, "k": "6", "exclude": ",".join(excluded), "maxPerArtist": "2"}
    status, body = call(api, http_event("GET", "/recommendations", query), lambda_context)
    assert status == 200, body
    got = ids(body["results"])
    assert not set(got) & set(excluded)
    counts = Counter(r["artists"][0] for r in body["results"])
    assert counts["Band 0"] <= 1 and max(counts.values()) <= 2  # the seed is by Band 0
    assert len(got) == 6
    # The order is what the policy leaves of the exact order.
    allowed, seen = [], Counter({"Band 0": 1})
    for track in order:
        band = artists[int(track[1:])][0]
        if track not in excluded and seen[band] < 2:
            allowed.append(track)
            seen[band] += 1
    assert got == allowed[:6]


def test_distinct_artists_is_max_per_artist_one(api, publish, http_event, lambda_context) -> None:
    publish(vectors=clustered_vectors(40), metas=metas_for(40, artists=[[f"Band {i % 5}"] for i in range(40)]))
    seed = spotify_like_id(2)
    _, legacy = call(api, http_event("GET", "/recommendations", {"trackId": seed, "distinctArtists": "true"}), lambda_context)
    _, capped = call(api, http_event("GET", "/recommendations", {"trackId": seed, "maxPerArtist": "1"}), lambda_context)
    assert legacy["results"] == capped["results"] and len(capped["results"]) == 4
    assert "Band 2" not in {r["artists"][0] for r in capped["results"]}


def test_duration_filters(api, publish, http_event, lambda_context) -> None:
    durations = [None if i % 7 == 0 else 60_000 + 10_000 * (i % 10) for i in range(50)]
    publish(vectors=clustered_vectors(50), metas=metas_for(50, duration_ms=durations))
    query = {"trackId": spotify_like_id(1), "k": "100", "minDurationMs": "90000", "maxDurationMs": "120000"}
    status, body = call(api, http_event("GET", "/recommendations", query), lambda_context)
    assert status == 200
    expected = {spotify_like_id(i) for i, d in enumerate(durations) if d is not None and 90_000 <= d <= 120_000 and i != 1}
    assert set(ids(body["results"])) == expected
    status, body = call(api, http_event("GET", "/recommendations", {**query, "minDurationMs": "130000"}), lambda_context)
    assert_error(status, body, 400, "bad_request")


def duplicate_catalogue(publish: Any) -> tuple[np.ndarray, list[str]]:
    """Track 0 the seed; 1 its ISRC twin; 2 and 3 one recording twice (similarity >= 0.99);
    4 the same title and artist as 2 but sounding different (a live version: kept)."""
    rng = np.random.default_rng(5)
    base = unit(rng.normal(size=16))
    near = [unit(base + 0.02 * rng.normal(size=16)) for _ in range(4)]
    other = unit(base + 0.6 * rng.normal(size=16))
    rest = [unit(base + 0.9 * rng.normal(size=16)) for _ in range(10)]
    vectors = np.array([base, near[0], near[1], near[2], other, *rest], dtype=np.float32)
    n = len(vectors)
    titles_ = ["Seed", "Seed (Remaster)", "Twin", "TWIN!", "Twin", *[f"Other {i}" for i in range(10)]]
    artists = [["A"], ["A"], ["B"], ["b"], ["B"], *[[f"C{i}"] for i in range(10)]]
    isrcs = ["USX1", "usx1", "", "", "", *[""] * 10]
    publish(vectors=vectors, metas=metas_for(n, title=titles_, artists=artists, isrc=isrcs))
    assert float(vectors[2] @ vectors[3]) >= 0.99 and float(vectors[2] @ vectors[4]) < 0.99
    return vectors, [spotify_like_id(i) for i in range(n)]


def test_duplicates_are_dropped_by_default_and_kept_with_dedupe_false(api, publish, http_event, lambda_context) -> None:
    _, track_ids = duplicate_catalogue(publish)
    query = {"trackId": track_ids[0], "k": "100"}
    _, deduped = call(api, http_event("GET", "/recommendations", query), lambda_context)
    _, everything = call(api, http_event("GET", "/recommendations", {**query, "dedupe": "false"}), lambda_context)
    kept = set(ids(deduped["results"]))
    assert set(ids(everything["results"])) == set(track_ids[1:])
    assert track_ids[1] not in kept  # the seed's ISRC twin
    assert len(kept & {track_ids[2], track_ids[3]}) == 1  # one copy of the recording
    assert track_ids[4] in kept  # same title and artist, different sound
    assert len(kept) == len(track_ids) - 3


def test_an_unknown_seed_is_a_404_naming_the_parameter(api, publish, http_event, lambda_context) -> None:
    publish(n=20)
    query = {"trackId": f"{spotify_like_id(1)},Nobody0000000000000000"}
    status, body = call(api, http_event("GET", "/recommendations", query), lambda_context)
    assert_error(status, body, 404, "track_not_found")
    assert body["error"]["message"].startswith("trackId:")


# -- stations ----------------------------------------------------------------------------


def create_station(api, http_event, lambda_context, **fields: Any) -> dict[str, Any]:
    status, body = call(api, http_event("POST", "/stations", body=fields), lambda_context)
    assert status == 201, body
    return body


def station_call(api, http_event, lambda_context, method: str, station_id: str, tail: str = "", body: Any = None):
    path = f"/stations/{station_id}{tail}"
    return call(api, http_event(method, path, route=f"/stations/{{stationId}}{tail}", body=body), lambda_context)


def test_station_lifecycle(api, publish, http_event, lambda_context) -> None:
    publish(n=30)
    seeds = [spotify_like_id(0), spotify_like_id(1)]
    created = create_station(api, http_event, lambda_context, name="Morning", seeds=seeds)
    station_id = created["stationId"]
    assert len(station_id) == 22
    assert {k: created[k] for k in ("name", "seeds", "styleWeight", "likeWeight", "dislikeWeight", "maxPerArtist")} == {
        "name": "Morning", "seeds": seeds, "styleWeight": 1.0, "likeWeight": 0.5, "dislikeWeight": 0.5, "maxPerArtist": 2}
    assert created["feedback"] == {"like": 0, "dislike": 0, "skip": 0} and created["historyLength"] == 0

    status, changed = station_call(api, http_event, lambda_context, "PATCH", station_id, body={"name": "Evening", "likeWeight": 2, "maxPerArtist": None})
    assert status == 200 and (changed["name"], changed["likeWeight"], changed["maxPerArtist"]) == ("Evening", 2.0, None)
    status, body = station_call(api, http_event, lambda_context, "PATCH", station_id, body={})
    assert_error(status, body, 400, "nothing_to_change")

    station_call(api, http_event, lambda_context, "POST", station_id, "/next", {"n": 4})
    station_call(api, http_event, lambda_context, "POST", station_id, "/feedback", {"trackId": spotify_like_id(5), "signal": "skip"})
    status, got = station_call(api, http_event, lambda_context, "GET", station_id)
    assert status == 200 and got["historyLength"] == 4 and got["feedback"] == {"like": 0, "dislike": 0, "skip": 1}

    status, body = station_call(api, http_event, lambda_context, "DELETE", station_id)
    assert status == 204 and body is None
    for method, tail, payload in (("GET", "", None), ("DELETE", "", None), ("POST", "/next", {"n": 1}),
                                  ("PATCH", "", {"name": "x"}),
                                  ("POST", "/feedback", {"trackId": spotify_like_id(2), "signal": "like"})):
        status, body = station_call(api, http_event, lambda_context, method, station_id, tail, payload)
        assert_error(status, body, 404, "station_not_found")


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"name": "x", "seeds": []}, 400, "bad_request"),
        ({"seeds": ["T000000000000000000001"]}, 400, "bad_request"),
        ({"name": "x", "seeds": ["T000000000000000000001"], "styleWeight": -1}, 400, "bad_request"),
        ({"name": "x", "seeds": ["T000000000000000000001"], "surprise": 1}, 400, "bad_request"),
        ({"name": "x", "seeds": ["Nobody0000000000000000"]}, 404, "track_not_indexed"),
    ],
)
def test_station_creation_refuses_bad_definitions(api, publish, http_event, lambda_context, fields, status, code) -> None:
    publish(n=10)
    got, body = call(api, http_event("POST", "/stations", body=fields), lambda_context)
    assert_error(got, body, status, code)


def test_station_never_repeats_until_its_reachable_catalogue_is_played(api, publish, http_event, lambda_context) -> None:
    publish(n=30, artists=[[f"Band {i}"] for i in range(30)])
    seeds = [spotify_like_id(0), spotify_like_id(1)]
    station_id = create_station(api, http_event, lambda_context, name="All", seeds=seeds, maxPerArtist=None)["stationId"]
    batches = []
    for _ in range(3):
        status, body = station_call(api, http_event, lambda_context, "POST", station_id, "/next", {"n": 10})
        assert status == 200 and len(body["tracks"]) == 10
        batches.append((body["cycle"], ids(body["tracks"])))
    first_cycle = batches[0][1] + batches[1][1] + batches[2][1][:8]
    assert len(set(first_cycle)) == 28 and set(first_cycle) == {spotify_like_id(i) for i in range(2, 30)}
    assert [cycle for cycle, _ in batches] == [0, 0, 1]
    assert set(batches[2][1][8:]) <= set(first_cycle) and not set(seeds) & {t for _, b in batches for t in b}
    _, info = station_call(api, http_event, lambda_context, "GET", station_id)
    assert info["historyLength"] == 30 and info["cycle"] == 1
    _, body = station_call(api, http_event, lambda_context, "POST", station_id, "/next", {"n": 10})
    assert not set(ids(body["tracks"])) & set(batches[2][1])  # the new cycle does not repeat itself either


def test_station_batches_honour_the_artist_cap(api, publish, http_event, lambda_context) -> None:
    publish(n=60, artists=[[f"Band {i % 3}"] for i in range(60)])
    station_id = create_station(api, http_event, lambda_context, name="Cap", seeds=[spotify_like_id(0)], maxPerArtist=2)["stationId"]
    _, body = station_call(api, http_event, lambda_context, "POST", station_id, "/next", {"n": 6})
    assert Counter(t["artists"][0] for t in body["tracks"]) == {"Band 0": 2, "Band 1": 2, "Band 2": 2}


def test_feedback_changes_the_very_next_batch_by_the_documented_formula(api, publish, http_event, lambda_context) -> None:
    vectors = clustered_vectors(80)
    publish(vectors=vectors, metas=metas_for(80))
    seeds = [0, 1]
    station_id = create_station(api, http_event, lambda_context, name="F", seeds=[spotify_like_id(s) for s in seeds],
                                styleWeight=1.0, likeWeight=0.8, dislikeWeight=0.6, maxPerArtist=None)["stationId"]
    _, first = station_call(api, http_event, lambda_context, "POST", station_id, "/next", {"n": 5})
    played = [int(t[1:]) for t in ids(first["tracks"])]
    assert ids(first["tracks"]) == exact_order(vectors, unit(vectors[seeds].mean(axis=0)), set(seeds))[:5]
    liked, disliked = [40, 41], [played[0]]
    for track in liked:
        status, body = station_call(api, http_event, lambda_context, "POST", station_id, "/feedback",
                                    {"trackId": spotify_like_id(track), "signal": "like"})
        assert status == 204 and body is None
    station_call(api, http_event, lambda_context, "POST", station_id, "/feedback",
                 {"trackId": spotify_like_id(disliked[0]), "signal": "dislike"})
    _, second = station_call(api, http_event, lambda_context, "POST", station_id, "/next", {"n": 5})
    query = unit(1.0 * vectors[seeds].mean(axis=0) + 0.8 * vectors[liked].mean(axis=0) - 0.6 * vectors[disliked].mean(axis=0))
    # Then what sounds like the disliked track is pushed down (its artist is its own: no artist push).
    score = vectors @ query - DISLIKED_SOUND_PUSH * 0.6 * np.maximum(0.0, vectors @ vectors[disliked[0]])
    assert ids(second["tracks"]) == exact_order(np.eye(80), score, set(seeds) | set(played))[:5]


def test_disliked_artists_are_pushed_down(api, publish, http_event, lambda_context) -> None:
    # Around the seed: five "Loud" tracks at similarity ~0.95, then "Quiet" ones a little further
    # (~0.9), closer than the penalty. Disliking one Loud track sends the other four below the Quiet.
    from api.stations import DISLIKED_ARTIST_PENALTY

    rng = np.random.default_rng(2)
    seed = unit(rng.normal(size=16))

    def at(similarity: float) -> np.ndarray:
        noise = rng.normal(size=16)
        noise = unit(noise - (noise @ seed) * seed)
        return unit(similarity * seed + np.sqrt(1 - similarity**2) * noise)

    vectors = np.array([seed] + [at(0.95 - 0.005 * i) for i in range(5)] + [at(0.9 - 0.005 * i) for i in range(10)],
                       dtype=np.float32)
    assert DISLIKED_ARTIST_PENALTY > 0.95 - 0.9
    artists = [["Seed"]] + [["Loud"]] * 5 + [[f"Quiet {i}"] for i in range(10)]
    publish(vectors=vectors, metas=metas_for(len(vectors), artists=artists))
    make = lambda: create_station(api, http_event, lambda_context, name="D", seeds=[spotify_like_id(0)],  # noqa: E731
                                  dislikeWeight=0.0, maxPerArtist=None)["stationId"]
    plain, steered = make(), make()
    station_call(api, http_event, lambda_context, "POST", steered, "/feedback", {"trackId": spotify_like_id(1), "signal": "dislike"})
    _, before = station_call(api, http_event, lambda_context, "POST", plain, "/next", {"n": 4})
    _, after = station_call(api, http_event, lambda_context, "POST", steered, "/next", {"n": 14})
    assert [t["artists"][0] for t in before["tracks"]] == ["Loud"] * 4
    assert [t["artists"][0] for t in after["tracks"]] == [f"Quiet {i}" for i in range(10)] + ["Loud"] * 4
    assert spotify_like_id(1) not in ids(after["tracks"])  # a disliked track is never played


def test_concurrent_feedback_through_the_gateway_is_all_counted(served_api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import requests

    url, bundle = served_api
    track_ids = bundle.track_ids
    created = requests.post(f"{url}/stations", json={"name": "Busy", "seeds": track_ids[:2]}, timeout=10)
    assert created.status_code == 201, created.text
    station_id = created.json()["stationId"]
    signals = [("like", "dislike", "skip")[i % 3] for i in range(30)]

    def send(i: int) -> int:
        body = {"trackId": track_ids[10 + i], "signal": signals[i]}
        return requests.post(f"{url}/stations/{station_id}/feedback", json=body, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(send, range(30))) == [204] * 30
    got = requests.get(f"{url}/stations/{station_id}", timeout=10).json()
    assert got["feedback"] == {"like": 10, "dislike": 10, "skip": 10}


@pytest.mark.parametrize(
    ("method", "tail", "body", "status", "code"),
    [
        ("GET", "", None, 400, "bad_request"),
        ("POST", "/next", {"n": 0}, 400, "bad_request"),
        ("POST", "/next", {"n": 51}, 400, "bad_request"),
        ("POST", "/feedback", {"trackId": "T000000000000000000001", "signal": "love"}, 400, "bad_request"),
    ],
)
def test_station_routes_refuse_bad_input(api, publish, http_event, lambda_context, method, tail, body, status, code) -> None:
    publish(n=10)
    station_id = create_station(api, http_event, lambda_context, name="x", seeds=[spotify_like_id(0)])["stationId"]
    target = "short" if tail == "" else station_id
    got, answer = station_call(api, http_event, lambda_context, method, target, tail, body)
    assert_error(got, answer, status, code)


def test_feedback_on_a_track_outside_the_index_is_a_404(api, publish, http_event, lambda_context) -> None:
    publish(n=10)
    station_id = create_station(api, http_event, lambda_context, name="x", seeds=[spotify_like_id(0)])["stationId"]
    status, body = station_call(api, http_event, lambda_context, "POST", station_id, "/feedback",
                                {"trackId": "Nobody0000000000000000", "signal": "like"})
    assert_error(status, body, 404, "track_not_indexed")


# -- POST /playlists/continue ------------------------------------------------------------


def test_continuation_follows_the_decaying_context_without_repeats(api, publish, http_event, lambda_context) -> None:
    vectors = clustered_vectors(70)
    artists = [[f"Band {i % 6}"] for i in range(70)]
    publish(vectors=vectors, metas=metas_for(70, artists=artists))
    vectors = as_served(vectors)  # what the index serves
    seeds = [0, 1]
    body = {"seeds": [spotify_like_id(s) for s in seeds], "length": 12, "maxPerArtist": 3, "exclude": [spotify_like_id(5)]}
    status, got = call(api, http_event("POST", "/playlists/continue", body=body), lambda_context)
    assert status == 200, got
    picked = [int(t[1:]) for t in ids(got["tracks"])]
    assert len(picked) == 12 and len(set(picked)) == 12 and not set(picked) & {*seeds, 5}
    counts = Counter(artists[i][0] for i in [*seeds, *picked])
    assert max(counts.values()) <= 3
    # The same walk, computed here: nearest allowed track to the decaying mix of recent tracks and the seeds.
    mean = unit(vectors[seeds].mean(axis=0))
    playlist, expected, used = list(seeds), [], Counter(artists[s][0] for s in seeds)
    while len(expected) < 12:
        recent = playlist[-CONTEXT_TRACKS:][::-1]
        context = unit(SEED_WEIGHT * mean + sum(CONTEXT_DECAY**age * vectors[t] for age, t in enumerate(recent)))
        for i in np.argsort(-(vectors @ context), kind="stable"):
            i = int(i)
            if i not in playlist and i != 5 and used[artists[i][0]] < 3:
                break
        expected.append(i)
        playlist.append(i)
        used[artists[i][0]] += 1
    assert picked == expected
    steps = [float(vectors[a] @ vectors[b]) for a, b in zip([seeds[-1], *picked], picked, strict=False)]
    np.testing.assert_allclose([t["stepSimilarity"] for t in got["tracks"]], steps, atol=1e-5)
    assert got["meanStepSimilarity"] == pytest.approx(np.mean(steps), abs=1e-5)


def test_continuation_refuses_bad_input(api, publish, http_event, lambda_context) -> None:
    publish(n=10)
    status, body = call(api, http_event("POST", "/playlists/continue", body={"seeds": []}), lambda_context)
    assert_error(status, body, 400, "bad_request")
    status, body = call(api, http_event("POST", "/playlists/continue", body={"seeds": ["Nobody0000000000000000"]}), lambda_context)
    assert_error(status, body, 404, "track_not_found")
    assert body["error"]["message"].startswith("seeds:")


# -- GET /path ---------------------------------------------------------------------------


def arc_catalogue(publish: Any, n: int = 12) -> np.ndarray:
    """Tracks spread along the great circle from track 0 to track n-1, plus off-circle noise tracks."""
    rng = np.random.default_rng(11)
    a, b = unit(rng.normal(size=16)), unit(rng.normal(size=16))
    b = unit(b - (b @ a) * a)  # orthogonal: the arc spans 90 degrees
    arc = [unit(np.cos(t) * a + np.sin(t) * b) for t in np.linspace(0, np.pi / 2, n)]
    noise = [unit(rng.normal(size=16)) for _ in range(20)]
    vectors = np.array([*arc, *noise], dtype=np.float32)
    publish(vectors=vectors, metas=metas_for(len(vectors)))
    return vectors


def test_path_walks_the_arc_in_order_and_reports_its_figures(api, publish, http_event, lambda_context) -> None:
    vectors = as_served(arc_catalogue(publish))
    query = {"from": spotify_like_id(0), "to": spotify_like_id(11), "length": "12"}
    status, body = call(api, http_event("GET", "/path", query), lambda_context)
    assert status == 200, body
    assert ids(body["tracks"]) == [spotify_like_id(i) for i in range(12)]
    to_end = [t["similarityToTo"] for t in body["tracks"]]
    np.testing.assert_allclose(to_end, vectors[:12] @ vectors[11], atol=1e-5)
    assert body["monotoneShare"] == 1.0 and body["tracks"][0]["stepSimilarity"] is None
    steps = [float(vectors[i] @ vectors[i + 1]) for i in range(11)]
    assert body["meanStepSimilarity"] == pytest.approx(np.mean(steps), abs=1e-5)


def test_shorter_paths_never_repeat_and_rise_toward_to(api, publish, http_event, lambda_context) -> None:
    arc_catalogue(publish)
    status, body = call(api, http_event("GET", "/path", {"from": spotify_like_id(0), "to": spotify_like_id(11), "length": "5"}), lambda_context)
    assert status == 200
    path_ids = ids(body["tracks"])
    assert len(path_ids) == 5 and len(set(path_ids)) == 5
    assert path_ids[0] == spotify_like_id(0) and path_ids[-1] == spotify_like_id(11)
    to_end = [t["similarityToTo"] for t in body["tracks"]]
    assert to_end == sorted(to_end)


def layer(*candidates: tuple[str, float, float]) -> Candidates:
    """(track id, closeness to the waypoint, similarity to the end) per candidate."""
    return Candidates([c[0] for c in candidates], np.array([c[1] for c in candidates]), np.array([c[2] for c in candidates]))


def test_the_rising_walk_weighs_the_steps_together() -> None:
    # Step by step, A (nearest its waypoint) would come first and leave only D, far from the second
    # waypoint (closeness 0.9 + 0.2). B then C rises too and lies nearer in sum (0.7 + 0.9).
    layers = [layer(("A", 0.9, 0.8), ("B", 0.7, 0.4)), layer(("C", 0.9, 0.6), ("D", 0.2, 0.85))]
    assert rising_walk(layers, start_to_end=0.2) == ["B", "C"]
    # Nothing may start below the start's own similarity to the end.
    assert rising_walk(layers, start_to_end=0.5) == ["A", "D"]


def test_the_rising_walk_stays_below_the_end_and_says_when_none_rises() -> None:
    # A copy of the end (similarity 1) cannot be the last step: the step into the end would not rise.
    assert rising_walk([layer(("A", 0.9, 0.5)), layer(("copy", 0.99, 1.0), ("C", 0.1, 0.7))], 0.2) == ["A", "C"]
    assert rising_walk([layer(("A", 0.9, 0.5)), layer(("C", 0.9, 0.4))], 0.2) is None
    assert rising_walk([layer(("A", 0.9, 0.5)), layer()], 0.2) is None


def test_paths_over_a_crowded_catalogue_rise_at_every_step(api, publish, http_event, lambda_context) -> None:
    # 60 tracks around one direction, cosines crowded near 0.9 like the mid-level embedding's.
    rng = np.random.default_rng(5)
    centre = unit(rng.normal(size=24))
    vectors = np.array([unit(centre + 0.35 * unit(rng.normal(size=24))) for _ in range(60)], dtype=np.float32)
    publish(vectors=vectors, metas=metas_for(len(vectors)))
    for start, end in ((0, 1), (2, 3), (4, 5), (6, 7)):
        query = {"from": spotify_like_id(start), "to": spotify_like_id(end), "length": "10"}
        status, body = call(api, http_event("GET", "/path", query), lambda_context)
        assert status == 200, body
        path_ids = ids(body["tracks"])
        assert len(path_ids) == 10 and len(set(path_ids)) == 10
        to_end = [t["similarityToTo"] for t in body["tracks"]]
        assert all(b > a for a, b in zip(to_end, to_end[1:], strict=False)), to_end
        assert body["monotoneShare"] == 1.0


@pytest.mark.parametrize(
    ("query", "status", "code", "starts"),
    [
        ({"from": "Nobody0000000000000000", "to": "T000000000000000000002"}, 404, "track_not_found", "from:"),
        ({"from": "T000000000000000000002", "to": "Nobody0000000000000000"}, 404, "track_not_found", "to:"),
        ({"from": "T000000000000000000002", "to": "T000000000000000000002"}, 400, "same_track", ""),
        ({"from": "T000000000000000000001", "to": "T000000000000000000002", "length": "50"}, 400, "path_too_long", ""),
        ({"from": "T000000000000000000001", "to": "T000000000000000000002", "length": "1"}, 400, "bad_request", ""),
        ({"from": "T000000000000000000001"}, 400, "bad_request", ""),
    ],
)
def test_path_explains_what_is_wrong(api, publish, http_event, lambda_context, query, status, code, starts) -> None:
    publish(n=20)
    got, body = call(api, http_event("GET", "/path", query), lambda_context)
    assert_error(got, body, status, code)
    assert body["error"]["message"].startswith(starts)


def test_routes_read_the_stations_table_from_their_dependency(api, publish, http_event, lambda_context) -> None:
    from api.routes import stations as station_routes
    from api.stations_store import StationNotFoundError

    class NoStations:
        def __init__(self) -> None:
            self.loads: list[str] = []

        def load(self, station_id: str) -> None:
            self.loads.append(station_id)
            raise StationNotFoundError(station_id)

    publish(n=10)
    fake = NoStations()
    override(api.app, station_routes.stations_store, fake)
    status, body = station_call(api, http_event, lambda_context, "GET", "A" * 22)
    assert_error(status, body, 404, "station_not_found")
    assert fake.loads == ["A" * 22]


def test_a_station_with_nothing_left_to_play_says_so(api, publish, http_event, lambda_context) -> None:
    publish(n=3)
    station_id = create_station(api, http_event, lambda_context, name="x", seeds=[spotify_like_id(0), spotify_like_id(1)])["stationId"]
    _, body = station_call(api, http_event, lambda_context, "POST", station_id, "/next", {"n": 5})
    assert ids(body["tracks"]) == [spotify_like_id(2)]  # n is cut to the reachable catalogue
    station_call(api, http_event, lambda_context, "POST", station_id, "/feedback", {"trackId": spotify_like_id(2), "signal": "dislike"})
    status, body = station_call(api, http_event, lambda_context, "POST", station_id, "/next", {"n": 5})
    assert_error(status, body, 409, "station_exhausted")
