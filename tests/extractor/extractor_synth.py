"""Music-like test audio made in code: three clearly different kinds of material.

Each generator draws its notes per bar from a seeded random source, so two
excerpts of one piece share instruments and style but not notes, while
different generators differ in timbre, rhythm and register.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

RATE_HZ = 44_100
BPM = 120.0
BEAT_S = 60.0 / BPM
MINOR_SCALE = np.array([0, 2, 3, 5, 7, 8, 10])


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _envelope(n: int, rate: int, attack_s: float, decay_s: float) -> NDArray[np.float64]:
    t = np.arange(n) / rate
    return np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-t / decay_s)


def _place(out: NDArray[np.float64], start: int, sound: NDArray[np.float64]) -> None:
    end = min(out.size, start + sound.size)
    if start < end:
        out[start:end] += sound[: end - start]


def drum_groove(seconds: float, seed: int, rate: int = RATE_HZ) -> NDArray[np.float32]:
    """Electronic dance beat: kick on every beat, snare on 2 and 4, hi-hats, a saw bass line."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n)
    beat = int(BEAT_S * rate)
    kick_t = np.arange(int(0.3 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 * kick_t + 60 * (1 - np.exp(-kick_t * 30)) / 30)) * np.exp(-kick_t * 12)
    snare_n = int(0.18 * rate)
    hat_n = int(0.05 * rate)
    for i, start in enumerate(range(0, n, beat)):
        _place(out, start, 0.9 * kick)
        if i % 2 == 1:
            _place(out, start, 0.5 * rng.standard_normal(snare_n) * _envelope(snare_n, rate, 0.001, 0.05))
        for half in (0, beat // 2):
            hat = np.diff(rng.standard_normal(hat_n + 1)) * _envelope(hat_n, rate, 0.0005, 0.012)
            _place(out, start + half, 0.25 * hat)
    root = 33 + rng.integers(0, 5)
    for start in range(0, n, beat // 2):
        note = root + MINOR_SCALE[rng.integers(0, 3)] + 12 * rng.integers(0, 2)
        m = beat // 2
        t = np.arange(m) / rate
        saw = 2 * ((t * _midi_hz(note)) % 1.0) - 1
        _place(out, start, 0.3 * saw * _envelope(m, rate, 0.005, 0.15))
    return _master(out)


def string_pad(seconds: float, seed: int, rate: int = RATE_HZ) -> NDArray[np.float32]:
    """Slow ambient chords: soft harmonic tones with long attacks and vibrato, no percussion."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n)
    chord_n = int(4 * BEAT_S * rate)
    for start in range(0, n, chord_n):
        root = 57 + MINOR_SCALE[rng.integers(0, 7)]
        t = np.arange(min(chord_n * 2, n - start)) / rate
        env = np.minimum(1.0, t / 1.2) * np.exp(-t / 3.0)
        for interval in (0, 3, 7, 12):
            hz = _midi_hz(root + interval)
            vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * t)
            phase = 2 * np.pi * hz * np.cumsum(vibrato) / rate
            tone = sum(np.sin(k * phase) / k**2 for k in range(1, 6))
            _place(out, start, 0.15 * tone * env)
    return _master(out)


def distorted_riff(seconds: float, seed: int, rate: int = RATE_HZ) -> NDArray[np.float32]:
    """Heavy guitar-like riff: clipped power chords in eighth notes over a fast noise-burst beat."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n)
    eighth = int(BEAT_S * rate / 2)
    for i, start in enumerate(range(0, n, eighth)):
        if i % 4 == 0:
            root = 40 + MINOR_SCALE[rng.integers(0, 5)]
        t = np.arange(eighth) / rate
        chord = sum(((t * _midi_hz(root + iv)) % 1.0) * 2 - 1 for iv in (0, 7, 12))
        _place(out, start, np.tanh(6 * chord) * 0.5 * _envelope(eighth, rate, 0.002, 0.4))
        crash = rng.standard_normal(eighth) * _envelope(eighth, rate, 0.001, 0.04)
        _place(out, start, 0.3 * crash)
    return _master(out)


def _master(signal: NDArray[np.float64]) -> NDArray[np.float32]:
    return (0.9 * signal / np.max(np.abs(signal))).astype(np.float32)


def stereo(mono: NDArray[np.float32]) -> NDArray[np.float32]:
    """Two slightly different channels, so decoding must mix them down."""
    return np.stack([mono, 0.8 * mono], axis=1)


def encode(samples: NDArray[np.float32], fmt: str, rate: int = RATE_HZ) -> bytes:
    """Samples as wav / flac / ogg (Vorbis) / mp3 bytes, written by libsndfile."""
    formats = {
        "wav": ("WAV", "PCM_16"),
        "flac": ("FLAC", "PCM_16"),
        "ogg": ("OGG", "VORBIS"),
        "mp3": ("MP3", "MPEG_LAYER_III"),
    }
    container, subtype = formats[fmt]
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def sine(seconds: float, hz: float, rate: int = RATE_HZ, amplitude: float = 0.5) -> NDArray[np.float32]:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)
