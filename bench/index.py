"""Benchmark of the served index at its shipped settings (N_TREES, search_k), base + delta, beside Voyager.

For 10k, 100k and 1M generated 200-d vectors: a base written by the bundle's one
writer (catalog.bundle.write_base) over all but the last ``delta`` vectors, which
form a delta; build time, file sizes and peak RSS of the building process;
recall@10 and recall@100 of base + delta through the API's own search
(api.served.ServedIndex.search, the path production runs) against exact numpy
search over all vectors, in the same process; Annoy's search_k ladder for
recall@100; Voyager (HNSW) on the same vectors, for the same recalls; and, as the
worst case, recall on structureless isotropic Gaussian vectors.

    python bench/index.py            # full run (1M included; many minutes)
    python bench/index.py --quick    # smaller sizes, under a minute

Ends with one JSON line: recall_at_10, recall_at_100, speedup_vs_exact_100k, build_s_1m, voyager, ...
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annoy_service.builder import N_TREES, search_k_for  # noqa: E402
from api.served import ServedIndex  # noqa: E402
from catalog.bundle import BaseReader, BaseRows, Delta, TrackMeta, write_base  # noqa: E402

DIM = 200
TOP_K = 10
DEEP_K = 100  # radio and continuation ask for 100 or more neighbours
DELTA_MAX = 10_000
QUICK_N_TREES = 10  # --quick only, to fit its minute; the full run uses the shipped N_TREES
VOYAGER_M = 16
VOYAGER_EF_CONSTRUCTION = 200
VOYAGER_QUERY_EF = (100, 200, 400)
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 50_000)
FULL_QUERIES = 200
QUICK_QUERIES = 100
EXACT_TIMED_QUERIES = 50
LADDER_SEARCH_K = (5_000, 10_000, 20_000, 40_000)
GENERATE_CHUNK_ROWS = 100_000
LATENT_DIM = 32
LATENT_CLUSTERS = 64


def embedding_like_vectors(n: int, dim: int = DIM, seed: int = 0, noise: float = 0.1) -> npt.NDArray[np.float32]:
    """L2-normalised vectors shaped like musicnn's penultimate layer.

    That layer is a 200-unit dense ReLU layer over a network whose inputs live on a
    low-dimensional musical manifold that clusters (genres, moods). So: points of a
    64-cluster Gaussian mixture in 32 dims, through a random dense layer, ReLU, plus
    small isotropic noise. Isotropic Gaussian vectors would be no model of it: in 200
    dims their 10th neighbour is barely closer than a random item, and every ANN
    index degrades to a full scan on them (measured below as the worst case).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((LATENT_CLUSTERS, LATENT_DIM)).astype(np.float32)
    weights = (rng.standard_normal((LATENT_DIM, dim)) / np.sqrt(LATENT_DIM)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, GENERATE_CHUNK_ROWS):
        rows = min(GENERATE_CHUNK_ROWS, n - start)
        latent = centres[rng.integers(0, LATENT_CLUSTERS, rows)]
        latent += 0.7 * rng.standard_normal((rows, LATENT_DIM)).astype(np.float32)
        x = np.maximum(latent @ weights + 0.3, 0.0)
        x += noise * rng.standard_normal((rows, dim)).astype(np.float32)
        out[start:start + rows] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def isotropic_vectors(n: int, dim: int = DIM, seed: int = 0) -> npt.NDArray[np.float32]:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_neighbours(vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.int64], k: int = TOP_K) -> npt.NDArray[np.int64]:
    """Top-k by cosine for each query item, the item itself left out (chunked: 1M x 200 queries won't fit at once)."""
    found = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 20):
        chunk = queries[start:start + 20]
        sims = vectors[chunk] @ vectors.T
        sims[np.arange(len(chunk)), chunk] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        found[start:start + len(chunk)] = np.take_along_axis(top, order, axis=1)
    return found


def build_served(vectors: npt.NDArray[np.float32], n_base: int, n_trees: int, directory: Path) -> ServedIndex:
    """Base of the first ``n_base`` vectors through the one writer, the rest as a delta: what the API serves."""
    ids = [f"B{i:021d}" for i in range(len(vectors))]
    rows = (
        BaseRows(ids[s:min(s + 50_000, n_base)], [TrackMeta(track_id=i).to_json() for i in ids[s:min(s + 50_000, n_base)]],
                 vectors[s:min(s + 50_000, n_base)])
        for s in range(0, n_base, 50_000)
    )
    manifest = write_base(directory, rows, version="bench", created_at="2026-12-01T00:00:00Z", model="bench",
                          n_trees=n_trees, search_k=search_k_for)
    delta = Delta("bench", 1, "bench", vectors.shape[1])
    for i in range(n_base, len(vectors)):
        delta.upsert(TrackMeta(track_id=ids[i]), vectors[i], was_indexed=False)
    return ServedIndex(BaseReader.open(directory, manifest), delta, "bench+1")


