"""The model's input: log-compressed mel spectrogram cut into 3 s patches."""

from __future__ import annotations

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


def log_mel(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """(frames, N_MELS) log10(LOG_MEL_SCALE · power + 1) of 16 kHz mono samples.

    Computed in float32: the musicnn package's float16 version overflows on
    loud frames, which makes every mastered track look alike.
    """
    power = librosa.feature.melspectrogram(
        y=np.asarray(samples, dtype=np.float32),
        sr=SAMPLE_RATE_HZ,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        fmin=MEL_FMIN_HZ,
        fmax=MEL_FMAX_HZ,
        power=2.0,
        htk=False,
        norm="slaney",
    )
    return np.log10(np.float32(LOG_MEL_SCALE) * power.T.astype(np.float32) + np.float32(1.0))


def patches(mel: NDArray[np.float32]) -> NDArray[np.float32]:
    """(n, PATCH_FRAMES, N_MELS) consecutive non-overlapping patches; a trailing partial patch is dropped."""
    n = mel.shape[0] // PATCH_FRAMES
    if n == 0:
        raise ValueError(f"need at least {PATCH_FRAMES} frames for one patch, got {mel.shape[0]}")
    return np.ascontiguousarray(mel[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS), dtype=np.float32)


def clip_patches(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """Samples at SAMPLE_RATE_HZ straight to the model's input patches."""
    return patches(log_mel(samples))
