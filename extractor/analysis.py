"""One clip → its embedding and its descriptors, sharing the spectrogram: what every caller runs.

The Lambda pipeline (:func:`embed_stream`, one model pass per SQS batch), ``python -m
extractor`` and bench/extract.py all go through here, so the path measured is the path deployed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.descriptors import Descriptors
from extractor.audio import DecodedClip, check_samples, check_size, decode_clip
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
    """Embed and describe a decoded clip (at least 3 s, not silent)."""
    return analyse_many(embedder, [clip])[0]


@dataclass(frozen=True)
class Embedded:
    """A clip through the model; its descriptors come from the same spectrogram, when :meth:`analysis` is asked."""

    clip: DecodedClip
    spectra: Spectra
    embedding: Embedding

    def analysis(self) -> Analysis:
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
    its patches and its descriptors."""
    return [embedded.analysis() for embedded in embed_stream(embedder, clips)]


def analyse_bytes(embedder: Embedder, data: bytes) -> Analysis:
    return analyse(embedder, decode_clip(data))


def analyse_file(embedder: Embedder, path: str | os.PathLike[str]) -> Analysis:
    # Size first, so an oversize file is refused before it is read.
    check_size(os.path.getsize(path))
    return analyse_bytes(embedder, Path(path).read_bytes())