def served_recall(index: ServedIndex, vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.int64],
                  truth: npt.NDArray[np.int64], k: int) -> tuple[float, float]:
    """(recall@k, median seconds of one search) of base + delta through ServedIndex.search, as the API queries."""
    hits, times = 0, []
    for i, expected in zip(queries, truth, strict=True):
        query_id = f"B{int(i):021d}"
        started = time.perf_counter()
        found = index.search(vectors[i], k, exclude={query_id})
        times.append(time.perf_counter() - started)
        hits += len({int(n.track_id[1:]) for n in found} & set(expected[:k].tolist()))
    return hits / (len(queries) * k), float(np.median(times))


def voyager_recall(vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> dict[str, Any]:
    """Voyager (HNSW, cosine) on the same vectors: build time, size and recall@10/@100 per query ef."""
    from voyager import Index, Space

    index = Index(Space.Cosine, num_dimensions=vectors.shape[1], M=VOYAGER_M, ef_construction=VOYAGER_EF_CONSTRUCTION)
    started = time.perf_counter()
    index.add_items(vectors, num_threads=-1)
    result: dict[str, Any] = {"M": VOYAGER_M, "ef_construction": VOYAGER_EF_CONSTRUCTION,
                              "build_s": round(time.perf_counter() - started, 2),
                              "index_mb": round(len(index.as_bytes()) / 1e6, 1), "by_query_ef": []}
    for ef in VOYAGER_QUERY_EF:
        recalls: dict[int, int] = {TOP_K: 0, DEEP_K: 0}
        times = []
        for i, expected in zip(queries, truth, strict=True):
            started = time.perf_counter()
            labels, _ = index.query(vectors[i], k=DEEP_K + 1, num_threads=1, query_ef=max(ef, DEEP_K + 1))
            times.append(time.perf_counter() - started)
            found = [int(j) for j in labels if j != i]
            for k in recalls:
                recalls[k] += len(set(found[:k]) & set(expected[:k].tolist()))
        result["by_query_ef"].append({
            "query_ef": max(ef, DEEP_K + 1), "recall_at_10": round(recalls[TOP_K] / (len(queries) * TOP_K), 4),
            "recall_at_100": round(recalls[DEEP_K] / (len(queries) * DEEP_K), 4),
            "ms_per_query_k100": round(float(np.median(times)) * 1e3, 3),
        })
    return result


def time_exact_query_s(vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.int64]) -> float:
    """Median seconds of one exact query, as a service without an index would answer it.

    On one BLAS thread, like an Annoy query: on this shared 2-core machine a second
    BLAS thread mostly adds synchronisation stalls to a matrix-vector product.
    """
    vectors @ vectors[queries[0]]  # warm-up: page the matrix in
    times = []
    with threadpool_limits(limits=1):
        for i in queries[:EXACT_TIMED_QUERIES]:
            started = time.perf_counter()
            sims = vectors @ vectors[i]
            sims[i] = -np.inf
            top = np.argpartition(-sims, TOP_K)[:TOP_K]
            top[np.argsort(-sims[top])]
            times.append(time.perf_counter() - started)
    return float(np.median(times))


def annoy_recall(index: Any, queries: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], search_k: int, k: int) -> tuple[float, float]:
    """(recall@k, median seconds of one query) of the base's Annoy alone at ``search_k``."""
    hits = 0
    times = []
    for i, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = index.get_nns_by_item(int(i), k + 1, search_k=search_k)
        times.append(time.perf_counter() - started)
        hits += len(set([j for j in found if j != i][:k]) & set(expected[:k].tolist()))
    return hits / (len(queries) * k), float(np.median(times))


