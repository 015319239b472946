"""One clip → its embedding and its descriptors, sharing the spectrogram: what every caller runs.

The Lambda pipeline (:func:`analyse_many`, one model call per SQS batch), ``python -m
extractor`` and bench/extract.py all go through here, so the path measured is the path deployed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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
    analysis = analyse_many(embedder, [clip])[0]
    if isinstance(analysis, UnembeddableAudioError):
        raise analysis
    return analysis


def analyse_many(embedder: Embedder, clips: Sequence[DecodedClip]) -> list[Analysis | UnembeddableAudioError]:
    """Embed and describe decoded clips, their patches run through the model in one call
    (the extractor's SQS batch); each clip's spectrogram serves its patches and its descriptors.

    A clip the model cannot place gets its UnembeddableAudioError in its place, so that
    one bad clip settles alone and the rest of the batch goes on.
    """
    for clip in clips:
        check_samples(clip.samples)
    shared = [Spectra.of(clip.samples) for clip in clips]
    embeddings = embedder.embed_patches_many([spectra.patches() for spectra in shared])
    return [
        embedding if isinstance(embedding, UnembeddableAudioError)
        else Analysis(embedding=embedding, descriptors=describe(clip, spectra))
        for clip, spectra, embedding in zip(clips, shared, embeddings, strict=True)
    ]


def analyse_file(embedder: Callable[[], Embedder], path: str | os.PathLike[str]) -> Analysis:
    """Analyse an audio file; ``embedder`` is called only once the file decodes, so bad files build no model."""
    # Size first, so an oversize file is refused before it is read.
    check_size(os.path.getsize(path))
    clip = decode_clip(Path(path).read_bytes())
    return analyse(embedder(), clip)
