"""Discovery on the demo catalogue: several seeds, stations that learn, paths and continuations.

The demo clips carry their instrument, so each figure asks whether a list
follows the instrument it should. The clips are embedded with our extractor,
written to the local stack's Tracks table, indexed by the annoy_service and
queried over HTTP through the loopback gateway, as a listener would.

- ``multiseed_instrument_p10``: 3 seeds of one instrument, the share of that
  instrument in the top 10 of GET /recommendations; against the mean single-seed
  figure of the same seeds (``singleseed_instrument_p10``), each with the other two
  excluded so that both choose from the same tracks.
- ``station_dislike_drop``: a station seeded with instrument X plays until 3 tracks
  of the instrument Y it plays most (Y ≠ X) have come; those 3 are disliked, and Y's
  share of the next 20 is compared with a twin station that got no feedback
  (1 − share / twin share; target ≥ 0.5).
- ``station_like_gain``: 3 tracks of an instrument Z the station has not played
  are liked; Z's share of the next 20 minus the twin's.
- ``station_repeats``: tracks handed out twice over 5 successive ``next`` calls of 10
  (target 0; the quick catalogue uses calls of fewer tracks so that 5 fit in it).
- ``path_monotone_share``: share of GET /path steps whose similarity to ``to`` rises
  (target ≥ 0.8), and ``path_mean_step_similarity``; the baseline takes the nearest
  track to each waypoint with no preference (``path_monotone_share_nearest``).
- ``continuation_mean_step_similarity``: POST /playlists/continue, against the top-k
  neighbours of the first seed in order (``continuation_baseline_mean_step_similarity``).

Usage: ``python bench/discovery.py [--quick]``. --quick uses the small catalogue
(48 clips, 4 instruments) and fewer trials. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests

# Run as a script (python bench/discovery.py), the repo root is not on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.keys import local_track_id  # noqa: E402
from catalog.records import Source, Status, TrackRecord, encode_embedding  # noqa: E402
from demo.catalog import build, read_catalogue  # noqa: E402
from demo.spec import ALBUM  # noqa: E402

K = 10
FOLLOW_UP = 20  # tracks after the feedback whose instrument shares are compared
FEEDBACK_TRACKS = 3
BATCH = 5  # tracks per `next` while a station waits for the disliked instrument
MAX_WARMUP = 40  # tracks a station may play before giving up on that
RANDOM_SEED = 13
EMBEDDINGS_CACHE = "discovery-embeddings.npz"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Api:
    """The HTTP API at ``url``; every call must answer with the status it expects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def get(self, path: str, params: Any) -> Any:
        response = self.session.get(self.url + path, params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any, expect: int = 200) -> Any:
        response = self.session.post(self.url + path, json=body, timeout=60)
        if response.status_code != expect:
            raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None


class Catalogue:
    def __init__(self, track_ids: list[str], instruments: list[str]) -> None:
        self.ids = track_ids
        self.instrument = dict(zip(track_ids, instruments, strict=True))
        self.by_instrument: dict[str, list[str]] = {}
        for track_id, instrument in self.instrument.items():
            self.by_instrument.setdefault(instrument, []).append(track_id)

    def share(self, track_ids: Sequence[str], instrument: str) -> float:
        return sum(self.instrument[t] == instrument for t in track_ids) / len(track_ids) if track_ids else 0.0


def embed(paths: list[Path], digests: list[str], model: str, cache: Path) -> np.ndarray:
    """Our extractor's vectors of the clips, reused from ``cache`` when it holds these very files' vectors.

    Embedding is not what this bench measures (bench/extract.py and bench/quality.py do),
    so a re-run skips TensorFlow when nothing changed.
    """
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["model"]) == model and list(stored["digests"]) == digests:
            return stored["vectors"]
    from extractor.embed import Embedder  # TensorFlow loads here, after the cheap steps

    log(f"embedding {len(paths)} clips")
    embedder = Embedder()
    vectors = np.stack([embedder.embed_file(path).vector for path in paths])
    np.savez(cache, model=model, digests=np.array(digests), vectors=vectors)
    return vectors


def load_tracks(clips: list[dict[str, Any]], ids: list[str], vectors: np.ndarray, model: str) -> None:
    from catalog.storage import TrackTable

    table = TrackTable(os.environ["TRACKS_TABLE"])
    for clip, track_id, vector in zip(clips, ids, vectors, strict=True):
        record = TrackRecord(
            track_id=track_id, source=Source.LOCAL, status=Status.READY, title=clip["title"], artists=[clip["composer"]],
            album=ALBUM, embedding=encode_embedding(vector), model=model, dim=int(vector.size),
        )
        table.table.put_item(Item=record.to_item())


