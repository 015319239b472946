"""Audio bytes (mp3, ogg, wav, flac) to 16 kHz mono float32 samples (and the audio as decoded).

Every problem that retrying cannot fix raises :class:`UndecodableAudioError` (or
a subclass naming the problem), so callers can mark the track failed instead of
retrying it forever.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import librosa
import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from extractor.constants import (
    MAX_AUDIO_BYTES,
    MAX_PEAK_AMPLITUDE,
    MAX_PEAK_DBFS,
    MIN_DURATION_S,
    MIN_SAMPLES,
    SAMPLE_RATE_HZ,
    SILENCE_PEAK_AMPLITUDE,
    SILENCE_PEAK_DBFS,
)

# soxr's high quality setting: what librosa.load uses by default.
RESAMPLE_TYPE = "soxr_hq"


class UndecodableAudioError(ValueError):
    """The bytes are not usable audio; a retry would fail the same way."""


class EmptyAudioError(UndecodableAudioError):
    """No bytes, or a valid container without a single sample."""


class OversizeAudioError(UndecodableAudioError):
    """More bytes than any preview should have."""


class TooShortAudioError(UndecodableAudioError):
    """Shorter than one model patch."""


class SilentAudioError(UndecodableAudioError):
    """Nothing audible: the embedding of silence says nothing about music."""


class OutOfRangeAudioError(UndecodableAudioError):
    """Samples far beyond full scale: no recording sounds like that, and the features overflow."""


class UnembeddableAudioError(UndecodableAudioError):
    """The model made no finite, non-zero embedding of the audio; the same audio would fail again."""


def check_size(n_bytes: int) -> None:
    """Raise for sizes no decoder should be asked to handle."""
    if n_bytes <= 0:
        raise EmptyAudioError("audio is empty (0 bytes)")
    if n_bytes > MAX_AUDIO_BYTES:
        raise OversizeAudioError(
            f"audio is {n_bytes / 2**20:.1f} MiB, more than the {MAX_AUDIO_BYTES / 2**20:.0f} MiB limit"
        )


@dataclass(frozen=True)
class DecodedClip:
    """One decoded preview: what the model embeds, and the audio at its own level, rate and channels.

    Nothing here is normalised: loudness is measured on ``native`` (BS.1770 sums the
    channels' powers and weights frequencies up to the native Nyquist, so neither the
    mono mixdown nor the 16 kHz resampling would do).
    """

    samples: NDArray[np.float32]  # mono at SAMPLE_RATE_HZ
    native: NDArray[np.float32]  # (frames, channels) as decoded
    native_rate_hz: int


def decode_clip(data: bytes) -> DecodedClip:
    """Decode mp3 / ogg / wav / flac bytes; the mono float32 samples at SAMPLE_RATE_HZ are checked for use."""
    check_size(len(data))
    try:
        frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        # str(exc) names the file object ("Error opening <_io.BytesIO object at 0x…>"); the reason alone says it.
        raise UndecodableAudioError(f"cannot decode audio (mp3, ogg, wav or flac expected): {exc.error_string}") from exc
    except (RuntimeError, TypeError, ValueError) as exc:
        raise UndecodableAudioError(f"cannot decode audio (mp3, ogg, wav or flac expected): {exc}") from exc
    if frames.shape[0] == 0:
        raise EmptyAudioError("audio holds no samples")
    if not np.all(np.isfinite(frames)):
        raise UndecodableAudioError("audio holds samples that are not finite numbers")
    mono = frames.mean(axis=1, dtype=np.float32)
    samples = (
        librosa.resample(mono, orig_sr=rate, target_sr=SAMPLE_RATE_HZ, res_type=RESAMPLE_TYPE)
        if rate != SAMPLE_RATE_HZ
        else mono
    )
    check_samples(samples)
    return DecodedClip(np.ascontiguousarray(samples, dtype=np.float32), frames, int(rate))


def decode(data: bytes) -> NDArray[np.float32]:
    """Decode mp3 / ogg / wav / flac bytes to mono float32 samples at SAMPLE_RATE_HZ."""
    return decode_clip(data).samples


def check_samples(samples: NDArray[np.float32]) -> None:
    """Raise for clips at SAMPLE_RATE_HZ that are too short or silent to embed."""
    if samples.size < MIN_SAMPLES:
        raise TooShortAudioError(
            f"audio lasts {samples.size / SAMPLE_RATE_HZ:.2f} s, shorter than the {MIN_DURATION_S:g} s minimum"
        )
    peak = float(np.max(np.abs(samples)))
    if peak < SILENCE_PEAK_AMPLITUDE:
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.1f}"
        raise SilentAudioError(f"audio is silent (peak {level} dBFS, below {SILENCE_PEAK_DBFS:g} dBFS)")
    if peak > MAX_PEAK_AMPLITUDE:
        raise OutOfRangeAudioError(
            f"audio peaks at {20 * np.log10(peak):+.0f} dBFS, beyond the {MAX_PEAK_DBFS:+g} dBFS that float audio may reach"
        )