def reset_peak_rss() -> None:
    """Linux resets VmHWM (peak RSS) when 5 is written to clear_refs, so a peak can be taken per phase."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure_size(n: int, n_queries: int, n_trees: int, voyager: bool) -> dict[str, Any]:
    """Runs in its own process so that peak RSS belongs to this size alone."""
    vectors = embedding_like_vectors(n, seed=n)
    reset_peak_rss()
    queries = np.random.default_rng(1).choice(n, n_queries, replace=False)
    n_delta = min(DELTA_MAX, n // 10)
    row: dict[str, Any] = {"n": n, "delta": n_delta, "n_trees": n_trees, "search_k": search_k_for(n - n_delta)}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        index = build_served(vectors, n - n_delta, n_trees, Path(tmp))
        row["build_s"] = round(time.perf_counter() - started, 2)
        row["files_mb"] = {p.name: round(p.stat().st_size / 1e6, 1) for p in Path(tmp).iterdir()}
        # the building process's peak, the numpy vectors it holds included
        row["peak_rss_mb"] = round(peak_rss_mb(), 1)
        truth = exact_neighbours(vectors, queries, DEEP_K)
        with threadpool_limits(limits=1):  # as api/handler.py runs the API
            recall_10, served_s = served_recall(index, vectors, queries, truth, TOP_K)
            recall_100, served_100_s = served_recall(index, vectors, queries, truth, DEEP_K)
        exact_s = time_exact_query_s(vectors, queries)
        row.update(
            recall_at_10=round(recall_10, 4),
            recall_at_100=round(recall_100, 4),
            ms_per_query_k10=round(served_s * 1e3, 3),
            ms_per_query_k100=round(served_100_s * 1e3, 3),
            exact_qps=round(1 / exact_s, 1),
            speedup_vs_exact=round(exact_s / served_s, 1),
        )
        base_queries = queries[queries < n - n_delta]
        base_truth = exact_neighbours(vectors[: n - n_delta], base_queries, DEEP_K)
        row["annoy_base_search_k_ladder"] = [
            {"search_k": k, "recall_at_100": round(r, 4), "ms_per_query": round(t * 1e3, 3)}
            for k in LADDER_SEARCH_K
            for r, t in [annoy_recall(index.base.annoy, base_queries, base_truth, k, DEEP_K)]
        ]
        index.close()
        if voyager:
            row["voyager"] = voyager_recall(vectors, queries, truth)
    return row


def isotropic_worst_case(n: int, n_queries: int, n_trees: int) -> dict[str, Any]:
    vectors = isotropic_vectors(n, seed=n)
    queries = np.random.default_rng(1).choice(n, n_queries, replace=False)
    with tempfile.TemporaryDirectory() as tmp:
        index = build_served(vectors, n, n_trees, Path(tmp))
        recall, per_query_s = served_recall(index, vectors, queries, exact_neighbours(vectors, queries), TOP_K)
        index.close()
    return {"n": n, "recall_at_10": round(recall, 4), "ms_per_query": round(per_query_s * 1e3, 3)}


def _in_child(fn: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (10k, 50k) and trees; under a minute")
    parser.add_argument("--sizes", type=int, nargs="*", help="catalogue sizes (default: 10k 100k 1M; --quick: 10k 50k)")
    parser.add_argument("--no-voyager", action="store_true", help="leave Voyager out")
    args = parser.parse_args(argv)
    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    n_queries = QUICK_QUERIES if args.quick else FULL_QUERIES
    n_trees = QUICK_N_TREES if args.quick else N_TREES
    print(f"n_trees={n_trees} search_k={[search_k_for(n) for n in sizes]}; sizes {sizes}; {n_queries} queries each", file=sys.stderr)
    rows = []
    for n in sizes:
        started = time.perf_counter()
        row = _in_child(measure_size, n, n_queries, n_trees, not args.no_voyager and n <= 100_000 and not (args.quick and n != sizes[0]))
        rows.append(row)
        print(f"  n={n:,}: {json.dumps(row)}  ({time.perf_counter() - started:.0f}s)", file=sys.stderr, flush=True)
    worst = _in_child(isotropic_worst_case, sizes[0], n_queries, n_trees)
    print(f"  isotropic worst case: {json.dumps(worst)}", file=sys.stderr)
    by_n = {row["n"]: row for row in rows}
    with_voyager = [row for row in rows if "voyager" in row]
    figures = {
        "recall_at_10": min(row["recall_at_10"] for row in rows),
        "recall_at_100": min(row["recall_at_100"] for row in rows),
        "recall_at_100_100k": by_n[100_000]["recall_at_100"] if 100_000 in by_n else None,
        "speedup_vs_exact_100k": by_n[100_000]["speedup_vs_exact"] if 100_000 in by_n else None,
        "build_s_1m": by_n[1_000_000]["build_s"] if 1_000_000 in by_n else None,
        "voyager": {str(row["n"]): row["voyager"] for row in with_voyager},
        "n_trees": n_trees,
        "search_k": {str(n): search_k_for(n) for n in sizes},
        "quick": args.quick,
        "sizes": rows,
        "isotropic_worst_case": worst,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
