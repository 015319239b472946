"""Extractor throughput: end-to-end clips/s (decode + log-mel + forward) on 30 s mp3
previews, one clip at a time and 16 clips at a time, for our Keras MSD_musicnn and,
in the same process on the same inputs, the wheel's original TF 1 graph; peak RSS.
And the production path itself: ExtractorFunction's handler on SQS batches of S3
notifications (template.yaml's BatchSize, and the other sizes given), against moto,
paired with the original graph embedding the same clips one at a time, as musicnn runs.
And the cost of the served embedding (musicnn-msd-midlevel-v2) against the one served before it
(musicnn-msd-v1: the penultimate layer's mean), clip by clip in the same process
(``extract_cost_vs_penultimate``; issue 19 caps it at 1.5).

    python bench/extract.py [--quick] [--clips 32] [--rounds 3] [--handler-batches 1,4,10]

Clips are 44.1 kHz stereo mp3 made in code (tests/extractor/extractor_synth.py):
decoding, resampling and mixing down are part of the measured work. Both models
get identical log-mel patches in identical chunks (PATCHES_PER_FORWARD patches per
call: feeding 160 patches at once needs several GB); they take turns on each group
of 16 clips, since this CPU is shared, and the figures are totals over all rounds.
Before the original is loaded, ours is also timed alone (``*_alone``), as the Lambda runs it.
Stage times (one clip at a time) include the descriptors' and their overhead over the
embedding (``descriptors_overhead``, target ≤ 0.25).
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "extractor"))

from extractor_synth import distorted_riff, drum_groove, encode, stereo, string_pad  # noqa: E402

from catalog.records import l2_normalise  # noqa: E402
from extractor.audio import check_samples, decode, decode_clip  # noqa: E402
from extractor.constants import N_MELS, PATCH_FRAMES, PATCHES_PER_FORWARD  # noqa: E402
from extractor.descriptors import describe  # noqa: E402
from extractor.features import Spectra, clip_patches  # noqa: E402

BATCH_CLIPS = 16
TEMPLATE = REPO_ROOT / "template.yaml"
GENERATORS = (drum_groove, string_pad, distorted_riff)

Forward = Callable[[NDArray[np.float32]], tuple[NDArray[np.float32], NDArray[np.float32]]]


def log(message: str) -> None:
    print(f"[bench/extract] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_clips(n: int, seconds: float) -> list[bytes]:
    """n mp3 previews; a few distinct ones repeated (encoding is slow and not what is measured)."""
    distinct = [encode(stereo(make(seconds, seed=i)), "mp3") for i, make in enumerate(GENERATORS)]
    return [distinct[i % len(distinct)] for i in range(n)]


def end_to_end(clips: list[bytes], forward: Forward, batch: int) -> tuple[float, float]:
    """(wall, CPU) seconds to embed every clip, ``batch`` clips' patches through the model together
    (the mid-level features, summarised as the extractor does)."""
    from extractor.embed import summarise_midlevel

    wall, cpu = time.perf_counter(), time.process_time()
    for first in range(0, len(clips), batch):
        per_clip = [clip_patches(decode(data)) for data in clips[first : first + batch]]
        _, midlevel = forward(np.concatenate(per_clip))
        bounds = np.cumsum([0] + [p.shape[0] for p in per_clip])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            summarise_midlevel(midlevel[a:b])
    return time.perf_counter() - wall, time.process_time() - cpu


def chunked(run: Forward) -> Forward:
    """``run`` fed the same chunks as Embedder.predict feeds our model."""

    def forward(patches: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        outs = [run(patches[i : i + PATCHES_PER_FORWARD]) for i in range(0, patches.shape[0], PATCHES_PER_FORWARD)]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    return forward


class PenultimateBaseline:
    """The embedding served before musicnn-msd-midlevel-v2, as the extractor made it: the same network
    built with the penultimate (200) as its output, one clip's patches in PATCHES_PER_FORWARD chunks,
    their mean at unit length and the mean taggram's top tags."""

    def __init__(self) -> None:
        import tensorflow as tf

        from extractor.model import PENULTIMATE, TAGGRAM, build_model, load_weights

        model = build_model((TAGGRAM, PENULTIMATE))
        load_weights(model)
        self._tf = tf
        self._forward = tf.function(
            lambda patches: model(patches, training=False),
            input_signature=[tf.TensorSpec([None, PATCH_FRAMES, N_MELS], tf.float32)],
        )
        self._forward(tf.zeros((1, PATCH_FRAMES, N_MELS), tf.float32))

    def embed_bytes(self, data: bytes) -> tuple[NDArray[np.float32], dict[str, float]]:
        from extractor.embed import top_tags
        from extractor.model import PENULTIMATE, TAGGRAM

        samples = decode(data)
        check_samples(samples)
        patches = clip_patches(samples)
        taggrams, penultimates = [], []
        for start in range(0, patches.shape[0], PATCHES_PER_FORWARD):
            out = self._forward(self._tf.constant(patches[start : start + PATCHES_PER_FORWARD]))
            taggrams.append(out[TAGGRAM].numpy())
            penultimates.append(out[PENULTIMATE].numpy())
        vector = l2_normalise(np.concatenate(penultimates).mean(axis=0, dtype=np.float64))
        return vector, top_tags(np.concatenate(taggrams).mean(axis=0))


