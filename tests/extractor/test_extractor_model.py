"""The Keras MSD_musicnn against the wheel's original graph, and what its embedding is good for."""

from __future__ import annotations

import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
from extractor_synth import RATE_HZ, distorted_riff, drum_groove, encode, string_pad

from catalog.model import MODEL_ID
from extractor.constants import EMBEDDING_DIM, MSD_TAGS, PENULTIMATE_UNITS, SAMPLE_RATE_HZ, TOP_TAGS
from extractor.features import clip_patches
from extractor.model import CHECKPOINT_FILES, WeightsError, build_model, checkpoint_prefix, load_weights, weights_dir

pytestmark = pytest.mark.model

GENERATORS = {"drums": drum_groove, "pad": string_pad, "riff": distorted_riff}


def at_16k(samples: np.ndarray) -> np.ndarray:
    return librosa.resample(samples, orig_sr=RATE_HZ, target_sr=SAMPLE_RATE_HZ, res_type="soxr_hq")


@pytest.fixture(scope="module")
def pieces() -> dict[str, np.ndarray]:
    """20 s of each kind of material at 16 kHz."""
    return {name: at_16k(make(20.0, seed=11)) for name, make in GENERATORS.items()}


def test_taggram_mid_level_features_and_penultimate_match_the_original_graph(embedder, pieces) -> None:
    from extractor.embed import summarise_midlevel
    from extractor.model import MIDLEVEL, PENULTIMATE, TAGGRAM
    from extractor.original import OriginalGraph

    # Music of three kinds, plus the loud riff whose frames overflowed the package's float16 front end.
    per_piece = [clip_patches(samples[: 6 * SAMPLE_RATE_HZ]) for samples in pieces.values()]
    patches = np.concatenate(per_piece)
    original = OriginalGraph()
    try:
        want_taggram, want_midlevel, want_penultimate = original.run(patches, (TAGGRAM, MIDLEVEL, PENULTIMATE))
    finally:
        original.close()
    # The served forward pass gives the taggram and the mid-level features; the penultimate,
    # which the taggram is computed from, comes from the same network built with that output.
    full = build_model((TAGGRAM, PENULTIMATE))
    load_weights(full)
    penultimate = full(patches, training=False)[PENULTIMATE].numpy()

    taggram, midlevel = embedder.predict(patches)

    assert taggram.shape == want_taggram.shape == (patches.shape[0], len(MSD_TAGS))
    assert midlevel.shape == want_midlevel.shape == (patches.shape[0], EMBEDDING_DIM)
    assert penultimate.shape == want_penultimate.shape == (patches.shape[0], PENULTIMATE_UNITS)
    np.testing.assert_allclose(taggram, want_taggram, rtol=0, atol=1e-5)
    # Mid-level features reach 100 and more: float32 differences scale with them.
    np.testing.assert_allclose(midlevel, want_midlevel, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(penultimate, want_penultimate, rtol=0, atol=1e-4)
    # The served vectors, whose square root magnifies small differences, agree too.
    bounds = np.cumsum([0] + [p.shape[0] for p in per_piece])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        np.testing.assert_allclose(summarise_midlevel(midlevel[a:b]), summarise_midlevel(want_midlevel[a:b]), rtol=0, atol=1e-5)
    # Not a trivial match: patches differ from each other (the package's bug repeated the first).
    assert np.abs(penultimate[1:] - penultimate[:1]).max() > 0.1
    assert np.abs(midlevel[1:] - midlevel[:1]).max() > 1.0


def test_embedding_tells_different_music_apart(embedder, pieces) -> None:
    # Two 8 s excerpts of each piece: same instruments and style, different notes.
    excerpts = {
        name: [
            embedder.embed_samples(samples[: 8 * SAMPLE_RATE_HZ]).vector,
            embedder.embed_samples(samples[10 * SAMPLE_RATE_HZ : 18 * SAMPLE_RATE_HZ]).vector,
        ]
        for name, samples in pieces.items()
    }
    vectors = np.stack([vector for pair in excerpts.values() for vector in pair])
    piece = np.repeat(np.arange(len(excerpts)), 2)
    distance = 1 - vectors @ vectors.T
    same_piece = (piece[:, None] == piece[None, :]) & ~np.eye(len(piece), dtype=bool)
    different_piece = piece[:, None] != piece[None, :]

    # Each excerpt's nearest other excerpt is the other excerpt of its piece, and the
    # cosine distance between kinds is at least 3 times that between excerpts of one piece.
    np.fill_diagonal(distance, np.inf)
    assert (piece[distance.argmin(axis=1)] == piece).all(), distance
    worst_same, closest_different = distance[same_piece].max(), distance[different_piece].min()
    assert worst_same < 0.15, distance
    assert closest_different > 3 * worst_same, distance


def test_embedding_is_a_unit_float32_vector_with_the_top_tags(embedder, pieces) -> None:
    result = embedder.embed_samples(pieces["drums"])

    assert result.model == MODEL_ID
    assert result.vector.dtype == np.float32 and result.vector.shape == (EMBEDDING_DIM,)
    assert abs(float(np.linalg.norm(result.vector)) - 1.0) < 1e-6
    assert len(result.tags) == TOP_TAGS and set(result.tags) <= set(MSD_TAGS)
    probabilities = list(result.tags.values())
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 < p < 1.0 for p in probabilities)
    # Tags say something: a dance beat is more 'electronic' than 'acoustic'.
    taggram, _ = embedder.predict(clip_patches(pieces["drums"]))
    mean = taggram.mean(axis=0)
    assert mean[MSD_TAGS.index("electronic")] > mean[MSD_TAGS.index("acoustic")]


