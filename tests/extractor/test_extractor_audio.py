"""Decoding and the log-mel front end (no TensorFlow)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from extractor_synth import RATE_HZ, distorted_riff, encode, sine, stereo

from extractor.audio import (
    EmptyAudioError,
    OversizeAudioError,
    SilentAudioError,
    TooShortAudioError,
    UndecodableAudioError,
    decode,
)
from extractor.constants import HOP_LENGTH, MAX_AUDIO_BYTES, N_MELS, PATCH_FRAMES, SAMPLE_RATE_HZ
from extractor.features import clip_patches, log_mel, patches


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_every_supported_format_decodes_to_16khz_mono_float32(fmt: str) -> None:
    data = encode(stereo(sine(4.0, 440.0)), fmt)

    samples = decode(data)

    assert samples.dtype == np.float32 and samples.ndim == 1
    # mp3 adds encoder delay and padding: a few ms either way.
    assert abs(samples.size / SAMPLE_RATE_HZ - 4.0) < 0.1
    assert abs(dominant_hz(samples, SAMPLE_RATE_HZ) - 440.0) < 2.0


def test_an_mp3_with_id3_tags_and_cover_art_decodes(tmp_path) -> None:
    from mutagen.id3 import APIC, ID3, TIT2

    path = tmp_path / "preview.mp3"
    path.write_bytes(encode(stereo(sine(4.0, 440.0)), "mp3"))
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Preview"))
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=b"\xff\xd8" + bytes(50_000)))
    tags.save(path)

    samples = decode(path.read_bytes())

    assert abs(dominant_hz(samples, SAMPLE_RATE_HZ) - 440.0) < 2.0


def test_stereo_is_mixed_down_by_averaging_channels() -> None:
    left = sine(4.0, 440.0, rate=SAMPLE_RATE_HZ, amplitude=0.4)
    both = np.stack([left, np.zeros_like(left)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, both, SAMPLE_RATE_HZ, format="WAV", subtype="FLOAT")

    samples = decode(buffer.getvalue())

    np.testing.assert_allclose(samples, left / 2, atol=1e-6)


def test_empty_bytes_are_empty_audio() -> None:
    with pytest.raises(EmptyAudioError, match="empty"):
        decode(b"")


def test_a_valid_file_without_samples_is_empty_audio() -> None:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((0, 2), dtype=np.float32), RATE_HZ, format="WAV")
    with pytest.raises(EmptyAudioError, match="no samples"):
        decode(buffer.getvalue())


def test_bytes_that_are_not_audio_are_undecodable() -> None:
    with pytest.raises(UndecodableAudioError, match="cannot decode"):
        decode(b"<html><body>404 preview not found</body></html>" * 20)


def test_silence_is_refused() -> None:
    with pytest.raises(SilentAudioError, match="silent"):
        decode(encode(np.zeros(RATE_HZ * 5, dtype=np.float32), "flac"))


def test_clips_shorter_than_3_seconds_are_refused() -> None:
    with pytest.raises(TooShortAudioError, match="shorter than the 3 s minimum"):
        decode(encode(sine(2.5, 440.0), "wav"))


def test_oversize_audio_is_refused_before_decoding() -> None:
    # Valid audio, just too big: the size check must come before any decoding.
    header = encode(sine(4.0, 440.0), "wav")
    data = header + bytes(MAX_AUDIO_BYTES + 1 - len(header))
    with pytest.raises(OversizeAudioError, match="limit"):
        decode(data)


def test_log_mel_of_loud_music_stays_finite_where_float16_overflowed() -> None:
    samples = decode(encode(distorted_riff(6.0, seed=3), "wav"))

    mel = log_mel(samples)

    assert mel.dtype == np.float32 and mel.shape[1] == N_MELS
    assert np.all(np.isfinite(mel))
    # 10000 · power beyond float16's maximum (65504): the original front end saturated to inf here.
    assert mel.max() > np.log10(np.finfo(np.float16).max)


def test_log_mel_puts_a_tone_in_its_mel_band() -> None:
    low = log_mel(sine(4.0, 200.0, rate=SAMPLE_RATE_HZ)).mean(axis=0)
    high = log_mel(sine(4.0, 4000.0, rate=SAMPLE_RATE_HZ)).mean(axis=0)
    assert np.argmax(low) < np.argmax(high)
    assert np.argmax(high) > N_MELS // 2


def test_a_30_second_clip_gives_ten_3_second_patches() -> None:
    samples = sine(30.0, 440.0, rate=SAMPLE_RATE_HZ)
    result = clip_patches(samples)
    assert result.shape == (10, PATCH_FRAMES, N_MELS)
    # Patches are consecutive, without overlap.
    mel = log_mel(samples)
    np.testing.assert_array_equal(result[1], mel[PATCH_FRAMES : 2 * PATCH_FRAMES])


def test_the_shortest_accepted_clip_gives_one_patch() -> None:
    samples = sine(3.0, 440.0, rate=SAMPLE_RATE_HZ)
    assert log_mel(samples).shape[0] == 1 + samples.size // HOP_LENGTH
    assert clip_patches(samples).shape == (1, PATCH_FRAMES, N_MELS)


def test_fewer_frames_than_a_patch_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 187 frames"):
        patches(np.zeros((PATCH_FRAMES - 1, N_MELS), dtype=np.float32))