def extract_cost(clips: list[bytes], rounds: int, served: Callable[[bytes], Any], baseline: Callable[[bytes], Any]) -> dict[str, float]:
    """Per-clip seconds of the served Embedder.embed_bytes and of the previous embedding on the same
    mp3 bytes (decode, log-mel, forward, summary), one clip at a time, taking turns clip by clip
    (order swapped every clip) so that other work on the machine hits both alike."""
    runs = {"served": served, "penultimate": baseline}
    wall = dict.fromkeys(runs, 0.0)
    cpu = dict.fromkeys(runs, 0.0)
    turn = 0
    for _ in range(rounds):
        for data in clips:
            for name in list(runs)[:: -1 if turn % 2 else 1]:
                w, c = time.perf_counter(), time.process_time()
                runs[name](data)
                wall[name] += time.perf_counter() - w
                cpu[name] += time.process_time() - c
            turn += 1
    return {
        "served_s_per_clip": wall["served"] / turn,
        "penultimate_s_per_clip": wall["penultimate"] / turn,
        "extract_cost_vs_penultimate": wall["served"] / wall["penultimate"],
        "extract_cpu_cost_vs_penultimate": cpu["served"] / cpu["penultimate"],
    }


def stage_times(clips: list[bytes], forward: Forward) -> dict[str, float]:
    """Per-clip seconds of each stage, one clip at a time, and what the descriptors add.

    The descriptors start from the decoded clip and the spectrogram the log-mel is made of
    (extractor.analysis.analyse); their overhead is their time over the embedding's
    (decode + log-mel + forward), in wall and in CPU seconds.
    """
    wall = dict.fromkeys(("decode", "logmel", "forward", "descriptors"), 0.0)
    cpu = dict.fromkeys(wall, 0.0)

    def timed(stage: str, run: Callable[..., Any], *args: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        out = run(*args)
        wall[stage] += time.perf_counter() - w
        cpu[stage] += time.process_time() - c
        return out

    for data in clips:
        clip = timed("decode", decode_clip, data)
        shared = timed("logmel", Spectra.of, clip.samples)
        timed("forward", forward, timed("logmel", shared.patches))
        timed("descriptors", describe, clip, shared)
    n = len(clips)
    embedding_wall = wall["decode"] + wall["logmel"] + wall["forward"]
    embedding_cpu = cpu["decode"] + cpu["logmel"] + cpu["forward"]
    return {
        "decode_s_per_clip": wall["decode"] / n,
        "logmel_s_per_clip": wall["logmel"] / n,
        "forward_s_per_clip": wall["forward"] / n,
        "embedding_s_per_clip": embedding_wall / n,
        "descriptors_s_per_clip": wall["descriptors"] / n,
        "descriptors_overhead": wall["descriptors"] / embedding_wall,
        "descriptors_cpu_overhead": cpu["descriptors"] / embedding_cpu,
    }


def template_batch_size() -> int:
    """ExtractorFunction's SQS BatchSize in template.yaml: the batch the handler gets in production."""
    from infra.template import functions, load_template

    events = functions(load_template(TEMPLATE))["ExtractorFunction"]["Properties"]["Events"]
    return next(int(e["Properties"]["BatchSize"]) for e in events.values() if e["Type"] == "SQS")


class HandlerRun:
    """The real handler on SQS-shaped batches of S3 notifications, against moto (S3 + the template's table)."""

    def __init__(self) -> None:
        from moto import mock_aws

        self.mock = mock_aws()
        self.mock.start()
        os.environ.update(AUDIO_BUCKET="bench-audio", TRACKS_TABLE="bench-tracks", AWS_DEFAULT_REGION="us-east-1",
                          AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_METRICS_NAMESPACE="soundslike-bench",
                          POWERTOOLS_LOG_LEVEL="WARNING")
        os.environ.pop("AWS_ENDPOINT_URL", None)
        import boto3

        from catalog import storage
        from extractor import handler
        from infra.context import LocalLambdaContext
        from infra.resources import template_table_params

        storage.client.cache_clear()
        storage.resource.cache_clear()
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.s3.create_bucket(Bucket="bench-audio")
        boto3.client("dynamodb", region_name="us-east-1").create_table(**template_table_params("bench-tracks"))
        self.handler = handler
        self.context = LocalLambdaContext(function_name="ExtractorFunction", timeout_s=120, memory_limit_in_mb=3008)
        self.uploaded = 0

    def event(self, clips: list[bytes]) -> dict[str, object]:
        from extractor_events import s3_message, sqs_event

        from catalog.records import Source, TrackRecord
        from catalog.storage import AudioStore

        store = AudioStore("bench-audio", self.s3)
        records = []
        for data in clips:
            self.uploaded += 1
            record = TrackRecord(track_id=f"bench-{self.uploaded:08d}", source=Source.LOCAL, title="bench")
            key = store.put_preview(record, "mp3", data, "audio/mpeg")
            records.append(s3_message("bench-audio", key, len(data)))
        return sqs_event(*records)

    def __call__(self, clips: list[bytes], batch: int) -> tuple[float, float]:
        """(wall, CPU) seconds of the handler invocations that take ``clips`` in batches of ``batch`` messages."""
        events = [self.event(clips[i : i + batch]) for i in range(0, len(clips), batch)]
        wall, cpu = time.perf_counter(), time.process_time()
        for event in events:
            response = self.handler.lambda_handler(event, self.context)
            if response["batchItemFailures"]:
                raise RuntimeError(f"the handler failed messages: {response}")
        return time.perf_counter() - wall, time.process_time() - cpu

    def close(self) -> None:
        self.mock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 clips of 6 s, one round (under a minute)")
    parser.add_argument("--clips", type=int, default=32, help="clips per measurement (a multiple of 16)")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, each over every clip")
    parser.add_argument("--handler-batches", default="1,4,10",
                        help="SQS batch sizes to run the handler at, besides template.yaml's")
    args = parser.parse_args()
    n_clips, seconds, rounds = (BATCH_CLIPS, 6.0, 1) if args.quick else (args.clips, args.seconds, args.rounds)
    production_batch = template_batch_size()
    handler_batches = sorted({production_batch} | (set() if args.quick else
                                                   {int(b) for b in args.handler_batches.split(",") if b}))

    load_before = os.getloadavg()[0]
    log(f"making {n_clips} mp3 clips of {seconds:g} s (load average {load_before:.1f})")
    clips = make_clips(n_clips, seconds)

    start = time.perf_counter()
    import tensorflow  # noqa: F401

    tf_import_s = time.perf_counter() - start
    from extractor.embed import Embedder

    start = time.perf_counter()
    embedder = Embedder()
    build_s = time.perf_counter() - start
    handler_run = HandlerRun()
    handler_run.handler.embedder()  # the container's model, built before timing (its cold start is apart)
    handler_run(clips[:production_batch], production_batch)
    ours = embedder.predict  # already runs PATCHES_PER_FORWARD patches per call
    log(f"TensorFlow import {tf_import_s:.1f} s, model build {build_s:.2f} s; warming up")
    end_to_end(clips[:BATCH_CLIPS], ours, BATCH_CLIPS)
    stages = stage_times(clips[: min(8, n_clips)], ours)
    log(f"descriptors {stages['descriptors_s_per_clip']:.3f} s per clip, {stages['descriptors_overhead']:.1%} of the embedding's time")
    # Ours alone first, as the Lambda runs it (no second TensorFlow runtime in the process):
    # it shows whether the original's resident TF 1 session skews the paired figures below.
    alone = {batch: end_to_end(clips, ours, batch) for batch in (1, BATCH_CLIPS)}
    log("ours alone: " + ", ".join(f"batch {b} {n_clips / t[0]:.2f} clips/s" for b, t in alone.items()))
    # Before the original's TF 1 session exists, as for ours alone: served against the previous embedding.
    baseline = PenultimateBaseline()
    extract_cost(clips[:1 if args.quick else 2], 1, embedder.embed_bytes, baseline.embed_bytes)  # warm-up
    # --quick pairs a quarter of its clips: the two differ by one summary step, and the minute is tight.
    cost = extract_cost(clips[: n_clips // 4] if args.quick else clips, rounds, embedder.embed_bytes, baseline.embed_bytes)
    log(
        f"served {cost['served_s_per_clip']:.3f} s per clip, previous (penultimate) "
        f"{cost['penultimate_s_per_clip']:.3f} s: {cost['extract_cost_vs_penultimate']:.3f}x"
    )
    ours_rss = peak_rss_mb()

    from extractor.original import OriginalGraph

    original_graph = OriginalGraph()
    original = chunked(original_graph.run)
    end_to_end(clips[:BATCH_CLIPS], original, BATCH_CLIPS)

    # Paired timing: ours and the original take turns on each group of 16 clips
    # (order swapped every group), so other work on the machine hits both alike.
    # The handler takes its turn too, paired with the original one clip at a time.
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    models: list[tuple[str, Callable[[list[bytes], int], tuple[float, float]], tuple[int, ...]]] = [
        ("ours", lambda group, batch: end_to_end(group, ours, batch), (1, BATCH_CLIPS)),
        ("original", lambda group, batch: end_to_end(group, original, batch), (1, BATCH_CLIPS)),
        ("handler", handler_run, tuple(handler_batches)),
    ]
    for round_number in range(1, rounds + 1):
        for group_number, first in enumerate(range(0, n_clips, BATCH_CLIPS)):
            group = clips[first : first + BATCH_CLIPS]
            for name, run, batches in models[:: -1 if (round_number + group_number) % 2 else 1]:
                for batch in batches:
                    wall_taken, cpu_taken = run(group, batch)
                    key = f"{name}_{batch}"
                    wall[key] = wall.get(key, 0.0) + wall_taken
                    cpu[key] = cpu.get(key, 0.0) + cpu_taken
        log(
            f"round {round_number}/{rounds}: "
            + ", ".join(f"{key} {round_number * n_clips / wall[key]:.2f} clips/s" for key in sorted(wall))
        )
    original_graph.close()
    handler_run.close()

    measured = rounds * n_clips
    rate = {key: measured / value for key, value in wall.items()}
    handler_rate = rate[f"handler_{production_batch}"]
    result = {
        # The production path: ExtractorFunction's handler on SQS batches of template.yaml's BatchSize,
        # against the original graph embedding the same clips one at a time (as musicnn does).
        "handler_clips_per_s": round(handler_rate, 3),
        "handler_vs_original": round(handler_rate / rate["original_1"], 3),
        "handler_batch_size": production_batch,
        "handler_clips_per_s_by_batch": {b: round(rate[f"handler_{b}"], 3) for b in handler_batches},
        "handler_vs_original_batch16": round(handler_rate / rate[f"original_{BATCH_CLIPS}"], 3),
        "clips": n_clips,
        "clip_seconds": seconds,
        "clips_per_s": round(rate["ours_1"], 3),
        "clips_per_s_alone": round(n_clips / alone[1][0], 3),
        "clips_per_s_batch16_alone": round(n_clips / alone[BATCH_CLIPS][0], 3),
        "clips_per_s_batch16": round(rate[f"ours_{BATCH_CLIPS}"], 3),
        "original_clips_per_s": round(rate["original_1"], 3),
        "original_clips_per_s_batch16": round(rate[f"original_{BATCH_CLIPS}"], 3),
        "vs_original": round(rate["ours_1"] / rate["original_1"], 3),
        "vs_original_batch16": round(rate[f"ours_{BATCH_CLIPS}"] / rate[f"original_{BATCH_CLIPS}"], 3),
        # CPU seconds per clip (all threads): less sensitive than clips/s to other work on the machine.
        "cpu_s_per_clip": round(cpu["ours_1"] / measured, 4),
        "cpu_s_per_clip_batch16": round(cpu[f"ours_{BATCH_CLIPS}"] / measured, 4),
        "original_cpu_s_per_clip": round(cpu["original_1"] / measured, 4),
        "original_cpu_s_per_clip_batch16": round(cpu[f"original_{BATCH_CLIPS}"] / measured, 4),
        # The served embedding against the one served before it (penultimate mean), one clip at a time.
        **{key: round(value, 4) for key, value in cost.items()},
        "peak_rss_mb": round(ours_rss, 1),
        "peak_rss_mb_with_original": round(peak_rss_mb(), 1),
        **{key: round(value, 4) for key, value in stages.items()},
        "tensorflow_import_s": round(tf_import_s, 2),
        "model_build_s": round(build_s, 2),
        "patches_per_forward": PATCHES_PER_FORWARD,
        "cpus": os.cpu_count(),
        # Other work on this shared CPU slows every figure alike; the ratios hold up better.
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
