"""Query by audio: does an uploaded clip, or a 10 s mp3 excerpt of it, find its own track, and how fast?

The demo catalogue goes through the real local pipeline (crawl → extractor →
stream → annoy_service → published index); then every clip is uploaded back to
ByAudioFunction's handler as an API Gateway event, whole and as a random 10 s
excerpt re-encoded to mp3 at 128 kbps. Latency is the warm handler on a 30 s
mp3, against the extractor's own per-clip time (decode + embed of the same
bytes with the same Embedder: decode_clip + analyse) measured in the same run.

    .venv/bin/python bench/by_audio.py            # the 72-clip demo catalogue
    .venv/bin/python bench/by_audio.py --quick    # 12 clips of the small catalogue

Ends with one JSON line: self_hit_at_1, cropped_self_hit_at_10, latency_p50_ms,
latency_p99_ms, extractor_p50_ms, vs_extractor.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from catalog.keys import local_track_id  # noqa: E402
from demo.excerpt import mp3_excerpt  # noqa: E402

EXCERPT_S = 10.0
K = 10
INDEX_WAIT_S = 300.0
LATENCY_RUNS = 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def by_audio_event(body: bytes, k: int) -> dict[str, Any]:
    from infra.http_gateway import Route, build_event

    return build_event(
        method="POST",
        target=f"/recommendations/by-audio?k={k}",
        headers=[("host", "127.0.0.1"), ("content-type", "audio/mpeg"), ("content-length", str(len(body)))],
        body=body,
        route=Route.parse("POST", "/recommendations/by-audio", "ByAudioFunction"),
        path_parameters={},
        source_ip="127.0.0.1",
    )



def catalogue_clips(quick: bool, folder: Path) -> list[Path]:
    from demo.catalog import build

    catalogue = build("small" if quick else "full", None, progress=False).folder
    names = sorted(c["file"] for c in json.loads((catalogue / "catalogue.json").read_text())["clips"])
    if quick:
        names = names[:12]
    for name in names:
        shutil.copy(catalogue / name, folder / name)
    return [folder / name for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 clips of the small catalogue (under a minute)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    from crawler.pipeline import cli_crawler, crawl_sources
    from infra.cli import drain_extract_queue
    from infra.context import LocalLambdaContext
    from infra.stack import running_stack

    with tempfile.TemporaryDirectory(prefix="bench-by-audio-") as tmp, running_stack() as stack:
        clips = catalogue_clips(args.quick, Path(tmp))
        ids = [local_track_id(p.read_bytes()) for p in clips]
        log(f"indexing {len(clips)} clips through the local pipeline")
        pump = stack.pump(only={"AnnoyServiceFunction"})
        pump.start()
        try:
            crawl_sources(cli_crawler(), [tmp])
            report = drain_extract_queue(stack)
            if report.dead:
                raise SystemExit(f"{report.dead} clips could not be extracted")
            stack.wait_for_index(len(clips), INDEX_WAIT_S)
        finally:
            pump.stop()

        handler = stack.handler("ByAudioFunction")
        context = LocalLambdaContext(function_name="ByAudioFunction", timeout_s=29.0)

        def ask(body: bytes, k: int = K) -> list[str]:
            response = handler(by_audio_event(body, k), context)
            if response["statusCode"] != 200:
                raise SystemExit(f"by-audio answered {response['statusCode']}: {response['body']}")
            return [r["trackId"] for r in json.loads(response["body"])["results"]]

        ask(clips[0].read_bytes())  # cold start: TensorFlow, the model, the index
        bodies = [p.read_bytes() for p in clips]
        self_hits = sum(ask(body, 1)[0] == track_id for body, track_id in zip(bodies, ids, strict=True))
        cropped_hits = 0
        for body, track_id in zip(bodies, ids, strict=True):
            excerpt, _ = mp3_excerpt(body, EXCERPT_S, rng)
            cropped_hits += track_id in ask(excerpt)
        log(f"self hit@1 {self_hits}/{len(ids)}, cropped hit@10 {cropped_hits}/{len(ids)}")

        # Latency, warm, interleaved with the extractor's own path on the same bytes so that
        # load on this shared machine affects both alike.
        from api.routes.by_audio import _embedder
        from extractor.analysis import analyse
        from extractor.audio import decode_clip

        embedder = _embedder()
        handler_s, extractor_s = [], []
        for i in range(LATENCY_RUNS if not args.quick else 8):
            body = bodies[i % len(bodies)]
            started = time.perf_counter()
            analyse(embedder, decode_clip(body))
            extractor_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            ask(body)
            handler_s.append(time.perf_counter() - started)

    p50, p99 = (float(np.percentile(handler_s, q) * 1000) for q in (50, 99))
    extractor_p50 = float(np.percentile(extractor_s, 50) * 1000)
    figures = {
        "clips": len(ids),
        "self_hit_at_1": round(self_hits / len(ids), 4),
        "cropped_self_hit_at_10": round(cropped_hits / len(ids), 4),
        "latency_p50_ms": round(p50, 1),
        "latency_p99_ms": round(p99, 1),
        "extractor_p50_ms": round(extractor_p50, 1),
        "vs_extractor": round(p50 / extractor_p50, 3),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
