"""What the API serves, scored: clips through the crawler, the extractor and annoy_service, ranked by the API.

bench/quality.py's arms score vectors it pools itself from cached per-patch
outputs. This module scores the other end instead, the answers of
``GET /recommendations``, with every production step in between, in one process
on moto (``mock_aws``) as bench/rebuild.py runs the builder:

1. each clip is crawled as a local file (``crawler.pipeline.process_local_file``:
   a pending Tracks item and a preview object in the audio bucket);
2. the extractor's own :class:`extractor.pipeline.Extraction` prepares (downloads,
   decodes), embeds and finishes (describes, writes the item, deletes the audio)
   the previews in batches of the extractor's SQS batch size from template.yaml;
3. ``annoy_service.service.Indexer.ensure`` (``make index``) builds the base from the
   table, with its catalogue transform, and publishes it (bundle, LATEST.json);
4. the API's Lambda handler, given API Gateway HTTP API v2 events, answers
   ``GET /recommendations`` for every clip from that published index.

Each query's answer is the API's whole ranking of the other clips: ``k`` at most
the route's maximum (api.constants.K_MAX), further pages asked with the clips
already ranked as ``exclude`` (at most api.constants.EXCLUDE_MAX), so a
catalogue of up to ``K_MAX + EXCLUDE_MAX + 1`` clips is ranked whole and no
reciprocal rank is cut off (a larger one raises :class:`ServedPathError`). Requests
say ``dedupe=false``: dropping a second copy of one recording is a list policy
on top of the space, and every clip must stay rankable. The rankings go through
the same metric functions as the arms (bench/quality_arms.py).

Two memos under ``.local/served-cache/`` keep --quick under a minute, each keyed
by the SHA-256 of the clip's bytes and of the code its answer depends on
(:func:`code_fingerprint`: the source files of those packages, the MSD_musicnn
checkpoint and the configured model id), so changed code is run again, never
read from an older answer: the ready Tracks item the crawler and the extractor
wrote (extractor, crawler, catalog), put back into the table as it was; and the
CNN's answer (extractor only), so that when only the crawler or catalog changed the clip
is still downloaded, decoded, described and written by the extractor's code and
only the forward pass is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from numpy.typing import NDArray

from bench.quality_arms import K, Scores, label_precision, same_track

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_ROOT = REPO_ROOT / ".local" / "served-cache"
TRACKS_TABLE = "bench-served-tracks"
AUDIO_BUCKET = "bench-served-audio"
INDEX_BUCKET = "bench-served-index"
INDEX_TOPIC = "bench-served-index-published"

# ask(track_id, k, exclude) -> the API's ranked track ids
Ask = Callable[[str, int, Sequence[str]], list[str]]


class ServedPathError(RuntimeError):
    """A step of the served path did not do what production does: a clip not crawled, extracted, indexed or ranked."""


@dataclass(frozen=True)
class ServedRanking:
    """Every clip's ranking of the others as the API gave it, and what served it."""

    ids: list[str]  # the clips' track ids, in the order of the paths
    order: NDArray[np.intp]  # row i: the other clips' positions, nearest first
    index_version: str
    model: str
    count: int  # tracks in the published index


# -- from the API's lists to the arms' metrics ------------------------------------------------


def ranked_through(ask: Ask, ids: Sequence[str], k_max: int, exclude_max: int) -> dict[str, list[str]]:
    """Each id's ranking of every other id, asked ``k_max`` at a time, the ids already ranked excluded."""
    last_page_excludes = max(0, len(ids) - 2) // k_max * k_max
    if last_page_excludes > exclude_max:
        raise ServedPathError(f"{len(ids)} clips cannot be ranked whole through the API "
                              f"(k at most {k_max}, exclude at most {exclude_max})")
    rankings: dict[str, list[str]] = {}
    for track_id in ids:
        ranked: list[str] = []
        while len(ranked) < len(ids) - 1:
            page = ask(track_id, min(k_max, len(ids) - 1 - len(ranked)), list(ranked))
            if not page:
                raise ServedPathError(f"the API ranked {len(ranked)} of the {len(ids) - 1} other clips for {track_id}")
            ranked += page
        rankings[track_id] = ranked
    return rankings