def multiseed(api: Api, cat: Catalogue, rng: np.random.Generator, trials: int) -> dict[str, float]:
    multi, single = [], []
    for instrument, members in sorted(cat.by_instrument.items()):
        for _ in range(trials):
            seeds = list(rng.choice(members, size=3, replace=False))
            body = api.get("/recommendations", [("trackId", s) for s in seeds] + [("k", K)])
            multi.append(cat.share([r["trackId"] for r in body["results"]], instrument))
            for seed in seeds:
                # The same candidates as the 3-seed query: the other two seeds are excluded.
                others = ",".join(s for s in seeds if s != seed)
                body = api.get("/recommendations", {"trackId": seed, "k": K, "exclude": others})
                single.append(cat.share([r["trackId"] for r in body["results"]], instrument))
    return {"multiseed_instrument_p10": round(float(np.mean(multi)), 4),
            "singleseed_instrument_p10": round(float(np.mean(single)), 4)}


def twin_stations(api: Api, seeds: list[str]) -> tuple[str, str]:
    body = {"name": "bench", "seeds": seeds}
    return api.post("/stations", body, 201)["stationId"], api.post("/stations", body, 201)["stationId"]


def play(api: Api, station: str, n: int) -> list[str]:
    return [t["trackId"] for t in api.post(f"/stations/{station}/next", {"n": n})["tracks"]]


def feedback(api: Api, station: str, track_id: str, signal: str) -> None:
    api.post(f"/stations/{station}/feedback", {"trackId": track_id, "signal": signal}, 204)


