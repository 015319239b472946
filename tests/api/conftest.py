"""Fixtures for the API's tests: moto S3 + DynamoDB, index bundles built with Annoy, the handler."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from api_testkit import (
    DIM,
    MODEL,
    FakeClock,
    PublishedBundle,
    build_bundle,
    clustered_vectors,
    override,
    spotify_like_id,
)
from moto import mock_aws

from catalog.bundle import LatestPointer, TrackMeta
from catalog.bundle_store import BundleStore
from catalog.keys import ANN_FILENAME, bundle_prefix
from catalog.records import utc_now_iso
from infra.context import LocalLambdaContext
from infra.resources import template_table_params

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
INDEX_BUCKET = "soundslike-test-index"
TRACKS_TABLE = "soundslike-test-tracks"
CRAWL_QUEUE = "soundslike-test-crawl"
STATIONS_TABLE = "soundslike-test-stations"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "INDEX_BUCKET": INDEX_BUCKET,
        "TRACKS_TABLE": TRACKS_TABLE,
        "STATIONS_TABLE": STATIONS_TABLE,
        "POWERTOOLS_SERVICE_NAME": "api",
        "POWERTOOLS_METRICS_NAMESPACE": "soundslike",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto S3, DynamoDB and SQS with the index bucket, the Tracks table and CrawlQueue."""
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=INDEX_BUCKET)
        boto3.client("dynamodb").create_table(**template_table_params(TRACKS_TABLE))
        monkeypatch.setenv("CRAWL_QUEUE_URL", boto3.client("sqs").create_queue(QueueName=CRAWL_QUEUE)["QueueUrl"])
        boto3.client("dynamodb").create_table(**template_table_params(STATIONS_TABLE, "StationsTable"))
        yield


@pytest.fixture
def publish(aws: None, tmp_path: Path) -> Callable[..., PublishedBundle]:
    """Upload a base through BundleStore and point LATEST.json at it; ``tamper`` corrupts one part first."""

    def _publish(
        n: int = 50,
        *,
        seed: int = 7,
        dim: int = DIM,
        artists: list[list[str]] | None = None,
        tamper: str | None = None,
        ids: list[str] | None = None,
        vectors: np.ndarray | None = None,
        metas: list[TrackMeta] | None = None,
        descriptors: list[dict[str, Any] | None] | None = None,
    ) -> PublishedBundle:
        track_ids = ids or ([m.track_id for m in metas] if metas else [spotify_like_id(i) for i in range(n)])
        vectors = clustered_vectors(len(track_ids), dim, seed) if vectors is None else vectors
        directory = tmp_path / f"build-{seed}-{tamper}-{len(list(tmp_path.iterdir()))}"
        manifest = build_bundle(directory, track_ids, vectors, artists=artists, metas=metas, descriptors=descriptors)
        store = BundleStore(INDEX_BUCKET)
        manifest_sha = store.upload_base(directory, manifest)
        s3 = boto3.client("s3")
        if tamper == "checksum":
            ann = (directory / ANN_FILENAME).read_bytes()
            s3.put_object(Bucket=INDEX_BUCKET, Key=bundle_prefix(manifest.version) + ANN_FILENAME,
                          Body=ann[:-1] + bytes([ann[-1] ^ 0xFF]))
        if tamper == "dim":
            bad = json.loads(manifest.to_json())
            bad["dim"] = dim + 1
            body = json.dumps(bad).encode()
            s3.put_object(Bucket=INDEX_BUCKET, Key=manifest.manifest_key, Body=body)
            manifest_sha = hashlib.sha256(body).hexdigest()
        pointer = LatestPointer.for_base(manifest, manifest_sha, utc_now_iso())
        store.write_latest(pointer, store.read_latest().etag)
        return PublishedBundle(manifest, pointer, vectors, track_ids)

    return _publish


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="ApiFunction", memory_limit_in_mb=1769)


