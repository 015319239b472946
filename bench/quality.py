"""Do recommendations follow the music? precision@10 by instrument and composer on the demo catalogue.

Leave-one-out query by example: every clip queries all the others by cosine
similarity, and precision@10 is the share of its 10 nearest clips with the
same instrument (or composer). Three arms run in the same process on the same
clips:

- ``embedding``: our extractor's vector, ``Embedder().embed_file(path).vector``;
- ``mfcc``: the classic baseline, 20 MFCCs (librosa defaults, 22.05 kHz) summarised
  per clip by their means and standard deviations (40 values), each dimension
  z-scored over the catalogue so that MFCC 0 (loudness) does not dominate the cosine;
- ``random``: seeded Gaussian vectors of the embedding's size.

Chance is the expected precision of a random ranking: for a query of class c,
(n_c - 1) / (N - 1), averaged over queries.

Usage: ``python bench/quality.py [--quick] [--catalogue DIR]``. --quick uses the
small catalogue. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

# Run as a script (python bench/quality.py), the repo root is not on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import librosa  # noqa: E402
from tqdm import tqdm  # noqa: E402

from demo.catalog import build, read_catalogue  # noqa: E402

K = 10
MFCC_SAMPLE_RATE_HZ = 22_050
N_MFCC = 20
RANDOM_SEED = 7


def precision_at_k(vectors: NDArray[np.float32], labels: Sequence[str], k: int = K) -> NDArray[np.float64]:
    """Per-query precision@k of leave-one-out cosine retrieval: the share of the k nearest with the query's label."""
    n = len(labels)
    if vectors.shape[0] != n:
        raise ValueError(f"{vectors.shape[0]} vectors for {n} labels")
    if not 0 < k < n:
        raise ValueError(f"k must be between 1 and {n - 1} for {n} items, got {k}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a zero vector has no cosine similarity")
    unit = vectors / norms
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    # A stable sort makes ties go to the lower index, so the figures are reproducible.
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    label_array = np.asarray(labels)
    return (label_array[nearest] == label_array[:, None]).mean(axis=1)


def chance_at_k(labels: Sequence[str]) -> NDArray[np.float64]:
    """Per-query expected precision of a random ranking: (n_label - 1) / (N - 1)."""
    label_array = np.asarray(labels)
    counts = {label: int((label_array == label).sum()) for label in set(labels)}
    return np.array([(counts[label] - 1) / (len(labels) - 1) for label in labels])


def mfcc_features(path: Path) -> NDArray[np.float32]:
    samples, rate = librosa.load(path, sr=MFCC_SAMPLE_RATE_HZ, mono=True)
    mfcc = librosa.feature.mfcc(y=samples, sr=rate, n_mfcc=N_MFCC)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float32)


def zscore(features: NDArray[np.float32]) -> NDArray[np.float32]:
    std = features.std(axis=0)
    return ((features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def embed_all(paths: Sequence[Path], embed: Callable[[Path], NDArray[np.float32]], desc: str) -> NDArray[np.float32]:
    return np.stack([embed(path) for path in tqdm(paths, desc=desc, unit="clip", file=sys.stderr)])


def evaluate(vectors: NDArray[np.float32], instruments: Sequence[str], composers: Sequence[str]) -> dict[str, float]:
    return {
        "instrument_p10": float(precision_at_k(vectors, instruments).mean()),
        "composer_p10": float(precision_at_k(vectors, composers).mean()),
    }


def per_label(vectors: NDArray[np.float32], labels: Sequence[str]) -> dict[str, float]:
    scores = precision_at_k(vectors, labels)
    label_array = np.asarray(labels)
    return {label: float(scores[label_array == label].mean()) for label in sorted(set(labels))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the small catalogue (32 clips) instead of the full (72)")
    parser.add_argument("--catalogue", type=Path, help="catalogue folder (default: the demo build cache)")
    args = parser.parse_args(argv)

    mode = "small" if args.quick else "full"
    started = time.monotonic()
    folder = build(mode, args.catalogue).folder
    record = read_catalogue(folder)
    if record is None or not record.get("complete"):
        print(f"no complete catalogue.json in {folder}", file=sys.stderr)
        return 1
    clips = record["clips"]
    paths = [folder / clip["file"] for clip in clips]
    instruments = [clip["instrument"] for clip in clips]
    composers = [clip["composer"] for clip in clips]

    # TensorFlow loads here, after the cheap checks.
    from catalog.model import MODEL_ID
    from extractor.embed import Embedder

    embedder = Embedder()
    t0 = time.monotonic()
    ours = embed_all(paths, lambda path: embedder.embed_file(path).vector, "embedding")
    embed_seconds = time.monotonic() - t0
    t0 = time.monotonic()
    mfcc = zscore(embed_all(paths, mfcc_features, "mfcc"))
    mfcc_seconds = time.monotonic() - t0
    random_vectors = np.random.default_rng(RANDOM_SEED).standard_normal(ours.shape).astype(np.float32)

    arms = {"embedding": ours, "mfcc": mfcc, "random": random_vectors}
    results = {name: evaluate(vectors, instruments, composers) for name, vectors in arms.items()}
    chance = {
        "instrument": float(chance_at_k(instruments).mean()),
        "composer": float(chance_at_k(composers).mean()),
    }

    print(f"\n{len(clips)} clips ({mode}), {len(set(instruments))} instruments, {len(set(composers))} composers")
    print(f"{'arm':<10} {'instrument p@10':>16} {'composer p@10':>14}")
    for name, figures in results.items():
        print(f"{name:<10} {figures['instrument_p10']:>16.3f} {figures['composer_p10']:>14.3f}")
    print(f"{'chance':<10} {chance['instrument']:>16.3f} {chance['composer']:>14.3f}")
    print("\nper instrument (embedding / mfcc):")
    ours_by, mfcc_by = per_label(ours, instruments), per_label(mfcc, instruments)
    for label in ours_by:
        print(f"  {label:<14} {ours_by[label]:.3f} / {mfcc_by[label]:.3f}")

    summary = {
        "mode": mode,
        "clips": len(clips),
        "k": K,
        "model": MODEL_ID,
        "instrument_p10": round(results["embedding"]["instrument_p10"], 4),
        "instrument_chance": round(chance["instrument"], 4),
        "mfcc_instrument_p10": round(results["mfcc"]["instrument_p10"], 4),
        "random_instrument_p10": round(results["random"]["instrument_p10"], 4),
        "composer_p10": round(results["embedding"]["composer_p10"], 4),
        "composer_chance": round(chance["composer"], 4),
        "mfcc_composer_p10": round(results["mfcc"]["composer_p10"], 4),
        "random_composer_p10": round(results["random"]["composer_p10"], 4),
        "instrument_p10_by_instrument": {label: round(value, 4) for label, value in ours_by.items()},
        "embed_seconds_per_clip": round(embed_seconds / len(clips), 3),
        "mfcc_seconds_per_clip": round(mfcc_seconds / len(clips), 3),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