def ranking_order(ids: Sequence[str], rankings: Mapping[str, Sequence[str]]) -> NDArray[np.intp]:
    """The (n, n - 1) ``order`` array of bench/quality_arms.py from each id's ranked list of the others."""
    position = {track_id: i for i, track_id in enumerate(ids)}
    if len(position) != len(ids):
        raise ValueError("two clips have one track id (identical audio)")
    order = np.empty((len(ids), len(ids) - 1), dtype=np.intp)
    for i, track_id in enumerate(ids):
        ranked = [position.get(other, -1) for other in rankings[track_id]]
        if sorted(ranked) != [j for j in range(len(ids)) if j != i]:
            raise ValueError(f"the ranking of {track_id} is not every other clip once")
        order[i] = ranked
    return order


def dev_scores(order: NDArray[np.intp], tracks: Sequence[str], sources: Sequence[str], k: int = K) -> Scores:
    """same_track_hit10, same_track_mrr and source_p10 of one ranking of the dev set (as score_dev computes them)."""
    track_array, source_array = np.asarray(tracks), np.asarray(sources)
    hit, rr = same_track(order, track_array, k)
    p10, _ = label_precision(order, source_array, track_array, k)
    return Scores(float(hit.mean()), float(rr.mean()), float(p10.mean()), None)


def demo_instrument_p10(order: NDArray[np.intp], pieces: Sequence[str], instruments: Sequence[str], k: int = K) -> float:
    """instrument_p10 of one ranking of the demo catalogue, the query's own piece excluded (as score_demo)."""
    p10, _ = label_precision(order, np.asarray(instruments), np.asarray(pieces), k)
    return float(p10.mean())


# -- the production path ----------------------------------------------------------------------


def code_fingerprint(*packages: str) -> str:
    """SHA-256 of every source file of ``packages``, the MSD_musicnn checkpoint and the configured model id."""
    from catalog.model import configured_model_id
    from extractor.model import CHECKPOINT_FILES, weights_dir

    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((REPO_ROOT / package).glob("*.py")):
            digest.update(f"{package}/{path.name}".encode() + b"\0" + path.read_bytes())
    for name in CHECKPOINT_FILES:
        digest.update((weights_dir() / name).read_bytes())
    digest.update(configured_model_id().encode())
    return digest.hexdigest()


# What each memo's answer depends on: the CNN's answer on the extractor; the ready item on
# everything that writes it (the crawler's record, the extractor's analysis, catalog's records).
EMBEDDING_CODE = ("extractor",)
ITEM_CODE = ("extractor", "crawler", "catalog")


class Memo:
    """What the production path gave for a clip before, by the clip's bytes and a :func:`code_fingerprint`.

    Pickled: whatever production returned is kept as it was, and changed code changes the
    fingerprint, so an object of an older class is never read back.
    """

    def __init__(self, name: str, fingerprint: str, root: Path = CACHE_ROOT) -> None:
        self.name = name
        self.root = root
        self.fingerprint = fingerprint

    def _path(self, data: bytes) -> Path:
        return self.root / f"{hashlib.sha256(data).hexdigest()[:32]}-{self.name}-{self.fingerprint[:16]}.pkl"

    def get(self, data: bytes) -> Any | None:
        path = self._path(data)
        return pickle.loads(path.read_bytes()) if path.is_file() else None

    def put(self, data: bytes, value: Any) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(data)
        partial = path.with_suffix(".partial")  # renamed into place: a crash leaves no half file
        partial.write_bytes(pickle.dumps(value))
        partial.replace(path)


@dataclass(frozen=True)
class Memos:
    embeddings: Memo  # the Embedder's answer (Extraction.embed's), skipping the CNN only
    items: Memo  # the ready Tracks item crawler and extractor left, skipping both

    @classmethod
    def default(cls, root: Path = CACHE_ROOT) -> Memos:
        return cls(Memo("embedding", code_fingerprint(*EMBEDDING_CODE), root), Memo("item", code_fingerprint(*ITEM_CODE), root))


def extractor_batch_size() -> int:
    """ExtractorFunction's SQS batch size in template.yaml: the clips one model pass takes."""
    from infra.template import load_template

    events = load_template()["Resources"]["ExtractorFunction"]["Properties"]["Events"]
    return int(events["Previews"]["Properties"]["BatchSize"])


