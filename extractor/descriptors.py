"""Tempo, key, loudness and the rest, from the same decoded clip the model embeds.

Every function is plain and takes what the embedding already computed (the
16 kHz power spectrogram and its mel bands) where it can, so the descriptors add
little to a clip's cost. librosa does onsets, beats, chroma, HPSS; pyloudnorm does
BS.1770. Written here by hand, because no maintained library we can ship does it:
the key estimate (correlation with Temperley's key profiles), the sub-frame tempo
refinement, and the definitions of energy and danceability (ARCHITECTURE.md,
"Descriptors").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import librosa
import librosa.decompose  # imported now, not on the first clip: a cold-start cost, once
import numpy as np
import scipy.ndimage
import scipy.signal
from numpy.typing import NDArray
from pyloudnorm.iirfilter import IIRfilter

from catalog.descriptors import Descriptors, Mode
from extractor.audio import DecodedClip
from extractor.constants import (
    ENERGY_BRIGHTNESS_HZ,
    ENERGY_LEVEL_LUFS,
    ENERGY_ONSETS_PER_S,
    HOP_LENGTH,
    HPSS_BAND_KERNEL,
    HPSS_POOL_FRAMES,
    HPSS_TIME_KERNEL,
    KEY_HOP_LENGTH,
    KEY_N_FFT,
    LOUDNESS_FLOOR_LUFS,
    LOUDNESS_RANGE_PERCENTILES,
    LOUDNESS_RANGE_RELATIVE_GATE_LU,
    N_FFT,
    ONSET_DELTA_DB,
    ONSET_TOP_DB,
    SAMPLE_RATE_HZ,
    TEMPO_LEVEL_SUPPORT,
    TEMPO_MAX_BPM,
    TEMPO_MAX_LAG_S,
    TEMPO_MIN_BPM,
    TEMPO_PRIOR_BPM,
    TEMPO_PRIOR_OCTAVES,
    TEMPO_REFINE_MULTIPLES,
)
from extractor.features import Spectra

FRAMES_PER_S = SAMPLE_RATE_HZ / HOP_LENGTH
# ITU-R BS.1770-4, as pyloudnorm's Meter parameterises it.
BS1770_SHELF_GAIN_DB, BS1770_SHELF_Q, BS1770_SHELF_HZ = 4.0, 1 / np.sqrt(2), 1500.0
BS1770_HIGH_PASS_Q, BS1770_HIGH_PASS_HZ = 0.5, 38.0
BS1770_CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)  # L, R, C, Ls, Rs
BS1770_OFFSET_DB = -0.691
BS1770_BLOCK_S = 0.4
BS1770_OVERLAP = 0.75
BS1770_RELATIVE_GATE_LU = -10.0

# Temperley's key profiles (from the Kostka-Payne corpus, 1999), tonic first. Krumhansl-Kessler's
# probe-tone ratings were tried too: they call more minor keys their parallel major on audio,
# whose overtones add the major third (the 5th harmonic of the tonic).
_MAJOR_PROFILE = np.array([5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0])
_MINOR_PROFILE = np.array([5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0])


@dataclass(frozen=True)
class Tempo:
    bpm: float
    confidence: float
    beats: NDArray[np.int64]  # frames of the beat grid


def onset_envelope(mel: NDArray[np.float32]) -> NDArray[np.float32]:
    """Spectral flux of the mel bands in dB, one value per STFT frame.

    Levels are relative to the clip's loudest band and floored ONSET_TOP_DB below it, so the
    envelope does not depend on the clip's level and quiet detail (hi-hat ghost notes, reverb
    tails) does not blur which pulse carries the music.
    """
    decibels = librosa.power_to_db(mel, ref=np.max, top_db=ONSET_TOP_DB)
    return librosa.onset.onset_strength(S=decibels, sr=SAMPLE_RATE_HZ, hop_length=HOP_LENGTH)


def _peak_near(ac: NDArray[np.float64], lag: float, reach: int) -> float | None:
    """The sub-frame position of the autocorrelation's peak within ``reach`` frames of ``lag``, if there is one."""
    low, high = max(1, round(lag) - reach), min(ac.size - 2, round(lag) + reach)
    if low > high:
        return None
    best = low + int(np.argmax(ac[low : high + 1]))
    a, b, c = ac[best - 1], ac[best], ac[best + 1]
    if b < a or b < c:
        return None  # the window's edge on a slope, not a peak
    curvature = a - 2 * b + c
    return best + (0.5 * (a - c) / curvature if curvature < 0 else 0.0)


