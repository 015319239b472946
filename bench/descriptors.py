"""Descriptor accuracy on clips with known tempo, key and level, and their cost against the embedding.

    python bench/descriptors.py [--quick] [--seconds 30]

The labelled set is generated (demo/labelled.py): songs written with pretty_midi in
every one of the 24 keys at tempos spread over 60..180 BPM (half of them with a
drum kit), drum loops at 60, 70, ..., 180 BPM, all played by tinysoundfont on
pretty_midi's General MIDI soundfont as 44.1 kHz stereo and encoded to mp3 like a
preview. Level-shifted copies (0, −10, −20 dB) measure loudness: the reference is
pyloudnorm's BS.1770 loudness of the source before encoding, plus the gain.

- tempo_accuracy1 / tempo_accuracy2: MIREX, within 4 % (2: also at ×2, ×½, ×3, ×⅓);
- key_weighted_score (MIREX: 1 exact, 0.5 fifth, 0.3 relative, 0.2 parallel), key_accuracy;
- loudness_error_lu: mean |measured − reference| over the copies; the same measured on
  the 16 kHz mono mix the model gets (``loudness_error_lu_16k_mono``) is the baseline;
- descriptors vs embedding: per-clip seconds of each on the same decoded clips in this run.

The seeds (from 100) differ from those the thresholds were chosen on. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pyloudnorm  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "extractor"))

from extractor_synth import encode  # noqa: E402

from catalog.descriptors import Descriptors, Mode  # noqa: E402
from demo.labelled import RATE_HZ, Labelled, drum_set, tonal_set, with_gain  # noqa: E402
from extractor.audio import decode_clip  # noqa: E402
from extractor.constants import SAMPLE_RATE_HZ  # noqa: E402
from extractor.descriptors import describe, loudness  # noqa: E402
from extractor.features import Spectra  # noqa: E402

TEMPO_TOLERANCE = 0.04
TEMPO_OCTAVES = (1.0, 2.0, 0.5, 3.0, 1 / 3)
GAINS_DB = (0.0, -10.0, -20.0)
FIRST_SEED = 100
FIFTH_SEMITONES = (5, 7)
RELATIVE_MINOR_SEMITONES = 9


def log(message: str) -> None:
    print(f"[bench/descriptors] {message}", file=sys.stderr, flush=True)


def tempo_scores(estimated: float, truth: float) -> tuple[bool, bool]:
    ratio = estimated / truth
    return abs(ratio - 1) <= TEMPO_TOLERANCE, any(abs(ratio / m - 1) <= TEMPO_TOLERANCE for m in TEMPO_OCTAVES)


def key_score(d: Descriptors, key: int, minor: bool) -> float:
    """MIREX key score: 1 exact, 0.5 a fifth off in the same mode, 0.3 relative, 0.2 parallel."""
    estimated_minor = d.mode is Mode.MINOR
    if estimated_minor == minor:
        if d.key == key:
            return 1.0
        return 0.5 if (d.key - key) % 12 in FIFTH_SEMITONES else 0.0
    relative = (key + RELATIVE_MINOR_SEMITONES) % 12 if not minor else (key + 3) % 12
    if d.key == relative:
        return 0.3
    return 0.2 if d.key == key else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 songs and 4 drum loops of 10 s (under a minute)")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length of the full run")
    args = parser.parse_args()
    n_songs, drum_tempos, seconds = (8, [60.0, 100.0, 140.0, 180.0], 10.0) if args.quick else (
        24, [float(t) for t in range(60, 181, 10)], args.seconds)

    start = time.perf_counter()
    clips: list[Labelled] = tonal_set(n_songs, seconds, first_seed=FIRST_SEED) + drum_set(drum_tempos, seconds)
    log(f"rendered {len(clips)} clips of {seconds:g} s in {time.perf_counter() - start:.1f} s")

    from extractor.embed import Embedder

    embedder = Embedder()
    # Warm-up: the first clip pays for allocations and caches neither figure should include.
    warm = decode_clip(encode(clips[0].audio, "mp3"))
    describe(warm, Spectra.of(warm.samples))
    embedder.predict(Spectra.of(warm.samples).patches())
    tempo1 = tempo2 = 0
    key_points: list[float] = []
    loudness_errors: list[float] = []
    mono_errors: list[float] = []
    wall = {"descriptors": 0.0, "embedding": 0.0}
    cpu = dict.fromkeys(wall, 0.0)
    failures: list[str] = []
    for number, labelled in enumerate(clips, start=1):
        reference = pyloudnorm.Meter(RATE_HZ).integrated_loudness(labelled.audio.astype(np.float64))
        for gain_db in GAINS_DB:
            data = encode(with_gain(labelled.audio, gain_db), "mp3")
            w, c = time.perf_counter(), time.process_time()
            clip = decode_clip(data)
            shared = Spectra.of(clip.samples)
            if gain_db == 0.0:
                # The embedding is timed once per clip; the level-shifted copies only measure loudness.
                embedder.predict(shared.patches())
            embed_wall, embed_cpu = time.perf_counter() - w, time.process_time() - c
            w, c = time.perf_counter(), time.process_time()
            d = describe(clip, shared)
            describe_wall, describe_cpu = time.perf_counter() - w, time.process_time() - c
            loudness_errors.append(abs(d.loudnessLufs - (reference + gain_db)))
            mono, _ = loudness(clip.samples[:, np.newaxis], SAMPLE_RATE_HZ)
            mono_errors.append(abs(mono - (reference + gain_db)))
            if gain_db != 0.0:
                continue
            wall["embedding"] += embed_wall
            wall["descriptors"] += describe_wall
            cpu["embedding"] += embed_cpu
            cpu["descriptors"] += describe_cpu
            within, within_octaves = tempo_scores(d.tempoBpm, labelled.tempo_bpm)
            tempo1, tempo2 = tempo1 + within, tempo2 + within_octaves
            outcome = f"tempo {d.tempoBpm:.1f}"
            if not within:
                failures.append(f"{labelled.name}: tempo {d.tempoBpm:.1f}")
            if labelled.key is not None and labelled.minor is not None:
                key_points.append(key_score(d, labelled.key, labelled.minor))
                outcome += f", key {d.keyName} {d.mode.value}"
                if key_points[-1] < 1:
                    failures.append(f"{labelled.name}: key {d.keyName} {d.mode.value}")
        log(f"[{number}/{len(clips)}] {labelled.name}: {outcome}")
    for failure in failures:
        log(f"miss: {failure}")

    n = len(clips)
    result = {
        "clips": n,
        "songs": n_songs,
        "drum_loops": len(drum_tempos),
        "clip_seconds": seconds,
        "tempo_accuracy1": round(tempo1 / n, 3),
        "tempo_accuracy2": round(tempo2 / n, 3),
        "key_weighted_score": round(float(np.mean(key_points)), 3),
        "key_accuracy": round(float(np.mean([p == 1.0 for p in key_points])), 3),
        "loudness_error_lu": round(float(np.mean(loudness_errors)), 3),
        "loudness_error_lu_max": round(float(np.max(loudness_errors)), 3),
        "loudness_error_lu_16k_mono": round(float(np.mean(mono_errors)), 3),
        "loudness_copies": len(loudness_errors),
        "descriptors_s_per_clip": round(wall["descriptors"] / n, 4),
        "embedding_s_per_clip": round(wall["embedding"] / n, 4),
        "descriptors_vs_embedding": round(wall["descriptors"] / wall["embedding"], 3),
        "descriptors_vs_embedding_cpu": round(cpu["descriptors"] / cpu["embedding"], 3),
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
