"""The personal routes through the loopback gateway, from a listener imported and trained by the history importer."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import requests
from api_testkit import DIM, spotify_like_id

from api.index_cache import IndexCache
from catalog.listens import ListenTable, iso_utc
from catalog.user_models import UserModelStore
from history.importer import import_files
from history.matching import matcher_for
from history.service import train_and_store
from infra.resources import template_table_params

LISTENS_TABLE = "soundslike-test-listens"
CLUSTERS, PER_CLUSTER = 3, 30
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def clustered_catalogue(seed: int = 3) -> np.ndarray:
    """Three tight groups of tracks ("piano", "strings", "organ") in DIM dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM))
    vectors = np.repeat(centres, PER_CLUSTER, axis=0) + 0.25 * rng.normal(size=(CLUSTERS * PER_CLUSTER, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def listener_export(ids: list[str]) -> list[dict[str, Any]]:
    """Sessions of piano, strings, piano, piano, strings: after a piano track this listener mostly goes to
    strings. Tracks 0-14 (group 0) are played 6 times each, tracks 30-44 (group 1) 4 times."""
    records, t = [], NOW - timedelta(days=20)
    for session in range(30):
        p = [(3 * session + j) % 15 for j in range(3)]
        s = [30 + (2 * session + j) % 15 for j in range(2)]
        for i in [p[0], s[0], p[1], p[2], s[1]]:
            t += timedelta(minutes=4)
            records.append({"ts": f"{t:%Y-%m-%dT%H:%M:%SZ}", "ms_played": 200_000, "master_metadata_track_name": f"Song {i}",
                            "master_metadata_album_artist_name": f"Artist {i // 3}", "spotify_track_uri": f"spotify:track:{ids[i]}",
                            "skipped": False, "reason_end": "trackdone"})
        t += timedelta(hours=5)
    return records


@pytest.fixture
def personal_api(api: Any, publish: Any, tmp_path: Path) -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    from infra.http_gateway import serve, shutdown

    ids = [spotify_like_id(i) for i in range(CLUSTERS * PER_CLUSTER)]
    # Three tracks per artist: the artist caps have something to hold back.
    publish(ids=ids, vectors=clustered_catalogue(), artists=[[f"Artist {i // 3}"] for i in range(len(ids))])
    boto3.client("dynamodb").create_table(**template_table_params(LISTENS_TABLE, "ListensTable"))
    export = tmp_path / "Streaming_History_Audio_2026.json"
    export.write_text(json.dumps(listener_export(ids)))
    index = IndexCache(os.environ["INDEX_BUCKET"], directory=tmp_path / "train-index").current()
    assert index is not None
    table = ListenTable(LISTENS_TABLE)
    report = import_files("ana", [export], matcher_for(index), table)
    profile = train_and_store("ana", table, UserModelStore(os.environ["INDEX_BUCKET"]), index, NOW, {"at": iso_utc(NOW), **report.to_json()})
    server, thread = serve(api.lambda_handler)
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}", ids, profile
    finally:
        shutdown(server, thread)


def test_user_shows_counts_sessions_last_import_and_quality(personal_api) -> None:
    url, _, _ = personal_api
    response = requests.get(f"{url}/users/ana", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert (body["plays"], body["matchedPlays"], body["sessions"], body["distinctTracks"]) == (150, 150, 30, 30)
    assert body["lastImport"]["added"] == 150 and body["lastImport"]["at"] == "2026-06-01T00:00:00Z"
    assert [t["weight"] for t in body["tastes"]] == pytest.approx([0.6, 0.4], abs=0.03)
    # Unplayed tracks of the liked groups are 0-play examples the model (rightly) rates high: far from 1.
    assert body["models"]["affinity"]["spearman"] > 0.3
    assert body["models"]["continuation"]["heldOutSteps"] == 6 * 4
    assert requests.get(f"{url}/users/nobody", timeout=10).status_code == 404
    assert requests.get(f"{url}/users/no%20body", timeout=10).status_code == 400


def test_recommendations_are_unheard_and_spread_over_tastes_by_weight(personal_api) -> None:
    url, ids, _ = personal_api
    response = requests.get(f"{url}/users/ana/recommendations", params={"k": 8}, timeout=10)
    assert response.status_code == 200
    results = response.json()["results"]
    picked = [ids.index(r["trackId"]) for r in results]
    assert len(picked) == 8
    heard = set(range(15)) | set(range(30, 45))
    assert not set(picked) & heard
    assert Counter(p // PER_CLUSTER for p in picked) == {0: 5, 1: 3}
    assert Counter(r["taste"] for r in results) == {0: 5, 1: 3}


def test_recommendations_keep_the_artist_cap_and_the_descriptor_filters(personal_api) -> None:
    url, _, _ = personal_api
    capped = requests.get(f"{url}/users/ana/recommendations", params={"k": 20, "maxPerArtist": 1}, timeout=10).json()["results"]
    # 60 unheard tracks by 20 artists: one each.
    artists = [r["artists"][0] for r in capped]
    assert len(artists) == len(set(artists)) == 20
    default = requests.get(f"{url}/users/ana/recommendations", params={"k": 40}, timeout=10).json()["results"]
    assert len(default) == 40 and max(Counter(r["artists"][0] for r in default).values()) == 2
    # The test catalogue has no descriptors: an active filter passes nothing, as on GET /recommendations.
    filtered = requests.get(f"{url}/users/ana/recommendations", params={"minTempo": 90}, timeout=10)
    assert filtered.status_code == 200 and filtered.json()["results"] == []
    bad = requests.get(f"{url}/users/ana/recommendations", params={"minTempo": "fast"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_filter"


def test_affinity_predicts_more_plays_for_the_listeners_taste(personal_api) -> None:
    url, ids, _ = personal_api

    def affinity(i: int) -> dict[str, Any]:
        response = requests.get(f"{url}/users/ana/affinity", params={"trackId": ids[i]}, timeout=10)
        assert response.status_code == 200
        return response.json()

    piano_unheard, organ = affinity(20), affinity(70)
    assert piano_unheard["expectedPlays"] > organ["expectedPlays"]
    assert 0.0 <= organ["score"] < piano_unheard["score"] <= 1.0
    assert affinity(3)["played"] is True and piano_unheard["played"] is False
    missing = requests.get(f"{url}/users/ana/affinity", params={"trackId": "Nope" + "0" * 18}, timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "track_not_found"
    assert requests.get(f"{url}/users/nobody/affinity", params={"trackId": ids[0]}, timeout=10).status_code == 404


def test_continuation_with_user_id_moves_the_way_the_listener_does(personal_api) -> None:
    url, ids, profile = personal_api
    body = {"seeds": [ids[0]], "length": 4, "maxPerArtist": None, "dedupe": False}
    content = requests.post(f"{url}/playlists/continue", json=body, timeout=10)
    personal = requests.post(f"{url}/playlists/continue", json={**body, "userId": "ana"}, timeout=10)
    assert content.status_code == personal.status_code == 200
    assert "userId" not in content.json() and personal.json()["userId"] == "ana"
    group = lambda response: [ids.index(t["trackId"]) // PER_CLUSTER for t in response.json()["tracks"]]  # noqa: E731
    # After a piano track this listener goes to strings; the content-only continuation stays with piano.
    assert group(content) == [0, 0, 0, 0]
    assert group(personal)[0] == 1
    assert profile["models"]["continuation"]["hitAt10"] > profile["models"]["continuation"]["lastTrackNeighbourHitAt10"]
    unknown = requests.post(f"{url}/playlists/continue", json={**body, "userId": "nobody"}, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "user_not_found"
