"""The model's input: log-compressed mel spectrogram cut into 3 s patches."""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from numpy.typing import NDArray

from extractor.constants import (
    HOP_LENGTH,
    LOG_MEL_SCALE,
    MEL_FMAX_HZ,
    MEL_FMIN_HZ,
    N_FFT,
    N_MELS,
    PATCH_FRAMES,
    SAMPLE_RATE_HZ,
)


def power_spectrogram(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """(1 + N_FFT / 2, frames) |STFT|² of 16 kHz mono samples, as melspectrogram computes it.

    Computed once per clip: the model's log-mel and the descriptors both start from it.
    """
    spectrum = librosa.stft(np.asarray(samples, dtype=np.float32), n_fft=N_FFT, hop_length=HOP_LENGTH, pad_mode="constant")
    return np.abs(spectrum) ** 2


def mel_power(power: NDArray[np.float32]) -> NDArray[np.float32]:
    """(N_MELS, frames) mel band power of a power spectrogram."""
    return librosa.feature.melspectrogram(
        S=power,
        sr=SAMPLE_RATE_HZ,
        n_fft=N_FFT,
        n_mels=N_MELS,
        fmin=MEL_FMIN_HZ,
        fmax=MEL_FMAX_HZ,
        htk=False,
        norm="slaney",
    )


def log_compress(mel: NDArray[np.float32]) -> NDArray[np.float32]:
    """(frames, N_MELS) log10(LOG_MEL_SCALE · power + 1) of mel band power (N_MELS, frames).

    Computed in float32: the musicnn package's float16 version overflows on
    loud frames, which makes every mastered track look alike.
    """
    return np.log10(np.float32(LOG_MEL_SCALE) * mel.T.astype(np.float32) + np.float32(1.0))


def log_mel(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """(frames, N_MELS) log-compressed mel spectrogram of 16 kHz mono samples: the model's input."""
    return log_compress(mel_power(power_spectrogram(samples)))


@dataclass(frozen=True)
class Spectra:
    """A clip's spectrogram, computed once for the model's input and the descriptors."""

    power: NDArray[np.float32]  # (1 + N_FFT / 2, frames) |STFT|² at SAMPLE_RATE_HZ
    mel: NDArray[np.float32]  # (N_MELS, frames) mel band power

    @classmethod
    def of(cls, samples: NDArray[np.float32]) -> Spectra:
        power = power_spectrogram(samples)
        return cls(power=power, mel=mel_power(power))

    def patches(self) -> NDArray[np.float32]:
        """The model's input patches."""
        return patches(log_compress(self.mel))


def patches(mel: NDArray[np.float32]) -> NDArray[np.float32]:
    """(n, PATCH_FRAMES, N_MELS) consecutive non-overlapping patches; a trailing partial patch is dropped."""
    n = mel.shape[0] // PATCH_FRAMES
    if n == 0:
        raise ValueError(f"need at least {PATCH_FRAMES} frames for one patch, got {mel.shape[0]}")
    return np.ascontiguousarray(mel[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS), dtype=np.float32)


def clip_patches(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """Samples at SAMPLE_RATE_HZ straight to the model's input patches."""
    return patches(log_mel(samples))
