"""Benchmark of keeping the index current: a 100-track change as a delta against a full rebuild.

For each catalogue size a Tracks table (moto, in process) holds that many ready
200-d embeddings and the index bucket holds their base, published by a full
rebuild. Then 100 tracks are extracted (TrackTable.mark_ready, the extractor's
write), their records are read from the table's real DynamoDB stream and handed
to the production path (annoy_service's Indexer), measured in the same run:

* ``items_read_per_change``: Tracks items returned by DynamoDB calls while the
  change is published (botocore's after-call hook counts them);
* ``delta_publish_s`` against ``full_rebuild_s`` (scan + build + upload, what every
  change cost before) and their ratio ``delta_vs_full``;
* ``time_to_recommendable_s``: from the stream record to the API (a fresh
  api.index_cache.IndexCache polled as a container would) returning the new track
  for a query by that track, with the worst-case waits: the record lands just after
  a publication (so the builder's debounce waits its full interval) and the API's
  LATEST check is a full interval old when the delta appears;
* ``compaction_s`` and ``compaction_reads`` (table items read: the base's vectors
  come from the bundle).

    python bench/rebuild.py            # 10k, 100k, 1M with the shipped debounce/recheck
    python bench/rebuild.py --quick    # 10k, 50k with the local stack's 2 s / 2 s, no table scan

Above ``--table-max`` tracks (default 100k) the table is not seeded and no full rebuild
is timed: moto, in process, scans about 130 ready items a second on this host (a 1M
scan would take over two hours and hold the catalogue in Python objects), and nothing
measured at that size reads the table. The base is then written by the bundle's one
writer (``catalog.bundle.write_base``, what the builder calls) from the same generated
vectors, and ``full_rebuild_s`` is null for that size.

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.index import embedding_like_vectors  # noqa: E402
from catalog.model import MODEL_ID  # noqa: E402

DIM = 200
CHANGE = 100
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 50_000)
MODEL = MODEL_ID
QUICK_N_TREES = 10  # --quick only: the shipped 50 trees would not fit its minute
WRITE_BATCH = 25
TABLE_MAX = 100_000
QUICK_TABLE_MAX = 0  # --quick stays under a minute: no table scan (a 10k one takes about 90 s here)


def log(message: str) -> None:
    print(f"[bench/rebuild] {message}", file=sys.stderr, flush=True)


class ItemReads:
    """Tracks items DynamoDB returned to this process (Scan/Query pages, GetItem/BatchGetItem)."""

    def __init__(self) -> None:
        self.items = 0
        self.calls: list[str] = []

    def __call__(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append(model.name)
        self.items += len(parsed.get("Items", [])) + (1 if "Item" in parsed else 0)
        self.items += sum(len(v) for v in parsed.get("Responses", {}).values())


def ready_record(i: int, vector: np.ndarray) -> Any:
    """The i-th generated track as the extractor leaves it: ready, with its embedding."""
    from catalog.records import PreviewSource, Source, Status, TrackRecord, encode_embedding

    return TrackRecord(
        track_id=f"B{i:021d}", source=Source.SPOTIFY, status=Status.READY, title=f"Track {i}",
        artists=[f"Artist {i % 997}"], album=f"Album {i // 12}", preview_source=PreviewSource.DEEZER,
        embedding=encode_embedding(vector), model=MODEL, dim=DIM, tags={"rock": 0.5},
    )


def seed_table(table: Any, n: int, seed: int) -> np.ndarray:
    vectors = embedding_like_vectors(n, seed=seed)
    with table.table.batch_writer() as batch:
        for i in range(n):
            batch.put_item(Item=ready_record(i, vectors[i]).to_item())
    return vectors


def publish_generated_base(store: Any, n: int, n_trees: int, workdir: Path) -> np.ndarray:
    """The base a full rebuild would publish for ``n`` generated ready tracks, without the table."""
    from annoy_service.builder import search_k_for
    from catalog.bundle import BaseRows, TrackMeta, write_base
    from catalog.keys import new_index_version
    from catalog.records import utc_now_iso

    vectors = embedding_like_vectors(n, seed=n)
    chunk = 50_000
    rows = (
        BaseRows(
            [f"B{i:021d}" for i in range(start, min(n, start + chunk))],
            [TrackMeta.from_record(ready_record(i, vectors[i])).to_json() for i in range(start, min(n, start + chunk))],
            vectors[start:start + chunk],
        )
        for start in range(0, n, chunk)
    )
    directory = workdir / "generated-base"
    manifest = write_base(directory, rows, version=new_index_version(), created_at=utc_now_iso(), model=MODEL,
                          n_trees=n_trees, search_k=search_k_for)
    store.publish_base(directory, manifest, utc_now_iso())
    return vectors


def measure(n: int, quick: bool, debounce_s: float, recheck_s: float, table_max: int) -> dict[str, Any]:
    import boto3
    from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
    from moto import mock_aws

    from annoy_service.builder import N_TREES
    from annoy_service.changes import stream_changes
    from annoy_service.publisher import Announcer
    from annoy_service.service import Indexer, Result, Settings
    from api.index_cache import IndexCache
    from api.recommend import recommendations
    from catalog import storage
    from catalog.bundle_store import BundleStore
    from catalog.records import Source, TrackRecord, encode_embedding
    from catalog.storage import TrackTable
    from infra.pump import StreamReader
    from infra.resources import template_table_params

    row: dict[str, Any] = {"n": n, "change": CHANGE}
    with mock_aws(), tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        storage.client.cache_clear()
        storage.resource.cache_clear()
        boto3.client("dynamodb").create_table(**template_table_params("Tracks"))
        boto3.client("s3").create_bucket(Bucket="bench-index")
        topic = boto3.client("sns").create_topic(Name="bench-index")["TopicArn"]
        table = TrackTable("Tracks")
        n_trees = QUICK_N_TREES if quick else N_TREES
        from_table = n <= table_max
        started = time.perf_counter()
        if from_table:
            base_vectors = seed_table(table, n, seed=n)
            log(f"{n:,}: table seeded in {time.perf_counter() - started:.0f} s")
        else:
            base_vectors = publish_generated_base(BundleStore("bench-index"), n, n_trees, Path(tmp))
            log(f"{n:,}: base written from generated vectors in {time.perf_counter() - started:.0f} s (no table)")
        stream = StreamReader("Tracks", boto3.client("dynamodb"), boto3.client("dynamodbstreams"))
        stream.batch()  # the seeding's own records: the base below holds them
        settings = Settings(table="Tracks", bucket="bench-index", topic_arn=topic, debounce_s=debounce_s,
                            n_trees=n_trees, compact_items=10**9, compact_share=10.0)
        phase_started = [time.perf_counter()]

        def progress(message: str) -> None:  # the builder's own steps, timed from the start of the current phase
            log(f"{n:,}:   +{time.perf_counter() - phase_started[0]:.1f} s {message}")

        indexer = Indexer(settings, table, BundleStore("bench-index"), Announcer(topic), workdir=tmp, progress=progress)
        reads = ItemReads()
        events = storage.resource("dynamodb").meta.client.meta.events
        events.register("after-call.dynamodb.*", reads)

        row["full_rebuild_s"] = None
        if from_table:
            started = phase_started[0] = time.perf_counter()
            full = indexer.rebuild_full(force=True)
            row["full_rebuild_s"] = round(time.perf_counter() - started, 2)
            row["full_rebuild_items_read"] = reads.items
            assert full.result is Result.REBUILT and full.count == n
            log(f"{n:,}: full rebuild {row['full_rebuild_s']} s, {reads.items:,} items read")

        rng = np.random.default_rng(7)
        new_ids = [f"N{i:021d}" for i in range(CHANGE)]
        new_vectors = base_vectors[rng.choice(n, CHANGE, replace=False)] + 0.05 * rng.standard_normal((CHANGE, DIM))

        def extract(ids: list[str], vectors: np.ndarray) -> None:
            for track_id, vector in zip(ids, vectors, strict=True):
                crawled = TrackRecord(track_id=track_id, source=Source.SPOTIFY, title=f"New {track_id}", artists=["New"])
                table.mark_ready(track_id, embedding=encode_embedding(vector), dim=DIM, model=MODEL, tags={"pop": 0.5},
                                 fallback=crawled)

        extract(new_ids, new_vectors)
        changes = stream_changes(DynamoDBStreamEvent(stream.batch()).records, MODEL)
        reads.items, reads.calls = 0, []
        indexer.settings = Settings(**{**settings.__dict__, "debounce_s": 0.0})  # the first delta: no wait
        started = phase_started[0] = time.perf_counter()
        outcome = indexer.apply_changes(changes)
        row["delta_publish_s"] = round(time.perf_counter() - started, 3)
        row["items_read_per_change"] = reads.items
        row["dynamodb_calls_per_change"] = len(reads.calls)
        assert outcome.result is Result.DELTA and outcome.count == n + CHANGE
        row["delta_vs_full"] = round(row["full_rebuild_s"] / row["delta_publish_s"], 1) if from_table else None
        log(f"{n:,}: delta of {CHANGE} published in {row['delta_publish_s']} s ({reads.items} items read)")

        # time to recommendable, worst case: a record lands right after that publication.
        indexer.settings = settings
        cache = IndexCache("bench-index", directory=Path(tmp) / "api", recheck_s=recheck_s)
        assert cache.current() is not None  # a warm container; its last LATEST check is now
        probe_id = "P000000000000000000000"
        written = phase_started[0] = time.perf_counter()
        extract([probe_id], base_vectors[:1] + 0.05 * rng.standard_normal((1, DIM)))
        indexer.apply_changes(stream_changes(DynamoDBStreamEvent(stream.batch()).records, MODEL))
        published = time.perf_counter()
        while True:
            index = cache.current()
            if probe_id in index:
                body = recommendations(index, [probe_id], 10)
                assert len(body["results"]) == 10
                break
            time.sleep(0.05)
        row["time_to_recommendable_s"] = round(time.perf_counter() - written, 2)
        row["time_to_publish_s"] = round(published - written, 2)
        log(f"{n:,}: recommendable {row['time_to_recommendable_s']} s after its stream record")

        reads.items, reads.calls = 0, []
        started = phase_started[0] = time.perf_counter()
        compacted = indexer.compact()
        row["compaction_s"] = round(time.perf_counter() - started, 2)
        row["compaction_reads"] = reads.items
        assert compacted.result is Result.COMPACTED and compacted.count == n + CHANGE + 1
        log(f"{n:,}: compaction {row['compaction_s']} s, {reads.items} table items read")
        events.unregister("after-call.dynamodb.*", reads)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 50k, the local stack's debounce and recheck")
    parser.add_argument("--sizes", type=int, nargs="*", help="catalogue sizes (default: 10k 100k 1M; --quick: 10k 50k)")
    parser.add_argument("--table-max", type=int,
                        help=f"largest size seeded in the table and rebuilt from it (above: base from generated vectors; "
                             f"default {TABLE_MAX:,}, --quick: {QUICK_TABLE_MAX:,})")
    args = parser.parse_args(argv)
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "POWERTOOLS_LOG_LEVEL": "WARNING"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from annoy_service.service import DEFAULT_DEBOUNCE_S
    from api.constants import INDEX_RECHECK_S_DEFAULT

    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    debounce_s, recheck_s = (2.0, 2.0) if args.quick else (DEFAULT_DEBOUNCE_S, INDEX_RECHECK_S_DEFAULT)
    table_max = args.table_max if args.table_max is not None else (QUICK_TABLE_MAX if args.quick else TABLE_MAX)
    rows = [measure(n, args.quick, debounce_s, recheck_s, table_max) for n in sizes]
    by_n = {row["n"]: row for row in rows}
    largest = rows[-1]
    rebuilt = [row for row in rows if row["full_rebuild_s"] is not None]
    largest_rebuilt = rebuilt[-1] if rebuilt else {"n": None, "full_rebuild_s": None, "delta_vs_full": None}
    figures: dict[str, Any] = {
        "items_read_per_change": max(row["items_read_per_change"] for row in rows),
        "delta_publish_s": largest["delta_publish_s"],
        "full_rebuild_s": largest_rebuilt["full_rebuild_s"],
        "delta_vs_full": largest_rebuilt["delta_vs_full"],
        "delta_vs_full_at": largest_rebuilt["n"],
        "delta_publish_s_1m": by_n[1_000_000]["delta_publish_s"] if 1_000_000 in by_n else None,
        "delta_vs_full_100k": by_n[100_000]["delta_vs_full"] if 100_000 in by_n else None,
        "time_to_recommendable_s": max(row["time_to_recommendable_s"] for row in rows),
        "compaction_s": largest["compaction_s"],
        "compaction_s_1m": by_n[1_000_000]["compaction_s"] if 1_000_000 in by_n else None,
        "compaction_reads": max(row["compaction_reads"] for row in rows),
        "debounce_s": debounce_s,
        "recheck_s": recheck_s,
        "quick": args.quick,
        "sizes": rows,
    }
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
