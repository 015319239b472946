"""The whole flow through the local stack, on a small rendered catalogue:

local folder -> crawler -> S3 -> SQS -> extractor -> Tracks -> stream -> annoy_service
-> index bundle in S3 -> HTTP API on 127.0.0.1, and recommendations that follow the music.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from catalog.keys import local_track_id
from infra.cli import drain_extract_queue
from infra.stack import LocalStack, running_stack

pytestmark = [pytest.mark.model, pytest.mark.stack]

K = 10
INDEX_WAIT_S = 120.0


@pytest.fixture(scope="module")
def catalogue() -> Path:
    from demo.catalog import build

    return build("small", None, progress=False).folder


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with running_stack() as local:
        yield local


def test_recommendations_follow_the_instrument_through_the_whole_local_pipeline(
    catalogue: Path, stack: LocalStack
) -> None:
    from crawler.pipeline import cli_crawler, crawl_sources
    from infra.http_gateway import shutdown

    clips = json.loads((catalogue / "catalogue.json").read_text())["clips"]
    instrument_of = {local_track_id((catalogue / c["file"]).read_bytes()): c["instrument"] for c in clips}

    # The stream -> annoy_service mapping runs in the background, as in AWS.
    pump = stack.pump(only={"AnnoyServiceFunction"})
    pump.start()
    gateway = None
    try:
        summary = crawl_sources(cli_crawler(), [str(catalogue)])
        assert summary.to_dict()["new"] == len(clips)

        report = drain_extract_queue(stack)
        assert report.dead == 0 and report.ok >= len(clips)
        s3 = stack.client("s3")
        leftovers = s3.list_objects_v2(Bucket=stack.resources.refs["AudioBucket"], Prefix="previews/")
        assert leftovers.get("KeyCount", 0) == 0, "the extractor deletes the audio it has embedded"

        latest = stack.wait_for_index(timeout_s=INDEX_WAIT_S, count=len(clips))

        gateway = stack.serve_api(host="127.0.0.1", port=0)
        api = f"http://127.0.0.1:{gateway[0].server_address[1]}"
        health = requests.get(f"{api}/health", timeout=30).json()
        assert health["indexVersion"] == latest["version"]

        shares = []
        for track_id, instrument in instrument_of.items():
            response = requests.get(f"{api}/recommendations", params={"trackId": track_id, "k": K}, timeout=30)
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert len(results) == K and track_id not in {r["trackId"] for r in results}
            # Descriptors travel from the extractor through the item and the bundle into every answer.
            assert all(r["descriptors"]["camelot"] and r["descriptors"]["loudnessLufs"] < 0 for r in results)
            shares.append(sum(instrument_of[r["trackId"]] == instrument for r in results) / K)

        # A station lives in the local stack's Stations table (made from template.yaml).
        seed = next(iter(instrument_of))
        station = requests.post(f"{api}/stations", json={"name": "e2e", "seeds": [seed]}, timeout=30)
        assert station.status_code == 201, station.text
        played = requests.post(f"{api}/stations/{station.json()['stationId']}/next", json={"n": 5}, timeout=30)
        assert played.status_code == 200 and len(played.json()["tracks"]) == 5
        assert seed not in {t["trackId"] for t in played.json()["tracks"]}
    finally:
        if gateway is not None:
            shutdown(*gateway)
        pump.stop()

    counts = Counter(instrument_of.values())
    n = len(instrument_of)
    # Chance: the expected share of same-instrument tracks among the other n-1 tracks.
    chance = sum(c * (c - 1) for c in counts.values()) / (n * (n - 1))
    mean_share = sum(shares) / len(shares)
    assert mean_share >= 2 * chance, f"same-instrument share {mean_share:.2f} vs chance {chance:.2f}"
