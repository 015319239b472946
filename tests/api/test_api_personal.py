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
from catalog.listens import ListenTable
from catalog.user_models import UserModelStore
from history.service import import_and_train
from history.training import TrainingSettings
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
    """Sessions of piano then strings: tracks 0-14 (group 0) played 3x more than tracks 30-44 (group 1)."""
    records, t = [], NOW - timedelta(days=20)
    for session in range(30):
        piano = [(3 * session + j) % 15 for j in range(3)]
        for i in [*piano, 30 + session % 15]:
            t += timedelta(minutes=4)
            records.append({"ts": f"{t:%Y-%m-%dT%H:%M:%SZ}", "ms_played": 200_000, "master_metadata_track_name": f"Song {i}",
                            "master_metadata_album_artist_name": f"Artist {i}", "spotify_track_uri": f"spotify:track:{ids[i]}",
                            "skipped": False, "reason_end": "trackdone"})
        t += timedelta(hours=5)
    return records


@pytest.fixture
def personal_api(api: Any, publish: Any, tmp_path: Path) -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    from infra.http_gateway import serve, shutdown

    ids = [spotify_like_id(i) for i in range(CLUSTERS * PER_CLUSTER)]
    # Two artists per group, so that an artist cap of 2 still leaves room.
    publish(ids=ids, vectors=clustered_catalogue(), artists=[[f"Artist {i}"] for i in range(len(ids))])
    boto3.client("dynamodb").create_table(**template_table_params(LISTENS_TABLE, "ListensTable"))
    export = tmp_path / "Streaming_History_Audio_2026.json"
    export.write_text(json.dumps(listener_export(ids)))
    index = IndexCache(os.environ["INDEX_BUCKET"], directory=tmp_path / "train-index").current()
    _, profile = import_and_train(
        "ana", [export], ListenTable(LISTENS_TABLE), UserModelStore(os.environ["INDEX_BUCKET"]), NOW,
        index=index, settings=TrainingSettings(),
    )
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
    assert (body["plays"], body["matchedPlays"], body["sessions"], body["distinctTracks"]) == (120, 120, 30, 30)
    assert body["lastImport"]["added"] == 120 and body["lastImport"]["at"] == "2026-06-01T00:00:00Z"
    assert [t["weight"] for t in body["tastes"]] == pytest.approx([0.75, 0.25], abs=0.03)
    # Unplayed tracks of the liked groups are 0-play examples the model (rightly) rates high: far from 1.
    assert body["models"]["affinity"]["spearman"] > 0.3
    assert body["models"]["continuation"]["heldOutSteps"] == 6 * 3
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
    assert Counter(p // PER_CLUSTER for p in picked) == {0: 6, 1: 2}
    assert Counter(r["taste"] for r in results) == {0: 6, 1: 2}


def test_recommendations_keep_the_artist_cap_and_the_descriptor_filters(personal_api) -> None:
    url, _, _ = personal_api
    capped = requests.get(f"{url}/users/ana/recommendations", params={"k": 20, "maxPerArtist": 1}, timeout=10).json()["results"]
    artists = [r["artists"][0] for r in capped]
    assert len(artists) == len(set(artists)) == 20
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
