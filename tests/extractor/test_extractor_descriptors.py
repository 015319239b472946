"""Descriptors pinned on generated clips whose tempo, key and level are known (no model needed)."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
from extractor_synth import encode, sine, string_pad

from catalog.descriptors import Mode
from demo.labelled import RATE_HZ, drum_loop, render, song, with_gain
from extractor import descriptors
from extractor.audio import decode_clip
from extractor.features import Spectra

SECONDS = 12.0
TEMPO_TOLERANCE = 0.04  # MIREX's 4 %


def describe_mp3(audio: np.ndarray) -> descriptors.Descriptors:
    clip = decode_clip(encode(audio, "mp3"))
    return descriptors.describe(clip, Spectra.of(clip.samples))


@pytest.fixture(scope="module")
def a_minor_song() -> np.ndarray:
    return render(song(100.0, tonic=9, minor=True, seconds=SECONDS, seed=3, drums=True), SECONDS)


@pytest.fixture(scope="module")
def e_flat_major_song() -> np.ndarray:
    return render(song(150.0, tonic=3, minor=False, seconds=SECONDS, seed=4, drums=False), SECONDS)


@pytest.fixture(scope="module")
def drums_at_72() -> np.ndarray:
    return render(drum_loop(72.0, SECONDS), SECONDS)


def test_a_song_in_a_minor_at_100_bpm(a_minor_song: np.ndarray) -> None:
    d = describe_mp3(a_minor_song)
    assert abs(d.tempoBpm / 100.0 - 1) <= TEMPO_TOLERANCE
    assert (d.key, d.mode, d.keyName, d.camelot) == (9, Mode.MINOR, "A", "8A")
    assert 0 < d.keyConfidence <= 1 and 0 < d.tempoConfidence <= 1


def test_a_song_in_e_flat_major_at_150_bpm_without_drums(e_flat_major_song: np.ndarray) -> None:
    d = describe_mp3(e_flat_major_song)
    assert abs(d.tempoBpm / 150.0 - 1) <= TEMPO_TOLERANCE
    assert (d.key, d.mode, d.camelot) == (3, Mode.MAJOR, "5B")


def test_a_drum_loop_is_percussive_with_its_tempo_and_the_pad_is_not(drums_at_72: np.ndarray) -> None:
    drums = describe_mp3(drums_at_72)
    pad = describe_mp3(np.asarray(string_pad(SECONDS, seed=1)))
    assert abs(drums.tempoBpm / 72.0 - 1) <= TEMPO_TOLERANCE
    assert drums.percussiveness > 0.8 > 0.2 > pad.percussiveness
    assert drums.danceability > pad.danceability and drums.onsetRate > pad.onsetRate
    assert 0 <= pad.energy <= 1 and 0 <= drums.energy <= 1


def test_loudness_is_the_sources_bs1770_loudness_and_follows_a_gain(a_minor_song: np.ndarray) -> None:
    reference = pyloudnorm.Meter(RATE_HZ).integrated_loudness(a_minor_song.astype(np.float64))
    for gain_db in (0.0, -12.0):
        d = describe_mp3(with_gain(a_minor_song, gain_db))
        assert abs(d.loudnessLufs - (reference + gain_db)) <= 0.3
    quieter = describe_mp3(with_gain(a_minor_song, -12.0))
    # Level changes move loudness only: tempo, key and brightness stay.
    loud = describe_mp3(a_minor_song)
    assert (quieter.key, quieter.mode) == (loud.key, loud.mode)
    assert abs(quieter.tempoBpm - loud.tempoBpm) <= 0.04 * loud.tempoBpm
    assert abs(quieter.brightness - loud.brightness) <= 0.02 * loud.brightness


def test_block_loudness_gating_matches_pyloudnorms_meter(a_minor_song: np.ndarray) -> None:
    for audio, rate in ((a_minor_song, RATE_HZ), (a_minor_song[:, :1], RATE_HZ), (a_minor_song[::2], RATE_HZ // 2)):
        ours, _ = descriptors.loudness(np.ascontiguousarray(audio), rate)
        theirs = pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64))
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_a_full_scale_997_hz_sine_in_one_channel_reads_minus_3_lufs() -> None:
    # BS.1770-4's calibration: 0 dBFS at 997 Hz in the left (or a mono) channel reads -3.01 LKFS.
    tone = (np.sin(2 * np.pi * 997 * np.arange(48_000 * 5) / 48_000)).astype(np.float32)
    left_only, _ = descriptors.loudness(np.stack([tone, np.zeros_like(tone)], axis=1), 48_000)
    both, _ = descriptors.loudness(np.stack([tone, tone], axis=1), 48_000)
    assert left_only == pytest.approx(-3.01, abs=0.05)
    # Channels add their powers: the same tone in both channels is 3 dB louder.
    assert both - left_only == pytest.approx(10 * np.log10(2), abs=0.01)


def test_loudness_is_measured_on_the_decoded_channels_not_the_mono_mix() -> None:
    tone = np.asarray(sine(5.0, 440.0), dtype=np.float32) * np.float32(0.5)
    mono = decode_clip(encode(tone, "wav"))
    dual = decode_clip(encode(np.stack([tone, tone], axis=1), "wav"))
    assert mono.native.shape[1] == 1 and dual.native.shape[1] == 2
    assert np.allclose(mono.samples, dual.samples, atol=1e-4)
    gap = descriptors.loudness(dual.native, dual.native_rate_hz)[0] - descriptors.loudness(mono.native, mono.native_rate_hz)[0]
    assert gap == pytest.approx(3.01, abs=0.05)


def test_dynamic_range_is_wide_for_a_clip_that_gets_quiet_and_narrow_for_a_steady_one() -> None:
    tone = np.asarray(sine(10.0, 440.0), dtype=np.float32)[:, np.newaxis] * np.float32(0.5)
    steady = descriptors.loudness(tone, RATE_HZ)[1]
    stepped = tone.copy()
    stepped[stepped.shape[0] // 2 :] *= np.float32(10 ** (-12 / 20))
    assert steady < 0.5
    assert descriptors.loudness(stepped, RATE_HZ)[1] == pytest.approx(12.0, abs=0.5)


def test_a_clip_below_the_absolute_gate_reports_the_gate() -> None:
    quiet = np.full((RATE_HZ * 4, 1), 1e-5, dtype=np.float32)
    assert descriptors.loudness(quiet, RATE_HZ) == (-70.0, 0.0)
