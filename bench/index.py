"""Benchmark of the annoy_service index at its chosen settings (N_TREES, SEARCH_K).

For 10k, 100k and 1M generated 200-d vectors: build time, index size and peak RSS
of the building process; recall@10 and queries/s against exact numpy search run in
the same process; a sweep of n_trees x search_k at 100k (the measurement behind the
defaults); hnswlib tuned to the same recall, for the record; and, as the worst case,
recall on structureless isotropic Gaussian vectors.

    python bench/index.py            # full run (1M included; several minutes)
    python bench/index.py --quick    # smaller sizes, under a minute

Ends with one JSON line: recall_at_10, speedup_vs_exact_100k, build_s_1m, ...
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

from annoy_service.builder import N_TREES, build_index, search_k_for  # noqa: E402

DIM = 200
TOP_K = 10
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 50_000)
FULL_QUERIES = 200
QUICK_QUERIES = 100
EXACT_TIMED_QUERIES = 50
SWEEP_N_TREES = (25, 50, 100)
SWEEP_SEARCH_K = (500, 1000, 2000, 4000)
LADDER_SEARCH_K = (1000, 2000, 4000, 8000, 16000, 32000)
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_MAX_SIZE = 100_000  # hnswlib's 1M build takes longer than the whole annoy run; 100k settles the comparison
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


def annoy_recall(index: Any, queries: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], search_k: int) -> tuple[float, float]:
    """(recall@10, median seconds of one query) of Annoy queried by item, as the API does.

    Medians, here and for exact search, because the machine is shared and a few
    queries stall behind other processes.
    """
    hits = 0
    times = []
    for i, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = index.get_nns_by_item(int(i), TOP_K + 1, search_k=search_k)
        times.append(time.perf_counter() - started)
        hits += len(set([j for j in found if j != i][:TOP_K]) & set(expected.tolist()))
    return hits / (len(queries) * TOP_K), float(np.median(times))


def reset_peak_rss() -> None:
    """Linux resets VmHWM (peak RSS) when 5 is written to clear_refs, so a peak can be taken per phase."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure_size(n: int, n_queries: int, sweep: bool, hnsw_target: bool) -> dict[str, Any]:
    """Runs in its own process so that peak RSS belongs to this size alone."""
    vectors = embedding_like_vectors(n, seed=n)
    reset_peak_rss()
    queries = np.random.default_rng(1).choice(n, n_queries, replace=False)
    row: dict[str, Any] = {"n": n}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tracks.ann"
        started = time.perf_counter()
        index = build_index(vectors, N_TREES, path)
        row["build_s"] = round(time.perf_counter() - started, 2)
        row["index_mb"] = round(path.stat().st_size / 1e6, 1)
        # the building process's peak, the numpy vectors it holds included
        row["peak_rss_mb"] = round(peak_rss_mb(), 1)
        row["vectors_mb"] = round(vectors.nbytes / 1e6, 1)
        truth = exact_neighbours(vectors, queries)
        search_k = search_k_for(n)
        recall, annoy_s = annoy_recall(index, queries, truth, search_k)
        exact_s = time_exact_query_s(vectors, queries)
        row.update(
            search_k=search_k,
            recall_at_10=round(recall, 4),
            annoy_qps=round(1 / annoy_s),
            exact_qps=round(1 / exact_s, 1),
            speedup_vs_exact=round(exact_s / annoy_s, 1),
        )
        row["search_k_ladder"] = [
            {"search_k": k, "recall_at_10": round(r, 4), "ms_per_query": round(t * 1e3, 3)}
            for k in LADDER_SEARCH_K
            for r, t in [annoy_recall(index, queries, truth, k)]
        ]
        index.unload()
        if sweep:
            row["sweep"] = sweep_settings(vectors, queries, truth, Path(tmp))
        if hnsw_target:
            row["hnswlib"] = hnswlib_at_recall(vectors, queries, truth, recall, Path(tmp))
    return row


