"""Issue 12's index rows: a damaged index bucket heals itself, and nothing about it answers 500.

Through the real handlers on the local stack: the Tracks stream delivered by the local
pump's StreamPoller to AnnoyServiceFunction, ``make index`` (annoy_service's CLI), and
ApiFunction behind the loopback gateway. A "fresh API" is a new container: a new index
folder, hence a new index cache.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from annoy_service.__main__ import main as make_index
from catalog.bundle_store import BundleStore
from catalog.keys import ANN_FILENAME, INDEX_PREFIX, LATEST_KEY, MANIFEST_FILENAME, bundle_prefix
from catalog.model import MODEL_ID
from catalog.records import Source, TrackRecord, encode_embedding
from catalog.storage import TrackTable
from infra.pump import StreamPoller
from infra.stack import LocalStack, running_stack

pytestmark = pytest.mark.faults

MODEL = MODEL_ID
DIM = 200
_containers = itertools.count()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    saved = dict(os.environ)
    os.environ.update({"INDEX_DEBOUNCE_S": "0", "INDEX_N_TREES": "5", "INDEX_RECHECK_S": "0", "INDEX_COMPACT_SHARE": "10",
                       "SOUNDSLIKE_STATE_DIR": str(tmp_path_factory.mktemp("state"))})
    try:
        with running_stack() as local:
            os.environ.update({"INDEX_DEBOUNCE_S": "0", "INDEX_N_TREES": "5", "INDEX_RECHECK_S": "0", "INDEX_COMPACT_SHARE": "10"})
            yield local
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def api_url(stack: LocalStack) -> Iterator[str]:
    from infra.http_gateway import serve, shutdown

    sys.modules.pop("api.handler", None)
    server, thread = serve(stack.handler("ApiFunction"))
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        shutdown(server, thread)
        sys.modules.pop("api.handler", None)


class Catalogue:
    """The stack's Tracks table, its stream into the real AnnoyServiceFunction, and its index bucket."""

    def __init__(self, stack: LocalStack, tmp_path: Path) -> None:
        self.stack = stack
        self.tmp_path = tmp_path
        self.table = TrackTable(stack.resources.refs["TracksTable"])
        self.bucket = stack.resources.refs["IndexBucket"]
        self.store = BundleStore(self.bucket)
        self.s3 = stack.client("s3")
        self.rng = np.random.default_rng(3)
        handler = stack.handler("AnnoyServiceFunction")
        sys.modules["annoy_service.handler"].dependencies.cache_clear()
        (self.poller,) = stack.pollers(only={"AnnoyServiceFunction"}, handlers={"AnnoyServiceFunction": handler})
        assert isinstance(self.poller, StreamPoller)
        self.poller.window_s = 0.0  # deliver what the stream holds at once
        self.poller.poll_once()  # start after what earlier tests wrote

    def ready(self, *track_ids: str) -> None:
        for track_id in track_ids:
            self.table.mark_ready(track_id, embedding=encode_embedding(self.rng.standard_normal(DIM)), dim=DIM, model=MODEL,
                                  tags={"rock": 0.5}, fallback=TrackRecord(track_id=track_id, source=Source.SPOTIFY,
                                                                           title=track_id, artists=["A"]))

    def deliver(self) -> Any:
        stats = self.poller.poll_once()
        assert stats.invocations >= 1 and stats.errors == 0 and stats.failed == 0
        return stats

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def latest(self) -> Any:
        read = self.store.read_latest()
        assert read.pointer is not None, read.error
        return read.pointer


@pytest.fixture
def catalogue(stack: LocalStack, tmp_path: Path) -> Iterator[Catalogue]:
    catalogue = Catalogue(stack, tmp_path)
    keys = [o["Key"] for page in catalogue.s3.get_paginator("list_objects_v2").paginate(Bucket=catalogue.bucket, Prefix=INDEX_PREFIX)
            for o in page.get("Contents", [])]
    catalogue.store.delete_keys(keys)
    for item in catalogue.table.scan():
        catalogue.table.table.delete_item(Key={"track_id": item["track_id"]})
    catalogue.poller.poll_once()  # the deletions above
    yield catalogue


def fresh_api(api_url: str, tmp_path: Path) -> None:
    """The next requests meet a new container: a new index folder, hence a new index cache."""
    os.environ["INDEX_DIR"] = str(tmp_path / f"container-{next(_containers)}")


def health(api_url: str) -> requests.Response:
    return requests.get(f"{api_url}/health", timeout=30)