@contextmanager
def local_aws() -> Iterator[str]:
    """moto in this process with the served path's table, buckets and topic; yields the topic ARN."""
    import boto3
    from moto import mock_aws

    from catalog import storage
    from infra.resources import template_table_params

    environment = {
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "POWERTOOLS_LOG_LEVEL": "WARNING",
        "TRACKS_TABLE": TRACKS_TABLE, "AUDIO_BUCKET": AUDIO_BUCKET, "INDEX_BUCKET": INDEX_BUCKET,
    }  # fmt: skip
    with mock.patch.dict(os.environ, environment), mock_aws():
        os.environ.pop("AWS_ENDPOINT_URL", None)  # moto in process, never a running local stack
        storage.client.cache_clear()
        storage.resource.cache_clear()
        try:
            boto3.client("dynamodb").create_table(**template_table_params(TRACKS_TABLE))
            for bucket in (AUDIO_BUCKET, INDEX_BUCKET):
                boto3.client("s3").create_bucket(Bucket=bucket)
            topic = boto3.client("sns").create_topic(Name=INDEX_TOPIC)["TopicArn"]
            with mock.patch.dict(os.environ, {"INDEX_TOPIC_ARN": topic}):
                yield topic
        finally:
            storage.client.cache_clear()
            storage.resource.cache_clear()


@cache
def _embedder() -> Any:
    from extractor.embed import Embedder

    return Embedder()


def crawl_and_extract(paths: Sequence[Path], memos: Memos, log: Any = sys.stderr) -> list[str]:
    """Every clip crawled as a local file and extracted into a ready Tracks item; their track ids.

    A clip whose ready item this code wrote before gets that item back as it was; the others
    go through the crawler and the extractor, with the CNN's answer remembered.
    """
    from tqdm import tqdm

    from catalog.storage import AudioStore, TrackTable
    from crawler.pipeline import LOCAL_PLAYLIST_PREFIX, Outcome, build_crawler, process_local_file
    from crawler.settings import CrawlerSettings
    from extractor.analysis import Embedded
    from extractor.features import Spectra
    from extractor.pipeline import Clip, Extraction
    from extractor.pipeline import Outcome as Extracted

    table = TrackTable(TRACKS_TABLE)
    crawler = build_crawler(TRACKS_TABLE, AUDIO_BUCKET, None, CrawlerSettings())
    data_of: dict[str, bytes] = {}
    ids, crawled = [], []
    for path in paths:
        data = Path(path).read_bytes()
        item = memos.items.get(data)
        if item is not None:
            table.table.put_item(Item=item)
            track_id = str(item["track_id"])
        else:
            result = process_local_file(crawler, Path(path), LOCAL_PLAYLIST_PREFIX + "bench")
            if result.outcome is not Outcome.NEW:
                raise ServedPathError(f"{path}: crawled as {result.outcome} ({result.reason or 'a clip with the same audio'})")
            track_id = result.track_id
            crawled.append(track_id)
        if track_id in data_of:
            raise ServedPathError(f"{path}: the same audio as another clip")
        data_of[track_id] = data
        ids.append(track_id)

    extraction = Extraction(AudioStore(AUDIO_BUCKET), table, _embedder)
    batch = extractor_batch_size()
    for start in tqdm(range(0, len(crawled), batch), desc="served: extract", unit="batch", file=log):
        clips: list[Clip] = []
        for track_id in crawled[start : start + batch]:
            record = table.get(track_id, consistent=True)
            assert record is not None  # just crawled
            prepared = extraction.prepare(record.audio_key)
            if not isinstance(prepared, Clip):
                raise ServedPathError(f"{track_id}: the extractor settled its preview as {prepared}")
            clips.append(prepared)
        remembered = {clip.track_id: memos.embeddings.get(data_of[clip.track_id]) for clip in clips}
        fresh = [clip for clip in clips if remembered[clip.track_id] is None]
        embedded = dict(zip((clip.track_id for clip in fresh), extraction.embed(fresh), strict=True))
        for clip in clips:
            data = data_of[clip.track_id]
            done = embedded.get(clip.track_id) or Embedded(clip.audio, Spectra.of(clip.audio.samples), remembered[clip.track_id])
            outcome = extraction.finish(clip, done)
            if outcome is not Extracted.READY:
                raise ServedPathError(f"{clip.track_id}: extracted as {outcome}")
            if clip.track_id in embedded:
                memos.embeddings.put(data, done.embedding)
            memos.items.put(data, table.table.get_item(Key={"track_id": clip.track_id}, ConsistentRead=True)["Item"])
    return ids


