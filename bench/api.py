"""Benchmark of the API: cold start, metadata open, memory and warm latency, against downloading the index per request.

For each size (10k, 100k and 1M tracks, 200-d embeddings as musicnn's penultimate
layer gives) a base is written by the bundle's one writer (catalog.bundle.write_base)
and published to a local S3 (moto's server on 127.0.0.1). Measured in one run:

* cold start: a fresh Python process imports api.handler and answers its first
  request (LATEST + download + SHA-256 + open), with Annoy's prefault off and on,
  and that process's peak RSS;
* ``metadata_open_ms``: opening the base's meta.sqlite and reading one track's
  metadata by id (what replaced parsing a manifest of every track);
* warm p50/p99 of the Lambda handler called in-process, of a real HTTP request
  through the loopback API Gateway, and of the handler again once a delta of 10k
  tracks is merged in;
* the baseline, what the original did per request: download the bundle from
  S3, open it, query, answer.

Ends with one JSON line. ``--quick`` runs smaller sizes in under a minute.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from annoy_service.builder import N_TREES, search_k_for  # noqa: E402 - the index the annoy_service publishes
from api.recommend import recommendations  # noqa: E402
from api.served import ServedIndex  # noqa: E402
from catalog.bundle import (  # noqa: E402
    SERVING_FILES,
    BaseManifest,
    BaseReader,
    BaseRows,
    Delta,
    TrackMeta,
    write_base,
)
from catalog.bundle_store import BundleStore  # noqa: E402
from catalog.keys import META_FILENAME, new_index_version  # noqa: E402
from catalog.model import MODEL_ID  # noqa: E402
from catalog.records import utc_now_iso  # noqa: E402

EMBEDDING_DIM = 200
K_RESULTS = 10
CLUSTERS = 64
TAGS = ("rock", "pop", "jazz", "electronic", "guitar", "female vocalists", "chill", "beat", "piano", "dance")
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000)
DELTA_TRACKS = 10_000
QUICK_DELTA_TRACKS = 1_000
QUICK_N_TREES = 10  # --quick only, to fit its minute
WRITE_CHUNK = 50_000
TRACKS_TABLE = "bench-tracks"


def log(message: str) -> None:
    print(f"[bench/api] {message}", file=sys.stderr, flush=True)


def size_label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def percentiles_ms(samples_s: list[float]) -> tuple[float, float]:
    values = np.asarray(samples_s) * 1000.0
    return round(float(np.percentile(values, 50)), 3), round(float(np.percentile(values, 99)), 3)


def embeddings(n: int, seed: int) -> npt.NDArray[np.float32]:
    """Clustered unit vectors, closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, EMBEDDING_DIM))
    vectors = centres[rng.integers(0, CLUSTERS, size=n)] + 0.6 * rng.normal(size=(n, EMBEDDING_DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def track_id(i: int, prefix: str = "B") -> str:
    return f"{prefix}{i:021d}"


def track_meta(i: int, n: int, rng: np.random.Generator, prefix: str = "B") -> TrackMeta:
    return TrackMeta(
        track_id=track_id(i, prefix),
        title=f"Track {i}",
        artists=(f"Artist {i % max(1, n // 4)}",),
        album=f"Album {i // 12}",
        isrc=f"GBAAA{i:07d}",
        duration_ms=180_000 + i % 60_000,
        source="spotify",
        preview_source="deezer" if i % 3 else "spotify",
        tags={TAGS[t]: round(float(p), 4) for t, p in zip(rng.choice(len(TAGS), 3, replace=False), rng.random(3), strict=True)},
    )


def build_bundle(n: int, directory: Path, seed: int, n_trees: int) -> BaseManifest:
    vectors = embeddings(n, seed)
    rng = np.random.default_rng(seed + 1)
    rows = (
        BaseRows([track_id(i) for i in range(s, min(n, s + WRITE_CHUNK))],
                 [track_meta(i, n, rng).to_json() for i in range(s, min(n, s + WRITE_CHUNK))], vectors[s:s + WRITE_CHUNK])
        for s in range(0, n, WRITE_CHUNK)
    )
    return write_base(directory, rows, version=new_index_version(), created_at=utc_now_iso(), model=MODEL_ID,
                      n_trees=n_trees, search_k=search_k_for)


def publish(store: BundleStore, manifest: BaseManifest, directory: Path) -> None:
    store.s3.create_bucket(Bucket=store.bucket)
    store.publish_base(directory, manifest, utc_now_iso())


def publish_delta(store: BundleStore, n: int, count: int, directory: Path) -> None:
    """A delta of ``count`` new tracks over the published base, as the annoy_service writes one."""
    read = store.read_latest()
    pointer = read.pointer
    delta = Delta(pointer.base_version, 1, pointer.model, pointer.dim, utc_now_iso())
    rng = np.random.default_rng(n + 2)
    for i, vector in enumerate(embeddings(count, n + 3)):
        delta.upsert(track_meta(i, count, rng, prefix="D"), vector, was_indexed=False)
    file = store.upload_delta(delta, directory / "delta.npz")
    store.write_latest(pointer.with_delta(delta, file, utc_now_iso()), read.etag)


def metadata_open_ms(directory: Path, manifest: BaseManifest, probe: str) -> float:
    """Open meta.sqlite as the API does and read one track's metadata by id (median of 5 fresh opens)."""
    import sqlite3

    times = []
    for _ in range(5):
        started = time.perf_counter()
        db = sqlite3.connect(f"{(directory / META_FILENAME).resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        (meta,) = db.execute("SELECT meta FROM tracks WHERE track_id = ?", (probe,)).fetchone()
        TrackMeta.from_json(meta)
        times.append(time.perf_counter() - started)
        db.close()
    return round(float(np.median(times)) * 1e3, 3)


def recommendations_event(track: str) -> dict[str, Any]:
    from infra.http_gateway import Route, build_event

    return build_event(
        method="GET",
        target=f"/recommendations?trackId={track}&k={K_RESULTS}",
        headers=[("host", "127.0.0.1"), ("user-agent", "bench")],
        body=b"",
        route=Route.parse("GET", "/recommendations"),
        path_parameters={},
        source_ip="127.0.0.1",
    )


COLD_START_SCRIPT = """
import json, sys, time
started = time.perf_counter()
import api.handler as handler
imported = time.perf_counter()


class LambdaContext:
    function_name = "ApiFunction"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    aws_request_id = "bench"


event = json.loads(sys.argv[1])
response = handler.lambda_handler(event, LambdaContext())
answered = time.perf_counter()
assert response["statusCode"] == 200, response
events = json.loads(sys.argv[2])
first = []
for e in events:
    t = time.perf_counter()
    handler.lambda_handler(e, LambdaContext())
    first.append(time.perf_counter() - t)
peak_kb = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"import_s": imported - started, "first_request_s": answered - imported, "first_queries_s": first,
                  "peak_rss_mb": peak_kb / 1024}))
"""


def cold_start(bucket: str, index_dir: Path, prefault: bool, events: list[dict[str, Any]]) -> dict[str, float]:
    env = {
        **os.environ,
        "INDEX_BUCKET": bucket,
        "INDEX_DIR": str(index_dir),
        "INDEX_PREFAULT": "true" if prefault else "false",
        "PYTHONPATH": str(REPO_ROOT),
        "POWERTOOLS_LOG_LEVEL": "INFO",  # for the "index loaded" line and its timings
    }
    out = subprocess.run(
        [sys.executable, "-c", COLD_START_SCRIPT, json.dumps(events[0]), json.dumps(events[1:])],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=600,
    )
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result = lines[-1]
    (loaded,) = [line for line in lines if line.get("message") == "index loaded"]
    p50, p99 = percentiles_ms(result["first_queries_s"])
    return {
        "index_fetch_and_load_s": loaded["seconds"],
        "import_s": round(result["import_s"], 3),
        "first_request_s": round(result["first_request_s"], 3),
        "cold_start_s": round(result["import_s"] + result["first_request_s"], 3),
        "first_queries_p50_ms": p50,
        "first_queries_p99_ms": p99,
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
    }


def baseline_request(store: BundleStore, workdir: Path, track: str) -> list[dict[str, Any]]:
    """What the original did on every request: fetch the index from S3, open it, query it."""
    pointer = store.read_latest().pointer
    manifest = store.read_manifest(pointer.base_version)
    directory = workdir / "baseline"
    store.download_base(manifest, directory, SERVING_FILES)
    index = ServedIndex(BaseReader.open(directory, manifest, verify=False), None, pointer.version)
    # The same answer as the handler's (its list policy asks the index for more candidates than k):
    # the baseline differs from the API only in fetching and opening the bundle per request.
    results: list[dict[str, Any]] = recommendations(index, [track], K_RESULTS)["results"]
    index.close()
    for name in SERVING_FILES:
        (directory / name).unlink()
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes 2k and 10k, fewer requests (under a minute)")
    parser.add_argument("--warm-requests", type=int, default=None, help="warm handler and HTTP requests per size")
    parser.add_argument("--baseline-requests", type=int, default=None, help="per-request-download baseline requests per size")
    parser.add_argument("--sizes", type=int, nargs="*", help="catalogue sizes (default: 10k 100k 1M; --quick: 2k 10k)")
    args = parser.parse_args(argv)
    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    n_trees = QUICK_N_TREES if args.quick else N_TREES
    delta_tracks = QUICK_DELTA_TRACKS if args.quick else DELTA_TRACKS
    warm_n = args.warm_requests or (300 if args.quick else 3000)
    baseline_n = args.baseline_requests or (3 if args.quick else 10)

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per S3 request otherwise
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "INDEX_BUCKET": "bench-index-unused",
            "TRACKS_TABLE": TRACKS_TABLE,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_SERVICE_NAME": "api",
        }
    )
    import boto3

    s3 = boto3.client("s3")
    figures: dict[str, Any] = {
        "sizes": list(sizes), "dim": EMBEDDING_DIM, "n_trees": n_trees, "k": K_RESULTS, "delta_tracks": delta_tracks,
        "warm_requests": warm_n, "baseline_requests": baseline_n,
    }
    try:
        with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
            workdir = Path(tmp)
            import api.handler as handler
            from api import deps
            from api.index_cache import IndexCache
            from infra.context import LocalLambdaContext
            from infra.http_gateway import serve, shutdown

            for n in sizes:
                label = size_label(n)
                bucket = f"bench-index-{label}"
                build_dir = workdir / f"build-{label}"
                build_dir.mkdir()
                log(f"{label}: writing a {n}-track, {EMBEDDING_DIM}-d base ({n_trees} trees)")
                started = time.perf_counter()
                manifest = build_bundle(n, build_dir, seed=n, n_trees=n_trees)
                sizes_mb = {name: round(f.bytes / 1e6, 1) for name, f in manifest.files.items()}
                figures[f"files_mb_{label}"] = sizes_mb
                log(f"{label}: written in {time.perf_counter() - started:.1f} s ({sizes_mb} MB); publishing to local S3")
                store = BundleStore(bucket, s3)
                publish(store, manifest, build_dir)
                rng = np.random.default_rng(n)
                queries = [track_id(int(i)) for i in rng.integers(0, n, size=warm_n)]
                figures[f"metadata_open_ms_{label}"] = metadata_open_ms(build_dir, manifest, queries[0])
                shutil.rmtree(build_dir)
                events = [recommendations_event(t) for t in queries]

                for prefault in (False, True):
                    log(f"{label}: cold start, prefault {'on' if prefault else 'off'}")
                    cold = cold_start(bucket, workdir / f"cold-{label}-{prefault}", prefault, events[:101])
                    shutil.rmtree(workdir / f"cold-{label}-{prefault}", ignore_errors=True)
                    suffix = "prefault" if prefault else "noprefault"
                    for key, value in cold.items():
                        figures[f"{key}_{suffix}_{label}"] = value
                figures[f"cold_start_s_{label}"] = figures[f"cold_start_s_prefault_{label}"]  # the API's default
                figures[f"peak_rss_mb_{label}"] = figures[f"peak_rss_mb_prefault_{label}"]

                # The warm container's clock: advanced by hand below, so that its next LATEST check
                # comes exactly when the delta is there (and never during the timed requests).
                now = [0.0]
                warm_cache = IndexCache(bucket, directory=workdir / f"warm-{label}", clock=lambda now=now: now[0])
                handler.app.dependency_overrides[deps.index_cache] = lambda cache=warm_cache, **_: cache
                context = LocalLambdaContext(function_name="ApiFunction", timeout_s=29)
                first = handler.lambda_handler(events[0], context)
                assert first["statusCode"] == 200, first
                log(f"{label}: {warm_n} warm handler requests")
                handler_s, handler_cpu_s = [], []
                for event in events:
                    t, cpu = time.perf_counter(), time.thread_time()
                    response = handler.lambda_handler(event, context)
                    handler_s.append(time.perf_counter() - t)
                    handler_cpu_s.append(time.thread_time() - cpu)
                    if response["statusCode"] != 200:
                        raise RuntimeError(f"handler answered {response['statusCode']}: {response['body']}")
                figures[f"p50_ms_{label}"], figures[f"p99_ms_{label}"] = percentiles_ms(handler_s)
                # CPU time of the request's own thread: what the handler costs when the machine is not shared.
                figures[f"cpu_p50_ms_{label}"], figures[f"cpu_p99_ms_{label}"] = percentiles_ms(handler_cpu_s)

                log(f"{label}: {warm_n} warm HTTP requests through the loopback gateway")
                server, thread = serve(handler.lambda_handler)
                url = "http://{}:{}/recommendations".format(*server.server_address[:2])
                http_s = []
                with requests.Session() as session:
                    for track in queries:
                        t = time.perf_counter()
                        response = session.get(url, params={"trackId": track, "k": K_RESULTS}, timeout=10)
                        http_s.append(time.perf_counter() - t)
                        response.raise_for_status()
                shutdown(server, thread)
                figures[f"http_p50_ms_{label}"], figures[f"http_p99_ms_{label}"] = percentiles_ms(http_s)

                log(f"{label}: {baseline_n} baseline requests (download + load the bundle each time)")
                baseline_s = []
                for track in queries[:baseline_n]:
                    t = time.perf_counter()
                    results = baseline_request(store, workdir, track)
                    baseline_s.append(time.perf_counter() - t)
                    ours = json.loads(handler.lambda_handler(recommendations_event(track), context)["body"])["results"]
                    if [r["trackId"] for r in results] != [r["trackId"] for r in ours]:
                        raise RuntimeError("baseline and API disagree on the neighbours")
                figures[f"baseline_p50_ms_{label}"], figures[f"baseline_p99_ms_{label}"] = percentiles_ms(baseline_s)
                figures[f"speedup_vs_download_{label}"] = round(
                    figures[f"baseline_p50_ms_{label}"] / figures[f"p50_ms_{label}"], 1
                )
                log(
                    f"{label}: handler p50 {figures[f'p50_ms_{label}']} ms p99 {figures[f'p99_ms_{label}']} ms; "
                    f"HTTP p50 {figures[f'http_p50_ms_{label}']} ms; baseline p50 {figures[f'baseline_p50_ms_{label}']} ms"
                )
                log(f"{label}: a delta of {delta_tracks} tracks merged; {warm_n} warm handler requests again")
                publish_delta(store, n, delta_tracks, workdir)
                # As a warm container meets it: its next LATEST check loads the delta, the base stays mapped.
                base_before = warm_cache.current().base
                now[0] += warm_cache.recheck_s
                assert handler.lambda_handler(events[0], context)["statusCode"] == 200
                assert warm_cache.current().delta_sequence == 1 and warm_cache.current().base is base_before
                merged_s = []
                for event in events:
                    t = time.perf_counter()
                    response = handler.lambda_handler(event, context)
                    merged_s.append(time.perf_counter() - t)
                    if response["statusCode"] != 200:
                        raise RuntimeError(f"handler answered {response['statusCode']}: {response['body']}")
                figures[f"p50_ms_delta_{label}"], figures[f"p99_ms_delta_{label}"] = percentiles_ms(merged_s)
                del warm_cache, base_before
                handler.app.dependency_overrides.pop(deps.index_cache)  # frees this size's index before the next
                shutil.rmtree(workdir / f"warm-{label}", ignore_errors=True)

            largest = size_label(sizes[-1])
            figures["speedup_vs_download"] = figures[f"speedup_vs_download_{largest}"]
            for key in ("p50_ms", "p99_ms", "cold_start_s", "metadata_open_ms", "peak_rss_mb", "p99_ms_delta"):
                figures[key] = figures[f"{key}_{largest}"]
            figures["metadata_open_ms_max"] = max(figures[f"metadata_open_ms_{size_label(n)}"] for n in sizes)
    finally:
        moto.stop()
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