def test_junk_latest_is_healed_by_the_next_stream_batch_and_a_fresh_api_falls_back(catalogue, api_url, tmp_path) -> None:
    catalogue.ready(*[f"t{i:02d}" for i in range(10)])
    catalogue.deliver()
    catalogue.ready("t10")
    catalogue.deliver()
    good = catalogue.latest()
    assert good.delta_sequence == 1 and good.count == 11
    catalogue.put(LATEST_KEY, b"{not json")

    fresh_api(api_url, tmp_path)
    response = health(api_url)
    assert response.status_code == 200, response.text
    assert response.json()["indexVersion"] == good.version and response.json()["count"] == 11

    catalogue.ready("t11")
    catalogue.deliver()  # no --force: the stream batch heals LATEST, then publishes its change
    healed = catalogue.latest()
    assert healed.base_version > good.base_version and healed.count == 12
    fresh_api(api_url, tmp_path)
    assert health(api_url).json()["indexVersion"] == healed.version
    response = requests.get(f"{api_url}/recommendations", params={"trackId": "t11", "k": 3}, timeout=30)
    assert response.status_code == 200 and len(response.json()["results"]) == 3


def test_latest_of_the_wrong_shape_never_makes_health_answer_500(catalogue, api_url, tmp_path) -> None:
    catalogue.ready(*[f"t{i:02d}" for i in range(8)])
    catalogue.deliver()
    good = catalogue.latest()
    fresh_api(api_url, tmp_path)
    assert health(api_url).status_code == 200
    catalogue.put(LATEST_KEY, b"[1, 2, 3]")
    for _ in range(3):  # INDEX_RECHECK_S=0: every request re-reads LATEST
        response = health(api_url)
        assert response.status_code == 200 and response.json()["indexVersion"] == good.version
    fresh_api(api_url, tmp_path)
    assert health(api_url).json()["indexVersion"] == good.version  # the newest bundle that verifies
    assert make_index([]) == 0  # make index, no --force
    healed = catalogue.latest()
    assert healed.base_version > good.base_version and healed.count == 8


def test_garbage_tracks_ann_makes_a_fresh_api_fall_back_and_make_index_rebuild_from_the_table(
    catalogue, api_url, tmp_path
) -> None:
    catalogue.ready(*[f"t{i:02d}" for i in range(8)])
    catalogue.deliver()
    older = catalogue.latest()
    catalogue.ready(*[f"u{i:02d}" for i in range(4)])
    assert make_index(["--full"]) == 0  # a second base, which the damage will hit
    newer = catalogue.latest()
    assert newer.base_version > older.base_version and newer.count == 12
    catalogue.poller.poll_once()
    key = bundle_prefix(newer.base_version) + ANN_FILENAME
    size = catalogue.s3.head_object(Bucket=catalogue.bucket, Key=key)["ContentLength"]
    catalogue.put(key, catalogue.rng.bytes(size))  # same size: only the checksum can tell

    fresh_api(api_url, tmp_path)
    response = health(api_url)
    assert response.status_code == 200 and response.json()["indexVersion"] == older.version
    assert make_index([]) == 0
    healed = catalogue.latest()
    assert healed.base_version > newer.base_version and healed.count == 12  # the table still had all 12
    fresh_api(api_url, tmp_path)
    assert health(api_url).json()["indexVersion"] == healed.version


def test_a_missing_manifest_is_healed_by_the_next_stream_batch(catalogue, api_url, tmp_path) -> None:
    catalogue.ready(*[f"t{i:02d}" for i in range(6)])
    catalogue.deliver()
    broken = catalogue.latest()
    catalogue.s3.delete_object(Bucket=catalogue.bucket, Key=bundle_prefix(broken.base_version) + MANIFEST_FILENAME)
    fresh_api(api_url, tmp_path)
    response = health(api_url)
    assert response.status_code == 503 and response.json()["error"]["code"] == "index_unavailable"
    catalogue.ready("t06")
    catalogue.deliver()
    healed = catalogue.latest()
    assert healed.base_version != broken.base_version and healed.count == 7
    assert health(api_url).json()["count"] == 7


def test_the_api_index_folder_follows_the_state_dir_locally_and_tmp_in_lambda(monkeypatch, tmp_path) -> None:
    from api.index_cache import LAMBDA_INDEX_DIR, default_index_dir

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setenv("SOUNDSLIKE_STATE_DIR", str(tmp_path / "stack-a"))
    first = default_index_dir()
    monkeypatch.setenv("SOUNDSLIKE_STATE_DIR", str(tmp_path / "stack-b"))
    second = default_index_dir()
    assert Path(first).parent == tmp_path / "stack-a" and Path(second).parent == tmp_path / "stack-b"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "soundslike-ApiFunction")
    assert default_index_dir() == LAMBDA_INDEX_DIR