def publish_index(workdir: Path) -> Any:
    """``make index`` on the fresh bucket: annoy_service builds the base from the table and publishes it."""
    from annoy_service.publisher import Announcer
    from annoy_service.service import Indexer, Result, Settings
    from catalog.bundle_store import BundleStore
    from catalog.storage import TrackTable

    settings = Settings.from_env()
    indexer = Indexer(settings, TrackTable(settings.table), BundleStore(settings.bucket), Announcer(settings.topic_arn),
                      workdir=workdir)
    outcome = indexer.ensure()
    if outcome.result is not Result.REBUILT:
        raise ServedPathError(f"annoy_service did not build the index: {outcome.summary()}")
    return outcome


@contextmanager
def recommendations_api(workdir: Path) -> Iterator[Callable[[str, int, Sequence[str]], dict[str, Any]]]:
    """GET /recommendations through the API's Lambda handler (v2 events), its index cache on the published bucket."""
    from urllib.parse import urlencode

    from api import deps, handler
    from api.index_cache import IndexCache
    from infra.context import LocalLambdaContext
    from infra.http_gateway import Route, build_event

    index_cache = IndexCache(INDEX_BUCKET, directory=workdir / "api-index")
    context = LocalLambdaContext(function_name="ApiFunction", timeout_s=29.0)
    route = Route.parse("GET", "/recommendations")

    def get(track_id: str, k: int, exclude: Sequence[str]) -> dict[str, Any]:
        query = {"trackId": track_id, "k": k, "dedupe": "false"} | ({"exclude": ",".join(exclude)} if exclude else {})
        event = build_event(method="GET", target=f"/recommendations?{urlencode(query)}", headers=[("host", "127.0.0.1")],
                            body=b"", route=route, path_parameters={}, source_ip="127.0.0.1")
        response = handler.lambda_handler(event, context)
        if response["statusCode"] != 200:
            raise ServedPathError(f"GET /recommendations answered {response['statusCode']}: {response['body']}")
        body: dict[str, Any] = json.loads(response["body"])
        return body

    handler.app.dependency_overrides[deps.index_cache] = lambda **_: index_cache
    try:
        yield get
    finally:
        handler.app.dependency_overrides.pop(deps.index_cache, None)
        current = index_cache.current()
        if current is not None:
            current.close()


def served_ranking(paths: Sequence[Path], memos: Memos | None = None, log: Any = sys.stderr) -> ServedRanking:
    """The clips through the whole production path, and every clip's ranking of the others as the API serves it."""
    from tqdm import tqdm

    from api.constants import EXCLUDE_MAX, K_MAX

    memos = memos or Memos.default()
    with tempfile.TemporaryDirectory(prefix="bench-served-") as tmp, local_aws():
        ids = crawl_and_extract(paths, memos, log)
        outcome = publish_index(Path(tmp))
        if outcome.count != len(ids):
            raise ServedPathError(f"the index serves {outcome.count} tracks, {len(ids)} clips were extracted")
        served: set[tuple[str, str]] = set()
        with recommendations_api(Path(tmp)) as get, tqdm(total=len(ids), desc="served: rank", unit="clip", file=log) as bar:

            def ask(track_id: str, k: int, exclude: Sequence[str]) -> list[str]:
                body = get(track_id, k, exclude)
                served.add((body["indexVersion"], body["model"]))
                if len(exclude) + len(body["results"]) >= len(ids) - 1:
                    bar.update()
                return [result["trackId"] for result in body["results"]]

            rankings = ranked_through(ask, ids, K_MAX, EXCLUDE_MAX)
    if len(served) != 1:
        raise ServedPathError(f"the API answered from {len(served)} index versions: {sorted(served)}")
    ((version, model),) = served
    return ServedRanking(ids, ranking_order(ids, rankings), version, model, outcome.count)
