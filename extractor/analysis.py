"""One clip → its embedding and its descriptors, sharing the spectrogram: what every caller runs.

The Lambda pipeline (:func:`embed_stream`, one model pass per SQS batch), ``python -m
extractor`` and bench/extract.py all go through here, so the path measured is the path deployed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.descriptors import Descriptors
from extractor.audio import DecodedClip, UnembeddableAudioError, check_samples, check_size, decode_clip
from extractor.descriptors import describe
from extractor.embed import Embedder, Embedding
from extractor.features import Spectra


@dataclass(frozen=True)
class Analysis:
    embedding: Embedding
    descriptors: Descriptors

    def to_json(self) -> dict[str, Any]:
        return {**self.embedding.to_json(), "descriptors": self.descriptors.to_json()}


def analyse(embedder: Embedder, clip: DecodedClip) -> Analysis:
    """Embed and describe a decoded clip (at least 3 s, not silent).

    Raises UnembeddableAudioError when the model gives no finite, non-zero embedding of it.
    """
    return analyse_many(embedder, [clip])[0]


@dataclass(frozen=True)
class Embedded:
    """A clip through the model; its descriptors come from the same spectrogram, when :meth:`analysis` is asked.

    ``embedding`` is an UnembeddableAudioError when the model gave no finite, non-zero embedding of
    the clip: one bad clip settles alone and the rest of the batch goes on.
    """

    clip: DecodedClip
    spectra: Spectra
    embedding: Embedding | UnembeddableAudioError

    def analysis(self) -> Analysis:
        """Raises the clip's UnembeddableAudioError when the model could not place it."""
        if isinstance(self.embedding, UnembeddableAudioError):
            raise self.embedding
        return Analysis(embedding=self.embedding, descriptors=describe(self.clip, self.spectra))


def embed_stream(embedder: Embedder, clips: Sequence[DecodedClip]) -> Iterator[Embedded]:
    """Decoded clips through the model in one pass, their patches together (the extractor's SQS batch),
    each yielded as soon as the model is through with it, so that it can be described and stored
    while the model runs the next."""
    for clip in clips:
        check_samples(clip.samples)
    shared = [Spectra.of(clip.samples) for clip in clips]
    embeddings = embedder.embed_patches_iter([spectra.patches() for spectra in shared])
    for clip, spectra, embedding in zip(clips, shared, embeddings, strict=True):
        yield Embedded(clip, spectra, embedding)


def analyse_many(embedder: Embedder, clips: Sequence[DecodedClip]) -> list[Analysis]:
    """Embed and describe decoded clips in one pass of the model; each clip's spectrogram serves
    its patches and its descriptors. Raises UnembeddableAudioError for a clip the model cannot place."""
    return [embedded.analysis() for embedded in embed_stream(embedder, clips)]


def analyse_file(embedder: Callable[[], Embedder], path: str | os.PathLike[str]) -> Analysis:
    """Analyse an audio file; ``embedder`` is called only once the file decodes, so bad files build no model."""
    # Size first, so an oversize file is refused before it is read.
    check_size(os.path.getsize(path))
    clip = decode_clip(Path(path).read_bytes())
    return analyse(embedder(), clip)
