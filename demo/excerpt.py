"""Excerpts of a clip re-encoded as a listener's recording would be: for query-by-audio checks.

A 10 s excerpt at a random offset, as 44.1 kHz mp3 at 128 kbps (constant bit
rate), is what bench/by_audio.py and the end-to-end test upload to check that
a fragment of an indexed track still finds it.
"""

from __future__ import annotations

import io

import librosa
import numpy as np
import soundfile

EXCERPT_RATE_HZ = 44_100
# libsndfile's MPEG encoder maps compression level to a CBR bit rate: 0.65 gives 128 kbps at 44.1 kHz.
MP3_128KBPS_COMPRESSION = 0.65


def mp3_excerpt(data: bytes, seconds: float, rng: np.random.Generator) -> tuple[bytes, float]:
    """(mp3 bytes of a ``seconds``-long excerpt at a random offset, that offset in s)."""
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    length = int(seconds * rate)
    if mono.size < length:
        raise ValueError(f"the clip lasts {mono.size / rate:.1f} s, less than the {seconds:g} s excerpt")
    start = int(rng.integers(0, mono.size - length + 1))
    excerpt = mono[start : start + length]
    if rate != EXCERPT_RATE_HZ:
        excerpt = librosa.resample(excerpt, orig_sr=rate, target_sr=EXCERPT_RATE_HZ, res_type="soxr_hq")
    out = io.BytesIO()
    soundfile.write(
        out, excerpt, EXCERPT_RATE_HZ, format="MP3", bitrate_mode="CONSTANT", compression_level=MP3_128KBPS_COMPRESSION
    )
    return out.getvalue(), start / rate


def bitrate_kbps(mp3: bytes, seconds: float) -> float:
    return len(mp3) * 8 / seconds / 1000