@pytest.fixture
def api(aws: None, tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    """api.handler with this test's dependencies: the index cache on a fake clock.

    They are swapped through ``app.dependency_overrides`` (Powertools' Depends), so the
    module is imported once and nothing in it is patched; the overrides are dropped afterwards.
    """
    from api import deps, handler
    from api.index_cache import IndexCache

    cache = IndexCache(INDEX_BUCKET, directory=tmp_path / "index", recheck_s=60.0, clock=clock)

    override(handler.app, deps.index_cache, cache)
    try:
        yield handler
    finally:
        handler.app.dependency_overrides.clear()


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text())


@pytest.fixture
def recorded_event() -> Callable[[str], dict[str, Any]]:
    return load_event


@pytest.fixture
def http_event() -> Callable[..., dict[str, Any]]:
    """A v2 event from the recorded shape in tests/events/, with the method, path and query replaced."""

    def _event(
        method: str, path: str, query: dict[str, str] | None = None, route: str | None = None, body: Any = None
    ) -> dict[str, Any]:
        event = load_event("api_get_recommendations.json")
        route_key = f"{method} {route or path}"
        event["routeKey"] = event["requestContext"]["routeKey"] = route_key
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        if query:
            event["queryStringParameters"] = dict(query)
        else:
            event.pop("queryStringParameters", None)
        if route and "{trackId}" in route:
            event["pathParameters"] = {"trackId": path.rsplit("/", 1)[-1]}
        if route and "{stationId}" in route:
            event["pathParameters"] = {"stationId": path.split("/")[2]}
        if body is not None:
            event["body"] = json.dumps(body)
            event["isBase64Encoded"] = False
            event["headers"]["content-type"] = "application/json"
        return event

    return _event


EXAMPLE_TRACK_ID = "4uLU6hMCjMI75M1A2tKUQC"


@dataclasses.dataclass
class FakeClipEmbedding:
    vector: Any
    tags: dict[str, float] = dataclasses.field(default_factory=lambda: {"rock": 0.5})
    model: str = MODEL


@dataclasses.dataclass
class FakeClipDescriptors:
    def to_json(self) -> dict[str, Any]:
        return {"tempoBpm": 100.0, "mode": "minor", "camelot": "8A", "loudnessLufs": -14.0}


@dataclasses.dataclass
class FakeClipAnalysis:
    embedding: FakeClipEmbedding
    descriptors: FakeClipDescriptors = dataclasses.field(default_factory=FakeClipDescriptors)


@pytest.fixture
def served_api(
    api: Any, publish: Callable[..., PublishedBundle]
) -> Iterator[tuple[str, PublishedBundle]]:
    """The api on the loopback gateway, routes and authorizers from template.yaml, one published index."""
    from catalog.records import Source, Status, TrackRecord
    from catalog.storage import TrackTable
    from infra.http_gateway import serve, shutdown

    ids = [EXAMPLE_TRACK_ID] + [spotify_like_id(i) for i in range(1, 80)]
    bundle = publish(ids=ids, artists=[[f"Artist {i % 9}"] for i in range(80)])
    table = TrackTable(TRACKS_TABLE)
    for i, track_id in enumerate(ids[:10]):
        table.table.put_item(
            Item=TrackRecord(track_id=track_id, source=Source.SPOTIFY, status=Status.READY, title=f"Song {i}").to_item()
        )
    # POST /recommendations/by-audio is ByAudioFunction's: the same index cache, and an
    # embedder that answers any decodable clip with track 0's vector (no TensorFlow here).
    from api import by_audio_handler, deps
    from api.routes import by_audio

    by_audio_handler.app.dependency_overrides[deps.index_cache] = api.app.dependency_overrides[deps.index_cache]
    override(by_audio_handler.app, by_audio.audio_analyser, lambda clip: FakeClipAnalysis(FakeClipEmbedding(bundle.vectors[0])))
    server, thread = serve(api.lambda_handler, also={"ByAudioFunction": by_audio_handler.lambda_handler})
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}", bundle
    finally:
        shutdown(server, thread)
        by_audio_handler.app.dependency_overrides.clear()