def test_embed_bytes_decodes_then_embeds_the_same_as_samples(embedder) -> None:
    from extractor.audio import decode

    data = encode(string_pad(5.0, seed=4), "flac")
    np.testing.assert_allclose(
        embedder.embed_bytes(data).vector, embedder.embed_samples(decode(data)).vector, atol=1e-7
    )


def test_batched_clips_embed_as_they_do_one_at_a_time(embedder, pieces) -> None:
    clips = [pieces["drums"][: 7 * SAMPLE_RATE_HZ], pieces["pad"], pieces["riff"][: 4 * SAMPLE_RATE_HZ]]

    together = embedder.embed_many(clips)

    assert len(together) == len(clips)
    for clip, batched in zip(clips, together, strict=True):
        alone = embedder.embed_samples(clip)
        np.testing.assert_allclose(batched.vector, alone.vector, atol=1e-5)
        assert list(batched.tags) == list(alone.tags)


def test_each_clip_of_a_batch_is_handed_over_as_soon_as_its_chunks_are_through(embedder, pieces, monkeypatch) -> None:
    # Chunks of 3 patches over clips of 2, 4 and 1 patches: clip 0 is complete after chunk 1,
    # clip 1 after chunk 2 and clip 2 with it.
    per_clip = [clip_patches(pieces[name])[:count] for name, count in (("drums", 2), ("pad", 4), ("riff", 1))]
    monkeypatch.setattr(embedder, "patches_per_forward", 3)
    forwards: list[int] = []
    real_predict = embedder.predict

    def predict(patches):
        forwards.append(patches.shape[0])
        return real_predict(patches)

    monkeypatch.setattr(embedder, "predict", predict)
    handed_over = [(len(forwards), embedding) for embedding in embedder.embed_patches_iter(per_clip)]

    assert forwards == [3, 3, 1]
    assert [after for after, _ in handed_over] == [1, 2, 3]
    for patches, (_, streamed) in zip(per_clip, handed_over, strict=True):
        alone = embedder.embed_patches(patches)
        np.testing.assert_allclose(streamed.vector, alone.vector, atol=1e-5)
        assert list(streamed.tags) == list(alone.tags)


def test_long_input_runs_in_bounded_chunks_with_the_same_result(embedder, pieces) -> None:
    from extractor.embed import Embedder

    small_chunks = Embedder(patches_per_forward=2)
    patches = clip_patches(pieces["riff"])
    assert patches.shape[0] > 2

    # The mid-level features reach 100 and more: float32 differences between chunkings scale with them.
    np.testing.assert_allclose(small_chunks.predict(patches)[1], embedder.predict(patches)[1], rtol=1e-5, atol=1e-5)


def test_weights_come_from_the_installed_wheel_with_their_empty_basenames() -> None:
    folder = weights_dir()
    assert folder.name == "MSD_musicnn"
    assert all((folder / name).is_file() for name in CHECKPOINT_FILES)
    assert checkpoint_prefix(folder).endswith("/MSD_musicnn/")


def test_a_checkpoint_that_lost_its_dotfiles_fails_loudly(tmp_path: Path) -> None:
    # What a copy tool that skips dotfiles leaves behind.
    for path in weights_dir().iterdir():
        if not path.name.startswith("."):
            shutil.copy(path, tmp_path / path.name)
    with pytest.raises(WeightsError, match=r"\.index"):
        load_weights(build_model(), tmp_path)