def sweep_settings(vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for n_trees in SWEEP_N_TREES:
        path = tmp / f"sweep-{n_trees}.ann"
        started = time.perf_counter()
        index = build_index(vectors, n_trees, path, on_disk=False)
        build_s = time.perf_counter() - started
        for search_k in SWEEP_SEARCH_K:
            recall, per_query_s = annoy_recall(index, queries, truth, search_k)
            rows.append({
                "n_trees": n_trees, "search_k": search_k, "recall_at_10": round(recall, 4),
                "ms_per_query": round(per_query_s * 1e3, 3), "build_s": round(build_s, 2),
                "index_mb": round(path.stat().st_size / 1e6, 1),
            })
        index.unload()
        path.unlink()
    return rows


def hnswlib_at_recall(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], target: float, tmp: Path
) -> dict[str, Any]:
    """hnswlib with the smallest ef (doubling from 16) that reaches Annoy's recall."""
    import hnswlib

    n = len(vectors)
    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    started = time.perf_counter()
    index.init_index(max_elements=n, M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=1)
    index.add_items(vectors, np.arange(n), num_threads=-1)
    build_s = time.perf_counter() - started
    path = tmp / "hnsw.bin"
    index.save_index(str(path))
    result: dict[str, Any] = {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "build_s": round(build_s, 2),
                              "index_mb": round(path.stat().st_size / 1e6, 1)}
    ef = 16
    while True:
        index.set_ef(ef)
        found, times = [], []
        for i in queries:
            started = time.perf_counter()
            found.append(index.knn_query(vectors[i], k=TOP_K + 1, num_threads=1)[0][0])
            times.append(time.perf_counter() - started)
        per_query_s = float(np.median(times))
        hits = sum(len(set([j for j in f if j != i][:TOP_K]) & set(t.tolist())) for i, f, t in zip(queries, found, truth, strict=True))
        recall = hits / (len(queries) * TOP_K)
        if recall >= target or ef >= n:
            result.update(ef=ef, recall_at_10=round(recall, 4), qps=round(1 / per_query_s))
            return result
        ef *= 2


def isotropic_worst_case(n: int, n_queries: int) -> dict[str, Any]:
    vectors = isotropic_vectors(n, seed=n)
    queries = np.random.default_rng(1).choice(n, n_queries, replace=False)
    with tempfile.TemporaryDirectory() as tmp:
        index = build_index(vectors, N_TREES, Path(tmp) / "iso.ann")
        recall, per_query_s = annoy_recall(index, queries, exact_neighbours(vectors, queries), search_k_for(n))
        index.unload()
    return {"n": n, "recall_at_10": round(recall, 4), "ms_per_query": round(per_query_s * 1e3, 3)}


def _in_child(fn: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (10k, 50k); finishes in under a minute")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    n_queries = QUICK_QUERIES if args.quick else FULL_QUERIES
    sweep_size = sizes[-1] if args.quick else 100_000
    print(f"annoy n_trees={N_TREES} search_k={[search_k_for(n) for n in sizes]}; sizes {sizes}; {n_queries} queries each", file=sys.stderr)
    rows = []
    for n in sizes:
        started = time.perf_counter()
        row = _in_child(measure_size, n, n_queries, n == sweep_size, n <= HNSW_MAX_SIZE and not (args.quick and n != sizes[0]))
        rows.append(row)
        print(f"  n={n:,}: {json.dumps(row)}  ({time.perf_counter() - started:.0f}s)", file=sys.stderr, flush=True)
    worst = _in_child(isotropic_worst_case, sizes[0], n_queries)
    print(f"  isotropic worst case: {json.dumps(worst)}", file=sys.stderr)
    by_n = {row["n"]: row for row in rows}
    figures = {
        "recall_at_10": min(row["recall_at_10"] for row in rows),
        "speedup_vs_exact_100k": by_n[100_000]["speedup_vs_exact"] if 100_000 in by_n else None,
        "build_s_1m": by_n[1_000_000]["build_s"] if 1_000_000 in by_n else None,
        "n_trees": N_TREES,
        "search_k": {str(n): search_k_for(n) for n in sizes},
        "quick": args.quick,
        "sizes": rows,
        "isotropic_worst_case": worst,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