def station_figures(api: Api, cat: Catalogue, rng: np.random.Generator) -> dict[str, float | int]:
    dislike_after, dislike_twin, like_gain, repeats = 0.0, 0.0, [], 0
    reachable = len(cat.ids) - 3
    repeat_batch = min(10, reachable // 5)
    for instrument, members in sorted(cat.by_instrument.items()):
        seeds = list(rng.choice(members, size=3, replace=False))
        # Dislike: play until 3 tracks of one other instrument have come, dislike exactly those.
        steered, twin = twin_stations(api, seeds)
        played: list[str] = []
        while len(played) < MAX_WARMUP:
            batch = play(api, steered, BATCH)
            if batch != play(api, twin, BATCH):
                raise RuntimeError("twin stations without feedback played different tracks")
            played += batch
            others = Counter(cat.instrument[t] for t in played if cat.instrument[t] != instrument)
            if others and others.most_common(1)[0][1] >= FEEDBACK_TRACKS:
                break
        else:
            log(f"{instrument}: no other instrument came {FEEDBACK_TRACKS} times in {MAX_WARMUP} tracks")
            continue
        disliked_instrument = others.most_common(1)[0][0]
        for track in [t for t in played if cat.instrument[t] == disliked_instrument][:FEEDBACK_TRACKS]:
            feedback(api, steered, track, "dislike")
        after, control = play(api, steered, FOLLOW_UP), play(api, twin, FOLLOW_UP)
        dislike_after += cat.share(after, disliked_instrument)
        dislike_twin += cat.share(control, disliked_instrument)
        log(f"{instrument} station, {disliked_instrument} disliked: share {cat.share(control, disliked_instrument):.2f} "
            f"-> {cat.share(after, disliked_instrument):.2f}")

        # Like: 3 tracks of an instrument the station has not played yet.
        steered, twin = twin_stations(api, seeds)
        heard = play(api, steered, K)
        play(api, twin, K)
        unheard = Counter(cat.instrument[t] for t in cat.ids if t not in heard and t not in seeds and cat.instrument[t] != instrument)
        liked_instrument = min(unheard, key=lambda name: (Counter(cat.instrument[t] for t in heard)[name], name))
        candidates = [t for t in cat.by_instrument[liked_instrument] if t not in heard]
        for track in rng.choice(candidates, size=FEEDBACK_TRACKS, replace=False):
            feedback(api, steered, str(track), "like")
        after, control = play(api, steered, FOLLOW_UP), play(api, twin, FOLLOW_UP)
        like_gain.append(cat.share(after, liked_instrument) - cat.share(control, liked_instrument))

        # Repeats: 5 successive calls that fit in the reachable catalogue.
        station = api.post("/stations", {"name": "bench", "seeds": seeds}, 201)["stationId"]
        handed = [t for _ in range(5) for t in play(api, station, repeat_batch)]
        repeats += len(handed) - len(set(handed))
    drop = 1.0 - dislike_after / dislike_twin if dislike_twin else None
    return {
        "station_dislike_drop": None if drop is None else round(drop, 4),
        "station_like_gain": round(float(np.mean(like_gain)), 4),
        "station_repeats": repeats,
        "station_repeat_calls": f"5 x {repeat_batch}",
    }


def nearest_path(index: Any, start: str, end: str, length: int) -> list[str]:
    """The baseline path: the nearest unused track to each waypoint, no preference for rising."""
    from api.vectors import slerp

    a, b = index.vector(start), index.vector(end)
    chosen = [start]
    for i in range(1, length - 1):
        chosen.append(index.search(slerp(a, b, i / (length - 1)), 1, exclude={*chosen, end})[0].track_id)
    return [*chosen, end]


def path_stats(index: Any, track_ids: list[str]) -> tuple[float, float]:
    end = index.vector(track_ids[-1])
    to_end = [float(index.vector(t) @ end) for t in track_ids]
    steps = [float(index.vector(a) @ index.vector(b)) for a, b in zip(track_ids, track_ids[1:], strict=False)]
    rises = [y > x for x, y in zip(to_end, to_end[1:], strict=False)]
    return sum(rises) / len(rises), float(np.mean(steps))


def path_figures(api: Api, cat: Catalogue, index: Any, rng: np.random.Generator, pairs: int, length: int) -> dict[str, float]:
    ours, nearest, steps, nearest_steps = [], [], [], []
    instruments = sorted(cat.by_instrument)
    for _ in range(pairs):
        first, second = rng.choice(instruments, size=2, replace=False)
        start, end = str(rng.choice(cat.by_instrument[first])), str(rng.choice(cat.by_instrument[second]))
        body = api.get("/path", {"from": start, "to": end, "length": length})
        track_ids = [t["trackId"] for t in body["tracks"]]
        if len(set(track_ids)) != len(track_ids) or track_ids[0] != start or track_ids[-1] != end:
            raise RuntimeError(f"path {start} -> {end} repeats or misses an end: {track_ids}")
        ours.append(body["monotoneShare"])
        steps.append(body["meanStepSimilarity"])
        share, step = path_stats(index, nearest_path(index, start, end, length))
        nearest.append(share)
        nearest_steps.append(step)
    return {
        "path_monotone_share": round(float(np.mean(ours)), 4),
        "path_mean_step_similarity": round(float(np.mean(steps)), 4),
        "path_monotone_share_nearest": round(float(np.mean(nearest)), 4),
        "path_mean_step_similarity_nearest": round(float(np.mean(nearest_steps)), 4),
        "path_length": length,
        "path_pairs": pairs,
    }


def continuation_figures(api: Api, cat: Catalogue, index: Any, rng: np.random.Generator, length: int) -> dict[str, float]:
    ours, baseline = [], []
    for _instrument, members in sorted(cat.by_instrument.items()):
        seeds = [str(s) for s in rng.choice(members, size=3, replace=False)]
        body = api.post("/playlists/continue", {"seeds": seeds, "length": length, "maxPerArtist": None})
        ours.append(body["meanStepSimilarity"])
        # The baseline: the first seed's nearest neighbours in order, after the last seed.
        neighbours = [n.track_id for n in index.search(index.vector(seeds[0]), length, exclude=set(seeds))]
        walk = [seeds[-1], *neighbours]
        baseline.append(float(np.mean([index.vector(a) @ index.vector(b) for a, b in zip(walk, walk[1:], strict=False)])))
    return {
        "continuation_mean_step_similarity": round(float(np.mean(ours)), 4),
        "continuation_baseline_mean_step_similarity": round(float(np.mean(baseline)), 4),
        "continuation_length": length,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the small catalogue (48 clips) and fewer trials")
    args = parser.parse_args(argv)
    mode = "small" if args.quick else "full"
    started = time.monotonic()
    rng = np.random.default_rng(RANDOM_SEED)

    folder = build(mode, progress=False).folder
    record = read_catalogue(folder)
    if record is None or not record.get("complete"):
        log(f"no complete catalogue.json in {folder}")
        return 1
    clips = record["clips"]
    paths = [folder / clip["file"] for clip in clips]
    track_ids = [local_track_id(path.read_bytes()) for path in paths]
    cat = Catalogue(track_ids, [clip["instrument"] for clip in clips])
    from catalog.model import MODEL_ID

    vectors = embed(paths, [clip["sha256"] for clip in clips], MODEL_ID, folder / EMBEDDINGS_CACHE)

    from infra.http_gateway import serve, shutdown
    from infra.stack import running_stack

    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as workdir, running_stack() as stack:
        os.environ["MODEL_ID"] = os.environ.get("MODEL_ID") or MODEL_ID
        load_tracks(clips, track_ids, vectors, os.environ["MODEL_ID"])
        from annoy_service.__main__ import main as index_main

        if index_main([]) != 0:
            log("no index was published")
            return 1
        from api.index_cache import IndexCache

        # The same bundle, loaded here too: the baselines run in this process, next to the API.
        index = IndexCache(os.environ["INDEX_BUCKET"], directory=Path(workdir) / "index").current()
        if index is None:
            log("the published index could not be loaded")
            return 1
        server, thread = serve(stack.handler("ApiFunction"))
        api = Api("http://{}:{}".format(*server.server_address[:2]))
        try:
            figures: dict[str, Any] = {"mode": mode, "clips": len(clips), "instruments": len(cat.by_instrument), "k": K}
            log("several seeds")
            figures |= multiseed(api, cat, rng, trials=5 if args.quick else 10)
            log("stations")
            figures |= station_figures(api, cat, rng)
            log("paths")
            figures |= path_figures(api, cat, index, rng, pairs=6 if args.quick else 24, length=8 if args.quick else 10)
            log("continuations")
            figures |= continuation_figures(api, cat, index, rng, length=10 if args.quick else 20)
        finally:
            shutdown(server, thread)
    figures["total_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
