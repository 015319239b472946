"""Do recommendations follow the music? Raw musicnn against every candidate, on real and on rendered audio.

Two sets, one run:

- the **dev set** (bench/devset.py): 30 s clips cut from the music of Debian game
  packages, two per track. ``same_track_hit10`` / ``same_track_mrr``: is the other
  clip of the query's track among its 10 nearest / at what rank; ``source_p10``:
  the share of the 10 nearest clips of *other* tracks from the query's package
  (its soundtrack);
- the **demo catalogue** (demo/catalog.py, rendered scores): ``instrument_p10``,
  the share of the 10 nearest clips of *other* pieces with the query's instrument;
  ``composer_p10`` (leave-one-out, as before) for continuity.

Every arm (raw musicnn, every candidate, the MFCC baseline) is scored through the
same cross-fitting protocol (bench/quality_arms.py): tracks or pieces split in
halves, each half transformed by the fit on the other, the whole set ranked in
one pool, 5 seeded splits. The model's per-patch outputs are cached (bench/patch_cache.py), so the
arms cost no extraction of their own. Chance levels are those of a random
ranking in the same pools.

A second, smaller table scores a few arms on the whole dev set at once with the
transform fitted on that same (unlabelled) set: what an index base built over
this catalogue would serve, and the pool size the issue's figures refer to.

The top-level ``same_track_hit10``, ``same_track_mrr``, ``source_p10`` and
``instrument_p10`` are the *served* figures (``served_via: "api"``): each set's
clips go through the crawler, the extractor and annoy_service into a published
index, and the metrics are computed from the rankings GET /recommendations
returns (bench/quality_served.py), beside the arm that describes the served
embedding (:data:`SERVED`) scored on the same whole pool, which they should equal.
The arms' own figures are under ``arms``.

Usage: ``python bench/quality.py [--quick] [--more-models] [--catalogue DIR]``. --quick uses the
small demo catalogue and the dev set only if bench/devset.py has built it. The
last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Run as a script (python bench/quality.py), the repo root is not on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import devset  # noqa: E402
from bench.quality_arms import (  # noqa: E402
    Arm,
    centred_pca,
    fused,
    pair_projection,
    powered,
    raw,
    score_demo,
    score_dev,
    signed_power,
    unit,
    weighted,
    whitened,
    zscored,
)
from bench.quality_served import demo_instrument_p10, dev_scores, served_ranking  # noqa: E402
from demo.catalog import build, read_catalogue  # noqa: E402

K = 10


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


def pool_features(patches: Sequence[dict[str, NDArray[np.float32]]], prefix: str) -> dict[str, NDArray[np.float32]]:
    """Per-clip poolings of one (model, grid)'s per-patch outputs, named ``{prefix}_{layer}_{statistic}``."""
    features: dict[str, NDArray[np.float32]] = {}
    for layer in ("penultimate", "taggram", "pooled"):
        per_clip = [p[layer].astype(np.float64) for p in patches]
        features[f"{prefix}_{layer}_mean"] = np.stack([x.mean(axis=0) for x in per_clip]).astype(np.float32)
        if layer == "penultimate":
            features[f"{prefix}_{layer}_max"] = np.stack([x.max(axis=0) for x in per_clip]).astype(np.float32)
            features[f"{prefix}_{layer}_std"] = np.stack([x.std(axis=0) for x in per_clip]).astype(np.float32)
            # Positive pairs for the projection learnt without labels: the two halves of each clip.
            features[f"{prefix}_{layer}_first"] = np.stack([x[: len(x) // 2].mean(axis=0) for x in per_clip]).astype(np.float32)
            features[f"{prefix}_{layer}_second"] = np.stack([x[len(x) // 2 :].mean(axis=0) for x in per_clip]).astype(np.float32)
    return features


def clip_features(paths: Sequence[Path], more_models: bool, full: bool = True) -> dict[str, NDArray[np.float32]]:
    """Every feature an arm reads, from the cached per-patch outputs (computed on a cache miss) and MFCCs."""
    from bench.patch_cache import descriptors_all, load_all, mfcc_all

    msd = load_all(paths, "msd", "hop187")
    features = pool_features(msd, "msd")
    features["mfcc"] = mfcc_all(paths)
    if full:  # only full runs have the descriptor arms
        features["descriptors"] = descriptors_all(paths)
    if more_models:
        features |= pool_features(load_all(paths, "mtt", "hop187"), "mtt")
        shifted = load_all(paths, "msd", "mid93")
        # The two grids together: patches every 93-94 frames (≤ 1.5 s), half overlapping.
        overlap = [{k: np.concatenate([a[k], b[k]]) for k in a} for a, b in zip(msd, shifted, strict=True)]
        features |= pool_features(overlap, "msdov")
    # The mid-level features power-normalised, as a feature of their own for the fitted arms on top.
    features["msd_pooled_ssqrt"] = signed_power(features["msd_pooled_mean"], 0.5)
    meanstd = lambda p: np.concatenate([unit(features[f"{p}_penultimate_mean"]), unit(features[f"{p}_penultimate_std"])], axis=1)  # noqa: E731
    for prefix in ("msd", "mtt", "msdov") if more_models else ("msd",):
        features[f"{prefix}_penultimate_meanstd"] = meanstd(prefix)
    return features


# The arm that describes what the index serves: musicnn-msd-midlevel-v2's embedding (extractor.embed.summarise_midlevel),
# searched in the raw space below catalog.bundle.PCA_MIN_ITEMS tracks (the dev set and the demo catalogue).
SERVED = "midlevel_ssqrt"
WHOLE_POOL_ARMS = ("raw", "mfcc", "whiten", "whiten_s0.9", "max_raw", "midlevel_ssqrt", "midlevel_ssqrt_pca200")


def arms(full: bool, more_models: bool) -> dict[str, Arm]:
    """Every candidate by name; --quick keeps five (the served one among them), --more-models adds MTT_musicnn and overlapping patches."""
    msd = "msd_penultimate_mean"
    table: dict[str, Arm] = {"raw": raw(msd), "mfcc": zscored("mfcc"), "whiten": whitened(msd), "max_raw": raw("msd_penultimate_max"),
                             "midlevel_ssqrt": powered("msd_pooled_mean", 0.5)}
    if not full:
        return table
    table |= {
        "whiten_d64": whitened(msd, dims=64),
        "whiten_d32": whitened(msd, dims=32),
        "whiten_s0.3": whitened(msd, shrinkage=0.3),
        "whiten_s0.6": whitened(msd, shrinkage=0.6),
        "whiten_s0.9": whitened(msd, shrinkage=0.9),
        "centre": centred_pca(msd, 200),
        "pca_d64": centred_pca(msd, 64),
        "meanstd_raw": raw("msd_penultimate_meanstd"),
        "meanstd_whiten": whitened("msd_penultimate_meanstd"),
        "max_centre": centred_pca("msd_penultimate_max", 200),
        "max_whiten": whitened("msd_penultimate_max"),
        "max_whiten_s0.9": whitened("msd_penultimate_max", shrinkage=0.9),
        "taggram_whiten": whitened("msd_taggram_mean"),
        "midlevel_raw": raw("msd_pooled_mean"),
        "midlevel_pca_d200": centred_pca("msd_pooled_mean", 200),
        "pairs_d64": pair_projection(msd, "msd_penultimate_first", "msd_penultimate_second", 64),
        "pairs_d32": pair_projection(msd, "msd_penultimate_first", "msd_penultimate_second", 32),
        "whiten+mfcc_w0.3": weighted(whitened(msd), zscored("mfcc"), 0.3),
        "raw+mfcc_w0.3": weighted(raw(msd), zscored("mfcc"), 0.3),
        "descriptors": zscored("descriptors"),
        "raw+desc_w0.3": weighted(raw(msd), zscored("descriptors"), 0.3),
        "raw+desc_w0.5": weighted(raw(msd), zscored("descriptors"), 0.5),
        "raw+mfcc+desc_w0.3": weighted(weighted(raw(msd), zscored("mfcc"), 0.3), zscored("descriptors"), 0.3),
        "midlevel+mfcc_w0.3": weighted(raw("msd_pooled_mean"), zscored("mfcc"), 0.3),
        "midlevel+desc_w0.3": weighted(raw("msd_pooled_mean"), zscored("descriptors"), 0.3),
        # Power normalisation of the mid-level features (no fit): the signed square root, and around it.
        "midlevel_relu_sqrt": powered("msd_pooled_mean", 0.5, signed=False),
        "midlevel_spow0.35": powered("msd_pooled_mean", 0.35),
        "midlevel_spow0.7": powered("msd_pooled_mean", 0.7),
        "penultimate_ssqrt": powered("msd_penultimate_mean", 0.5),
        # What a catalogue of 2,000 tracks or more serves: the signed square root, then PCA (catalog.bundle).
        "midlevel_ssqrt_pca200": centred_pca("msd_pooled_ssqrt", 200),
        "midlevel_ssqrt+mfcc_w0.2": weighted(powered("msd_pooled_mean", 0.5), zscored("mfcc"), 0.2),
        "midlevel_ssqrt_whiten_s0.9": whitened("msd_pooled_ssqrt", shrinkage=0.9),
    }
    if more_models:
        table |= {
            "overlap_raw": raw("msdov_penultimate_mean"),
            "overlap_whiten": whitened("msdov_penultimate_mean"),
            "mtt_raw": raw("mtt_penultimate_mean"),
            "mtt_whiten": whitened("mtt_penultimate_mean"),
            "msd+mtt_fused": fused(whitened(msd), whitened("mtt_penultimate_mean")),
            "msd+mtt_concat_whiten": whitened("msd_mtt_concat"),
        }
    return table


def load_dev(full: bool) -> list[dict[str, Any]] | None:
    """The dev set's clips; built on a full run, read from its cache on --quick."""
    record = devset.build() if full else devset.read_manifest(devset.ROOT)
    if record is None:
        print("dev set not built (python bench/devset.py): --quick reports no dev figures", file=sys.stderr)
        return None
    clips: list[dict[str, Any]] = record["clips"]
    return clips


def with_concat(features: dict[str, NDArray[np.float32]]) -> dict[str, NDArray[np.float32]]:
    if "mtt_penultimate_mean" in features:
        features["msd_mtt_concat"] = np.concatenate(
            [unit(features["msd_penultimate_mean"]), unit(features["mtt_penultimate_mean"])], axis=1
        )
    return features


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small demo catalogue, the served model's arms only")
    parser.add_argument("--catalogue", type=Path, help="demo catalogue folder (default: the demo build cache)")
    parser.add_argument("--more-models", action="store_true",
                        help="also MTT_musicnn and overlapping patches (3x the extraction on a cold cache)")
    args = parser.parse_args(argv)

    full = not args.quick
    mode = "full" if full else "small"
    started = time.monotonic()
    folder = build(mode, args.catalogue).folder
    record = read_catalogue(folder)
    if record is None or not record.get("complete"):
        print(f"no complete catalogue.json in {folder}", file=sys.stderr)
        return 1
    demo_clips = record["clips"]
    demo_paths = [folder / clip["file"] for clip in demo_clips]
    instruments = [clip["instrument"] for clip in demo_clips]
    composers = [clip["composer"] for clip in demo_clips]
    # Two excerpts of one score (e.g. "from bar 17") are the same piece: the corpus path names the work.
    pieces = [clip["corpus_path"] for clip in demo_clips]

    demo_features = with_concat(clip_features(demo_paths, args.more_models, full))
    dev_clips = load_dev(full)
    dev: tuple[dict[str, NDArray[np.float32]], list[str], list[str]] | None = None
    if dev_clips is not None:
        dev_paths = [devset.ROOT / c["file"] for c in dev_clips]
        dev = (with_concat(clip_features(dev_paths, args.more_models, full)), [c["track"] for c in dev_clips],
               [c["source"] for c in dev_clips])

    rows: dict[str, dict[str, float | None]] = {}
    chance: dict[str, float | None] = {}
    for name, arm in arms(full, args.more_models).items():
        row: dict[str, float | None] = dict.fromkeys(("same_track_hit10", "same_track_mrr", "source_p10"))
        if dev is not None:
            scores, dev_chance = score_dev(arm, *dev)
            row |= {"same_track_hit10": scores.same_track_hit10, "same_track_mrr": scores.same_track_mrr,
                    "source_p10": scores.source_p10}  # fmt: skip
            chance |= {"same_track_hit10": dev_chance.same_track_hit10, "same_track_mrr": dev_chance.same_track_mrr,
                       "source_p10": dev_chance.source_p10}  # fmt: skip
        row["instrument_p10"], chance["instrument_p10"] = score_demo(arm, demo_features, pieces, instruments)
        rows[name] = row
        print(f"{name:<24} " + " ".join("   -  " if v is None else f"{v:6.3f}" for v in row.values()), file=sys.stderr)

    whole: dict[str, dict[str, float]] = {}
    if dev is not None:
        table = arms(full, args.more_models)
        for name in (n for n in WHOLE_POOL_ARMS if n in table):
            scores, _ = score_dev(table[name], *dev, transductive=True)
            whole[name] = {"same_track_hit10": scores.same_track_hit10, "same_track_mrr": scores.same_track_mrr,
                           "source_p10": scores.source_p10}  # fmt: skip

    # What is served, measured: the clips through crawler, extractor and annoy_service into a
    # published index, ranked by GET /recommendations (bench/quality_served.py).
    served: dict[str, float | None] = dict.fromkeys(("same_track_hit10", "same_track_mrr", "source_p10"))
    indexes: dict[str, dict[str, object]] = {}
    if dev is not None:
        ranking = served_ranking(dev_paths)
        scores = dev_scores(ranking.order, dev[1], dev[2])
        served |= {"same_track_hit10": scores.same_track_hit10, "same_track_mrr": scores.same_track_mrr,
                   "source_p10": scores.source_p10}  # fmt: skip
        indexes["dev"] = {"version": ranking.index_version, "model": ranking.model, "count": ranking.count}
    ranking = served_ranking(demo_paths)
    served["instrument_p10"] = demo_instrument_p10(ranking.order, pieces, instruments)
    indexes["demo"] = {"version": ranking.index_version, "model": ranking.model, "count": ranking.count}
    # The arm describing the served embedding, with its transform fitted on the whole pool as a
    # base built over that catalogue fits it: served and measured agree when this matches the line above.
    served_arm = arms(True, args.more_models)[SERVED]
    served_arm_whole: dict[str, float | None] = dict.fromkeys(served)
    if dev is not None:
        scores, _ = score_dev(served_arm, *dev, transductive=True)
        served_arm_whole |= {"same_track_hit10": scores.same_track_hit10, "same_track_mrr": scores.same_track_mrr,
                             "source_p10": scores.source_p10}  # fmt: skip
    served_arm_whole["instrument_p10"], _ = score_demo(served_arm, demo_features, pieces, instruments, transductive=True)

    # Leave-one-out composer precision on the whole demo catalogue, as this bench always reported it.
    raw_vectors = unit(demo_features["msd_penultimate_mean"])
    composer_p10 = float(precision_at_k(raw_vectors, composers).mean())
    composer_chance = float(chance_at_k(composers).mean())

    keys = ("same_track_hit10", "same_track_mrr", "source_p10", "instrument_p10")
    print(f"\ndev set: {'-' if dev is None else f'{len(dev[1])} clips, {len(set(dev[1]))} tracks, {len(set(dev[2]))} sources'}; "
          f"demo catalogue ({mode}): {len(demo_clips)} clips, {len(set(instruments))} instruments, {len(set(pieces))} pieces")
    print(f"{'arm':<24} " + " ".join(f"{k:>16}" for k in keys))
    for name, row in rows.items():
        print(f"{name:<24} " + " ".join(f"{'-':>16}" if row[k] is None else f"{row[k]:>16.3f}" for k in keys))
    print(f"{'chance':<24} " + " ".join(f"{'-':>16}" if chance.get(k) is None else f"{chance[k]:>16.3f}" for k in keys))

    if whole:
        print(f"\nwhole dev set in one pool, transform fitted on it ({len(dev[1])} clips):")
        for name, row in whole.items():
            print(f"{name:<24} " + " ".join(f"{row[k]:>16.3f}" for k in keys[:3]))

    models = sorted({str(index["model"]) for index in indexes.values()})
    print(f"\nserved through the API (GET /recommendations; model {', '.join(models)}; "
          + ", ".join(f"{name} index {index['version']}, {index['count']} tracks" for name, index in indexes.items()) + "):")
    for name, row in (("served (api)", served), (f"arm {SERVED}, whole pool", served_arm_whole)):
        print(f"{name:<24} " + " ".join(f"{'-':>16}" if row[k] is None else f"{row[k]:>16.3f}" for k in keys))

    def r4(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    summary: dict[str, object] = {"mode": mode, "k": K, "model": models[0] if len(models) == 1 else models,
                                  "served_via": "api", "served_index": indexes, "served_arm": SERVED}
    for key in keys:
        summary[key] = r4(served[key])
        summary[f"{key}_chance"] = r4(chance.get(key))
        summary[f"raw_{key}"] = r4(rows["raw"][key])
        summary[f"mfcc_{key}"] = r4(rows["mfcc"][key])
    summary["instrument_chance"] = summary["instrument_p10_chance"]
    summary["composer_p10"] = round(composer_p10, 4)
    summary["composer_chance"] = round(composer_chance, 4)
    summary["served_arm_whole_pool"] = {k: r4(v) for k, v in served_arm_whole.items()}
    summary["arms"] = {name: {k: r4(v) for k, v in row.items()} for name, row in rows.items()}
    summary["whole_dev_pool"] = {name: {k: r4(v) for k, v in row.items()} for name, row in whole.items()}
    summary["dev_clips"] = None if dev is None else len(dev[1])
    summary["demo_clips"] = len(demo_clips)
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
