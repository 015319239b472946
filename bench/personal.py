"""Personal models on simulated listeners over the demo catalogue (there is no real listening history here).

Each simulated listener likes two instruments, dislikes one, and within a session
tends to move from one liked instrument to the other (say piano -> strings); tracks
have a latent appeal, and noise plays (any instrument, skipped under 30 s) are mixed
in. Their plays are written as Spotify extended exports, imported by the production
importer into the local stack's Listens table (moto) and trained by the production
trainer; the catalogue is the demo clips embedded by our extractor, indexed by the
bundle writer and read by the API's ServedIndex. Figures, each with its baselines
from the same run:

- ``foryou_precision_at_20``: share of GET /users/{userId}/recommendations' 20 tracks
  (api.personal.for_you, no artist cap: the demo has six composers) that are of a liked
  instrument; vs ``..._most_played_neighbours`` (the nearest unheard tracks to the mean
  of the 5 most played) and ``..._random`` (20 random unheard tracks).
- ``affinity_spearman``: cross-validated Spearman of the affinity model's predictions
  with the simulated plays (what training reports); vs ``..._centroid`` (cosine to the
  play-weighted mean of played tracks) and ``..._constant`` (a constant: 0 by definition).
- ``next_track_hit_at_10`` on the latest 20% of sessions (the model fitted on the rest):
  the next track among the 10 nearest to the model's prediction; vs
  ``..._last_track_neighbours`` (10 nearest to the last track) and
  ``..._content_continuation`` (POST /playlists/continue without userId, 10 tracks); with
  --gru also ``..._gru``, a small Keras GRU trained on the same sessions (the issue's
  alternative, measured against the served ridge map).
- ``plays_per_s``: importing a generated extended export of 100k plays (5k with --quick) into
  Listens (moto in process: the figure includes its DynamoDB emulation).

Usage: ``python bench/personal.py [--quick] [--gru]`` (--quick: 2 listeners instead of 10). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.discovery import EMBEDDINGS_CACHE, embed  # noqa: E402
from catalog.bundle import BaseReader, BaseRows, TrackMeta, write_base  # noqa: E402
from catalog.keys import local_track_id, new_index_version  # noqa: E402
from catalog.records import utc_now_iso  # noqa: E402
from demo.catalog import build, read_catalogue  # noqa: E402

K = 20
HIT_K = 10
RANDOM_SEED = 18
NOW = datetime(2026, 6, 1, tzinfo=UTC)
MOVE_PROBABILITY = 0.6  # within a session, the chance the next play is of the other liked instrument
NOISE_SHARE = 0.05  # plays of any track, skipped after a few seconds
HEARD_SHARE = 0.5  # of the liked tracks, the share the listener ever plays (the rest are to be found)
GRU_UNITS = 64
GRU_EPOCHS = 60


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Listener:
    name: str
    liked: tuple[str, str]  # (from, to): sessions move from the first to the second
    disliked: str


def simulate(listener: Listener, by_instrument: dict[str, list[str]], all_ids: list[str], meta: dict[str, TrackMeta],
             rng: np.random.Generator, sessions: int) -> list[dict[str, Any]]:
    """The listener's extended-export records, in time order over the 90 days before NOW."""
    pools = {}
    for instrument in listener.liked:
        tracks = list(by_instrument[instrument])
        rng.shuffle(tracks)
        pools[instrument] = tracks[: max(2, int(len(tracks) * HEARD_SHARE))]
    appeal = {t: rng.gamma(2.0, 1.0) for pool in pools.values() for t in pool}
    records: list[dict[str, Any]] = []
    t = NOW - timedelta(days=90)
    for _ in range(sessions):
        t += timedelta(hours=float(rng.uniform(3, 40)))
        instrument = listener.liked[0] if rng.random() < 0.7 else listener.liked[1]
        for _ in range(int(rng.integers(4, 9))):
            if rng.random() < NOISE_SHARE:
                track, ms = str(rng.choice(all_ids)), int(rng.integers(2_000, 20_000))
            else:
                pool = pools[instrument]
                weights = np.array([appeal[x] for x in pool])
                track, ms = str(rng.choice(pool, p=weights / weights.sum())), int(rng.integers(120_000, 300_000))
                if instrument == listener.liked[0] and rng.random() < MOVE_PROBABILITY:
                    instrument = listener.liked[1]
                elif instrument == listener.liked[1] and rng.random() < MOVE_PROBABILITY / 3:
                    instrument = listener.liked[0]
            t += timedelta(milliseconds=ms + int(rng.integers(0, 20_000)))
            m = meta[track]
            records.append({"ts": f"{t:%Y-%m-%dT%H:%M:%SZ}", "ms_played": ms, "master_metadata_track_name": m.title,
                            "master_metadata_album_artist_name": m.artists[0], "spotify_track_uri": None,
                            "skipped": ms < 30_000, "reason_end": "fwdbtn" if ms < 30_000 else "trackdone"})
    return records