def _refined_period(ac: NDArray[np.float64], lag: float) -> float:
    """The period near ``lag`` (frames) to a fraction of a frame, from the peaks at 1..4 periods."""
    periods = []
    for multiple in range(1, TEMPO_REFINE_MULTIPLES + 1):
        peak = _peak_near(ac, lag * multiple, reach=multiple + 1)
        if peak is not None:
            periods.append(peak / multiple)
    return float(np.median(periods)) if periods else lag


def beat_grid(envelope: NDArray[np.float32], period: float) -> NDArray[np.int64]:
    """Frames of a pulse with ``period`` (frames) over the clip, at the phase that puts the most onset strength on it."""
    peaks = scipy.ndimage.maximum_filter1d(envelope, size=3)
    beats = np.arange(0.0, envelope.size - period, period)
    best: tuple[float, NDArray[np.int64]] = (-1.0, np.zeros(0, np.int64))
    for phase in range(int(np.ceil(period))):
        grid = np.minimum(np.round(beats + phase).astype(np.int64), envelope.size - 1)
        score = float(peaks[grid].sum())
        if score > best[0]:
            best = (score, grid)
    return best[1]


def level_support(envelope: NDArray[np.float32], period: float) -> float:
    """How strong the onsets on every other beat of a pulse are against those on the rest, 0..1.

    Near 1 when every beat of the pulse carries onsets as strong as its neighbours' (the
    pulse is a felt beat level); near 0 when every other beat is empty (it is a subdivision).
    """
    grid = beat_grid(envelope, period)
    if grid.size < 4:
        return 0.0
    peaks = scipy.ndimage.maximum_filter1d(envelope, size=3)
    even, odd = float(peaks[grid[0::2]].mean()), float(peaks[grid[1::2]].mean())
    strong = max(even, odd)
    return min(even, odd) / strong if strong > 0 else 0.0


def tempo(envelope: NDArray[np.float32]) -> Tempo:
    """Global tempo: the onset autocorrelation's best period (librosa's tempo prior), refined below a
    frame, then moved to the fastest octave level within TEMPO_MIN_BPM..TEMPO_MAX_BPM that is felt as a
    beat (:func:`level_support` ≥ TEMPO_LEVEL_SUPPORT), with its beat grid.

    The confidence is the normalised autocorrelation at the beat period (1 for a
    perfectly periodic envelope, near 0 for no pulse).
    """
    centred = envelope.astype(np.float64) - float(envelope.mean())
    max_lag = min(int(TEMPO_MAX_LAG_S * FRAMES_PER_S), centred.size - 1)
    ac = librosa.autocorrelate(centred, max_size=max_lag + 1)
    if ac[0] <= 0:
        return Tempo(bpm=0.0, confidence=0.0, beats=np.zeros(0, np.int64))
    ac = ac / ac[0]
    prior_bpm = float(
        librosa.feature.tempo(
            tg=np.clip(ac, 0.0, None)[:, np.newaxis],
            sr=SAMPLE_RATE_HZ,
            hop_length=HOP_LENGTH,
            start_bpm=TEMPO_PRIOR_BPM,
            std_bpm=TEMPO_PRIOR_OCTAVES,
            max_tempo=TEMPO_MAX_BPM,
        )[0]
    )
    period = _refined_period(ac, FRAMES_PER_S * 60.0 / prior_bpm)
    levels = sorted(
        period * 2.0**octave
        for octave in range(-3, 4)
        if TEMPO_MIN_BPM <= FRAMES_PER_S * 60.0 / (period * 2.0**octave) <= TEMPO_MAX_BPM
    )
    for level in levels:
        if level_support(envelope, level) >= TEMPO_LEVEL_SUPPORT:
            period = level
            break
    confidence = float(np.clip(np.interp(period, np.arange(ac.size), ac), 0.0, 1.0))
    return Tempo(bpm=FRAMES_PER_S * 60.0 / period, confidence=confidence, beats=beat_grid(envelope, period))


@functools.lru_cache(maxsize=1)
def _chroma_filters() -> NDArray[np.float64]:
    return librosa.filters.chroma(sr=SAMPLE_RATE_HZ, n_fft=KEY_N_FFT, tuning=0.0).astype(np.float64)


def key_chroma(samples: NDArray[np.float32]) -> NDArray[np.float64]:
    """The clip's pitch-class energy (12,), from a long-window spectrogram (semitones resolved in the bass).

    Tuning is taken as A = 440 Hz: estimating it costs more than the rest of the key.
    """
    # In float64: squared quiet float32 bins are subnormal, and float32 arithmetic on them is slow.
    power = np.square(np.abs(librosa.stft(samples, n_fft=KEY_N_FFT, hop_length=KEY_HOP_LENGTH)), dtype=np.float64)
    return _chroma_filters() @ power.sum(axis=1)


