"""One clip → its embedding and its descriptors, sharing the spectrogram: what every caller runs.

The Lambda pipeline, ``python -m extractor`` and bench/extract.py all go through
:func:`analyse`, so the path measured is the path deployed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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
    check_samples(clip.samples)
    shared = Spectra.of(clip.samples)
    embedding = embedder.embed_patches(shared.patches())
    return Analysis(embedding=embedding, descriptors=describe(clip, shared))


def analyse_file(embedder: Callable[[], Embedder], path: str | os.PathLike[str]) -> Analysis:
    """Analyse an audio file; ``embedder`` is called only once the file decodes, so bad files build no model."""
    # Size first, so an oversize file is refused before it is read.
    check_size(os.path.getsize(path))
    clip = decode_clip(Path(path).read_bytes())
    return analyse(embedder(), clip)