def open_index(directory: Path, ids: list[str], metas: list[TrackMeta], vectors: np.ndarray) -> Any:
    from api.served import ServedIndex
    from catalog.model import MODEL_ID

    manifest = write_base(directory, [BaseRows(ids, [m.to_json() for m in metas], vectors.astype(np.float32))],
                          version=new_index_version(), created_at=utc_now_iso(), model=MODEL_ID, n_trees=10, search_k=-1)
    return ServedIndex(BaseReader.open(directory, manifest), None, manifest.version)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    value = float(spearmanr(a, b).statistic)
    return 0.0 if np.isnan(value) else value


def fit_gru(sessions: list[list[np.ndarray]], dim: int) -> Any:
    """The issue's alternative: a small Keras GRU over the session's embeddings, trained to predict the
    next one (cosine loss), for comparison with the served ridge map. TensorFlow loads here only."""
    import keras

    keras.utils.set_random_seed(RANDOM_SEED)
    longest = max(len(s) for s in sessions) - 1
    xs, ys = [], []
    for session in sessions:
        for i in range(1, len(session)):
            prefix = np.zeros((longest, dim), np.float32)
            prefix[longest - i:] = session[:i][-longest:]
            xs.append(prefix)
            ys.append(session[i])
    model = keras.Sequential([keras.Input((longest, dim)), keras.layers.Masking(0.0), keras.layers.GRU(GRU_UNITS),
                              keras.layers.Dense(dim)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CosineSimilarity())
    model.fit(np.stack(xs), np.stack(ys), epochs=GRU_EPOCHS, batch_size=32, verbose=0)

    def predict(prefix: list[np.ndarray]) -> np.ndarray:
        window = np.zeros((1, longest, dim), np.float32)
        tail = prefix[-longest:]
        window[0, longest - len(tail):] = tail
        out = model(window, training=False).numpy()[0]
        return (out / max(float(np.linalg.norm(out)), 1e-12)).astype(np.float32)

    return predict


def evaluate(listener: Listener, index: Any, listens: list[Any], liked_ids: set[str], rng: np.random.Generator,
             gru: bool) -> dict[str, float]:
    from api.descriptor_filters import DescriptorFilter
    from api.discovery import ContinuationRequest, continue_playlist
    from api.listing import ListPolicy
    from api.personal import for_you
    from api.recommend import seeds_query
    from catalog.user_models import affinity_features, predict_next
    from history.matching import matcher_for
    from history.training import (
        HELD_OUT_SESSION_SHARE,
        TrainingSettings,
        fit_affinity,
        fit_transition,
        hit_at_k,
        sessions_of,
        train_user,
        transitions,
    )

    model, profile = train_user(listener.name, listens, index, matcher_for(index), NOW, TrainingSettings())
    heard = set(model.heard)
    out: dict[str, float] = {}

    # For you, and its baselines, on the same unheard tracks.
    picks = [r["trackId"] for r in for_you(index, model, K, ListPolicy(dedupe=False), DescriptorFilter())["results"]]
    counts: dict[str, int] = {}
    for x in listens:
        if x.track_id and not x.skipped:
            counts[x.track_id] = counts.get(x.track_id, 0) + 1
    top = sorted(counts, key=lambda t: -counts[t])[:5]
    neighbours = [n.track_id for n in index.search(seeds_query(index, top), K, exclude=heard)]
    unheard = [t for t in index.track_ids() if t not in heard]
    random_picks = list(rng.choice(unheard, size=min(K, len(unheard)), replace=False))
    precision = lambda ids: sum(t in liked_ids for t in ids) / K  # noqa: E731
    out["foryou_precision_at_20"] = precision(picks)
    out["foryou_precision_at_20_most_played_neighbours"] = precision(neighbours)
    out["foryou_precision_at_20_random"] = precision(random_picks)

    # Affinity: the same examples (played tracks and sampled unplayed ones) for the model and the baselines.
    played = sorted(heard)
    others = [t for t in unheard]
    negatives = list(rng.choice(others, size=min(len(others), 2 * len(played)), replace=False))
    examples = played + [str(t) for t in negatives]
    plays = np.array([counts.get(t, 0) for t in examples], np.float64)
    features = np.stack([affinity_features(index.vector(t), index.meta(t).descriptors) for t in examples])
    out["affinity_spearman"] = fit_affinity(features, plays).spearman
    weights = np.array([counts.get(t, 0) for t in played], np.float64)
    centroid = np.average(np.stack([index.vector(t) for t in played]), axis=0, weights=np.maximum(weights, 1e-9))
    out["affinity_spearman_centroid"] = spearman(np.stack([index.vector(t) for t in examples]) @ centroid, plays)
    out["affinity_spearman_constant"] = 0.0

    # Next track on held-out sessions: all three asked the same steps.
    sessions = [[x.track_id for x in s if x.track_id and not x.skipped] for s in sessions_of(listens, 3600.0)]
    sessions = [s for s in sessions if len(s) >= 2]
    split = len(sessions) - max(1, round(len(sessions) * HELD_OUT_SESSION_SHARE))
    transition, bias = fit_transition(*transitions(sessions[:split], index.vector))
    held_out = sessions[split:]
    out["next_track_hit_at_10"] = hit_at_k(index, held_out, lambda p: predict_next(transition, bias, [index.vector(t) for t in p]))[0]
    out["next_track_hit_at_10_last_track_neighbours"] = hit_at_k(index, held_out, lambda p: index.vector(p[-1]))[0]
    hits = steps = 0
    for session in held_out:
        for i in range(1, len(session)):
            prefix = list(dict.fromkeys(session[:i]))
            continued = continue_playlist(index, ContinuationRequest(tuple(prefix), HIT_K, ListPolicy(dedupe=False)))
            hits += session[i] in {s.track_id for s in continued.steps}
            steps += 1
    out["next_track_hit_at_10_content_continuation"] = hits / steps if steps else 0.0
    if gru:
        predict = fit_gru([[index.vector(t) for t in s] for s in sessions[:split]], index.dim)
        out["next_track_hit_at_10_gru"] = hit_at_k(index, held_out, lambda p: predict([index.vector(t) for t in p]))[0]
    out["affinity_spearman_reported"] = (profile["models"]["affinity"] or {}).get("spearman", 0.0)  # type: ignore[union-attr]
    return out


def throughput(plays: int, index: Any, table: Any, workdir: Path, rng: np.random.Generator) -> float:
    from history.importer import import_files
    from history.matching import matcher_for

    ids = list(index.track_ids())
    path = workdir / "Streaming_History_Audio_bench.json"
    t = NOW - timedelta(days=400)
    with path.open("w") as out:
        out.write("[")
        for i in range(plays):
            track = ids[int(rng.integers(len(ids)))]
            meta = index.meta(track)
            t += timedelta(seconds=int(rng.integers(30, 400)))
            record = {"ts": f"{t:%Y-%m-%dT%H:%M:%SZ}", "platform": "linux", "ms_played": int(rng.integers(1_000, 300_000)),
                      "conn_country": "NZ", "master_metadata_track_name": meta.title,
                      "master_metadata_album_artist_name": meta.artists[0], "master_metadata_album_album_name": meta.album,
                      "spotify_track_uri": None, "episode_name": None, "reason_start": "trackdone", "reason_end": "trackdone",
                      "shuffle": False, "skipped": False, "offline": False}
            out.write(("," if i else "") + json.dumps(record))
        out.write("]")
    started = time.perf_counter()
    report = import_files("throughput", [path], matcher_for(index), table)
    elapsed = time.perf_counter() - started
    assert report.added == report.plays, report.format()
    return plays / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 listeners and a 5k-play import")
    parser.add_argument("--gru", action="store_true", help="also train a Keras GRU per listener for the next-track figure")
    args = parser.parse_args(argv)
    # The full catalogue (72 clips) in both modes: the small one (48) leaves fewer than 20 unheard tracks to rank.
    mode = "full"
    started = time.monotonic()
    rng = np.random.default_rng(RANDOM_SEED)

    folder = build(mode, progress=False).folder
    record = read_catalogue(folder)
    if record is None or not record.get("complete"):
        log(f"no complete catalogue.json in {folder}")
        return 1
    clips = record["clips"]
    paths = [folder / clip["file"] for clip in clips]
    ids = [local_track_id(path.read_bytes()) for path in paths]
    from catalog.model import MODEL_ID

    vectors = embed(paths, [clip["sha256"] for clip in clips], MODEL_ID, folder / EMBEDDINGS_CACHE)
    metas = [TrackMeta(track_id=t, title=c["title"], artists=(c["composer"],), album="demo", source="local")
             for t, c in zip(ids, clips, strict=True)]
    by_instrument: dict[str, list[str]] = {}
    for track_id, clip in zip(ids, clips, strict=True):
        by_instrument.setdefault(clip["instrument"], []).append(track_id)
    instruments = sorted(by_instrument)
    n_listeners = 2 if args.quick else 10
    sessions = 60 if args.quick else 120
    import_plays = 5_000 if args.quick else 100_000

    from moto import mock_aws

    from catalog.listens import ListenTable
    from infra.resources import template_table_params

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    figures: dict[str, Any] = {"quick": args.quick, "clips": len(clips), "listeners": n_listeners, "simulated": True}
    per_listener: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-personal-") as workdir, mock_aws():
        import boto3

        from catalog.storage import client as cached_client
        from catalog.storage import resource as cached_resource

        cached_client.cache_clear()
        cached_resource.cache_clear()
        boto3.client("dynamodb").create_table(**template_table_params("bench-listens", "ListensTable"))
        table = ListenTable("bench-listens")
        index = open_index(Path(workdir) / "index", ids, metas, vectors)
        from history.importer import import_files
        from history.matching import matcher_for

        meta = {m.track_id: m for m in metas}
        for i in range(n_listeners):
            order = rng.permutation(len(instruments))
            listener = Listener(f"sim{i}", (instruments[order[0]], instruments[order[1]]), instruments[order[2]])
            export = Path(workdir) / f"Streaming_History_Audio_{listener.name}.json"
            export.write_text(json.dumps(simulate(listener, by_instrument, ids, meta, rng, sessions)))
            import_files(listener.name, [export], matcher_for(index), table)
            liked = set(by_instrument[listener.liked[0]]) | set(by_instrument[listener.liked[1]])
            log(f"{listener.name}: likes {listener.liked[0]} -> {listener.liked[1]}, dislikes {listener.disliked}")
            per_listener.append(evaluate(listener, index, list(table.listens_of(listener.name)), liked, rng, gru=args.gru))
        for key in per_listener[0]:
            figures[key] = round(float(np.mean([x[key] for x in per_listener])), 4)
        log("import throughput")
        figures["plays_per_s"] = round(throughput(import_plays, index, table, Path(workdir), rng), 1)
        figures["import_plays"] = import_plays
    figures["total_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