def key(chroma: NDArray[np.float64]) -> tuple[int, Mode, float]:
    """(tonic pitch class, mode, confidence): the best of the 24 rotated key profiles.

    The confidence is that profile's Pearson correlation with the chroma, clipped to 0..1.
    """
    best = (0, Mode.MAJOR, -2.0)
    if not np.any(chroma > 0):
        return 0, Mode.MAJOR, 0.0
    for mode, profile in ((Mode.MAJOR, _MAJOR_PROFILE), (Mode.MINOR, _MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(chroma, np.roll(profile, tonic))[0, 1])
            if r > best[2]:
                best = (tonic, mode, r)
    return best[0], best[1], float(np.clip(best[2], 0.0, 1.0))


@functools.lru_cache(maxsize=8)
def _k_weighting(rate_hz: int) -> NDArray[np.float64]:
    """BS.1770's K-weighting (high shelf, then high pass) at ``rate_hz`` as second-order sections, designed by pyloudnorm."""
    stages = (
        IIRfilter(BS1770_SHELF_GAIN_DB, BS1770_SHELF_Q, BS1770_SHELF_HZ, rate_hz, "high_shelf"),
        IIRfilter(0.0, BS1770_HIGH_PASS_Q, BS1770_HIGH_PASS_HZ, rate_hz, "high_pass"),
    )
    return np.array([[*(stage.passband_gain * stage.b), *stage.a] for stage in stages])


def block_loudness(native: NDArray[np.float32], rate_hz: int) -> NDArray[np.float64]:
    """BS.1770 loudness (LUFS) of every 400 ms block, 75 % overlap, of audio at its own rate and channels.

    pyloudnorm's Meter does the same with a Python loop and four passes of copies over the
    audio (≈ 5× our time on a 30 s stereo preview); tests pin this against it. More channels
    than BS.1770's five are measured on their mono mix.
    """
    audio = native if native.shape[1] <= len(BS1770_CHANNEL_GAINS) else native.mean(axis=1, keepdims=True)
    n = audio.shape[0]
    weighted = scipy.signal.sosfilt(_k_weighting(rate_hz), np.ascontiguousarray(audio.T), axis=-1)
    n_blocks = int(np.round((n / rate_hz - BS1770_BLOCK_S) / (BS1770_BLOCK_S * (1 - BS1770_OVERLAP)))) + 1
    steps = (1 - BS1770_OVERLAP) * np.arange(n_blocks)
    # Block bounds exactly as pyloudnorm computes them; sums over the pieces between bounds.
    starts = (BS1770_BLOCK_S * steps * rate_hz).astype(np.int64)
    ends = np.minimum((BS1770_BLOCK_S * (steps + 1) * rate_hz).astype(np.int64), n)
    bounds = np.unique(np.concatenate([[0], starts, ends]))
    bounds = bounds[bounds < n]
    pieces = np.add.reduceat(weighted * weighted, bounds, axis=-1)
    energy_before = np.concatenate([np.zeros((audio.shape[1], 1)), np.cumsum(pieces, axis=-1)], axis=-1)
    at = np.append(bounds, n)
    block_energy = energy_before[:, np.searchsorted(at, ends)] - energy_before[:, np.searchsorted(at, starts)]
    mean_square = block_energy / (BS1770_BLOCK_S * rate_hz)
    gains = np.asarray(BS1770_CHANNEL_GAINS[: audio.shape[1]])
    with np.errstate(divide="ignore"):
        return BS1770_OFFSET_DB + 10 * np.log10(gains @ mean_square)


def _gated_mean_db(blocks: NDArray[np.float64]) -> float:
    """The loudness of the mean power of some blocks."""
    return float(BS1770_OFFSET_DB + 10 * np.log10(np.mean(10 ** ((blocks - BS1770_OFFSET_DB) / 10))))


def loudness(native: NDArray[np.float32], rate_hz: int) -> tuple[float, float]:
    """(integrated loudness in LUFS, loudness range of the 400 ms blocks in LU) of audio at its own rate.

    Integrated: BS.1770-4's gating (absolute −70 LUFS, then relative −10 LU). Range: the
    95th − 10th percentile of the blocks above −70 LUFS and −20 LU below their mean (EBU
    Tech 3342's statistic, on 400 ms blocks: a 30 s preview has too few 3 s windows).
    A clip with no block above −70 LUFS reports −70 and a range of 0.
    """
    blocks = block_loudness(native, rate_hz)
    audible = blocks[blocks > LOUDNESS_FLOOR_LUFS]
    if audible.size == 0:
        return LOUDNESS_FLOOR_LUFS, 0.0
    gated = audible[audible > _gated_mean_db(audible) + BS1770_RELATIVE_GATE_LU]
    in_range = audible[audible >= _gated_mean_db(audible) + LOUDNESS_RANGE_RELATIVE_GATE_LU]
    low, high = np.percentile(in_range, LOUDNESS_RANGE_PERCENTILES)
    return max(_gated_mean_db(gated), LOUDNESS_FLOOR_LUFS), float(high - low)


def brightness(power: NDArray[np.float32]) -> float:
    """Spectral centroid (Hz) of the clip's mean magnitude spectrum."""
    spectrum = np.sqrt(power).mean(axis=1, dtype=np.float64)
    total = float(spectrum.sum())
    if total == 0.0:
        return 0.0
    return float(np.dot(librosa.fft_frequencies(sr=SAMPLE_RATE_HZ, n_fft=N_FFT), spectrum) / total)


def percussiveness(mel: NDArray[np.float32]) -> float:
    """The percussive part's share of the energy after median-filter HPSS of the mel bands.

    The bands are pooled to HPSS_POOL_FRAMES-frame (64 ms) steps first: the filters then
    cost a sixteenth of full resolution's, and the share moves by a few hundredths.
    """
    usable = mel.shape[1] // HPSS_POOL_FRAMES * HPSS_POOL_FRAMES
    pooled = mel[:, :usable].reshape(mel.shape[0], -1, HPSS_POOL_FRAMES).mean(axis=2)
    harmonic, percussive = librosa.decompose.hpss(pooled, kernel_size=(HPSS_TIME_KERNEL, HPSS_BAND_KERNEL))
    total = float(harmonic.sum() + percussive.sum())
    return float(percussive.sum() / total) if total > 0 else 0.0


def onset_rate(envelope: NDArray[np.float32], duration_s: float) -> float:
    """Detected onsets per second: envelope peaks at least ONSET_DELTA_DB above their surroundings.

    An absolute threshold rather than librosa's default per-clip normalisation, which turns the
    small ripples of a clip without attacks (a pad's vibrato) into onsets.
    """
    onsets = librosa.onset.onset_detect(
        onset_envelope=envelope, sr=SAMPLE_RATE_HZ, hop_length=HOP_LENGTH, normalize=False, delta=ONSET_DELTA_DB
    )
    return len(onsets) / duration_s


def danceability(envelope: NDArray[np.float32], beat: Tempo) -> float:
    """√(beat strength × regularity), 0..1.

    Strength: 1 − mean(envelope) / mean(envelope on the beats), how far the beats stand
    out of the rest; regularity: the pulse clarity (the tempo confidence), how much the
    onset pattern repeats from one beat to the next.
    """
    if beat.beats.size < 2 or float(envelope.mean()) <= 0:
        return 0.0
    on_beats = float(scipy.ndimage.maximum_filter1d(envelope, size=3)[beat.beats].mean())
    strength = float(np.clip(1.0 - float(envelope.mean()) / on_beats, 0.0, 1.0)) if on_beats > 0 else 0.0
    return float(np.sqrt(strength * beat.confidence))


def energy(lufs: float, onsets_per_s: float, centroid_hz: float) -> float:
    """Mean of level, onset density and brightness, each mapped onto 0..1."""
    low, high = ENERGY_LEVEL_LUFS
    terms = ((lufs - low) / (high - low), onsets_per_s / ENERGY_ONSETS_PER_S, centroid_hz / ENERGY_BRIGHTNESS_HZ)
    return float(np.mean(np.clip(terms, 0.0, 1.0)))


def describe(clip: DecodedClip, spectra: Spectra) -> Descriptors:
    """Every descriptor of one clip."""
    envelope = onset_envelope(spectra.mel)
    beat = tempo(envelope)
    tonic, mode, key_confidence = key(key_chroma(clip.samples))
    lufs, loudness_range = loudness(clip.native, clip.native_rate_hz)
    centroid = brightness(spectra.power)
    onsets = onset_rate(envelope, clip.samples.size / SAMPLE_RATE_HZ)
    return Descriptors.of_key(
        key=tonic,
        mode=mode,
        keyConfidence=key_confidence,
        tempoBpm=beat.bpm,
        tempoConfidence=beat.confidence,
        loudnessLufs=lufs,
        dynamicRangeDb=loudness_range,
        energy=energy(lufs, onsets, centroid),
        brightness=centroid,
        onsetRate=onsets,
        percussiveness=percussiveness(spectra.mel),
        danceability=danceability(envelope, beat),
    )
