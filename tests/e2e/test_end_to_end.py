"""The whole flow through the local stack, on a small rendered catalogue:

local folder -> crawler -> S3 -> SQS -> extractor -> Tracks -> stream -> annoy_service
-> index bundle in S3 -> HTTP API on 127.0.0.1, and recommendations that follow the music.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import requests

from catalog.keys import local_track_id
from infra.cli import drain_extract_queue
from infra.stack import LocalStack, running_stack

pytestmark = [pytest.mark.model, pytest.mark.stack]

K = 10
INDEX_WAIT_S = 120.0
# The API rounds similarities to 6 decimals and Annoy computes them in float32: two neighbours
# closer than this may come in either order.
SIMILARITY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def catalogue() -> Path:
    from demo.catalog import build

    return build("small", None, progress=False).folder


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with running_stack() as local:
        yield local


def test_recommendations_follow_the_instrument_through_the_whole_local_pipeline(
    catalogue: Path, stack: LocalStack, tmp_path: Path
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

        piece_of = {local_track_id((catalogue / c["file"]).read_bytes()): c["corpus_path"] for c in clips}
        served_and_measured_agree(api, stack, latest["version"], instrument_of, piece_of, tmp_path)

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


def published_space(stack: LocalStack, version: str, workdir: Path) -> tuple[list[str], npt.NDArray[np.float32]]:
    """The published bundle's tracks and searched-space vectors, read with catalog.bundle's readers:
    the base's raw vectors with the delta's upserts and tombstones, through the base's transform."""
    from catalog.bundle import open_rows
    from catalog.bundle_store import BundleStore

    store = BundleStore(stack.resources.refs["IndexBucket"], stack.client("s3"))
    pointer = store.read_latest().pointer
    assert pointer is not None and pointer.version == version
    manifest = store.read_manifest(pointer.base_version, pointer.base_manifest_sha256)
    store.download_base(manifest, workdir / "base", manifest.row_files)
    reader = open_rows(workdir / "base", manifest)
    try:
        vectors = reader.raw_vectors()
        raw = {track_id: np.array(vectors[item]) for rows in reader.iter_rows() for item, track_id, _ in rows}
        transform = reader.transform  # the manifest's, with its fitted parameters from space.npz
    finally:
        reader.close()
    if pointer.delta_sequence:
        delta = store.download_delta(pointer.delta_key, workdir / "delta.npz", pointer.delta_sha256, manifest.version)
        for track_id in delta.tombstones:
            raw.pop(track_id, None)
        raw |= {track_id: entry.vector for track_id, entry in delta.entries.items()}
    ids = sorted(raw)
    return ids, transform.apply(np.stack([raw[t] for t in ids]))


def served_and_measured_agree(api: str, stack: LocalStack, version: str, instrument_of: dict[str, str],
                              piece_of: dict[str, str], workdir: Path) -> None:
    """What bench/quality_served.py scores is what the bundle holds: every track's whole ranking from
    GET /recommendations is the exact cosine ranking of the published vectors, and the bench's
    instrument_p10 of the API's rankings equals the one of those vectors."""
    from api.constants import EXCLUDE_MAX, K_MAX
    from bench.quality_arms import order_by_similarity
    from bench.quality_served import demo_instrument_p10, ranked_through, ranking_order

    ids, space = published_space(stack, version, workdir)
    similarity: dict[tuple[str, str], float] = {}

    def ask(track_id: str, k: int, exclude: Sequence[str]) -> list[str]:
        params = {"trackId": track_id, "k": k, "dedupe": "false", "exclude": ",".join(exclude)}
        response = requests.get(f"{api}/recommendations", params=params, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["indexVersion"] == version
        results = response.json()["results"]
        similarity.update({(track_id, r["trackId"]): r["similarity"] for r in results})
        return [r["trackId"] for r in results]

    served = ranking_order(ids, ranked_through(ask, ids, K_MAX, EXCLUDE_MAX))
    exact = order_by_similarity(space)
    cosines = space @ space.T
    for i, track_id in enumerate(ids):
        reported = np.array([similarity[(track_id, ids[j])] for j in served[i]])
        assert np.allclose(reported, cosines[i, served[i]], atol=SIMILARITY_TOLERANCE), track_id
        # Position by position the same track, or one exactly as near (a tie within rounding).
        differs = served[i] != exact[i]
        assert np.allclose(cosines[i, served[i][differs]], cosines[i, exact[i][differs]], atol=SIMILARITY_TOLERANCE), track_id

    assert ids == sorted(instrument_of)  # every crawled clip is served, nothing else
    instruments, pieces = [instrument_of[t] for t in ids], [piece_of[t] for t in ids]
    assert demo_instrument_p10(served, pieces, instruments) == demo_instrument_p10(exact, pieces, instruments)
