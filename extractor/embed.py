"""Clips to embeddings: MSD_musicnn's 1506 mid-level features, averaged over 3 s patches,
power-normalised (signed square root) and L2-normalised.

:class:`Embedder` builds the Keras model and loads the weights once; every
``embed_*`` method returns an :class:`Embedding` whose vector is L2-normalised
float32 (:func:`summarise_midlevel`) and whose tags are the clip's top MSD tags
with mean probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from catalog.model import MODEL_ID, configured_model_id
from catalog.records import l2_normalise
from extractor.audio import UnembeddableAudioError, check_samples, check_size, decode
from extractor.constants import EMBEDDING_DIM, MSD_TAGS, N_MELS, PATCH_FRAMES, PATCHES_PER_FORWARD, TOP_TAGS
from extractor.features import clip_patches
from extractor.model import MIDLEVEL, TAGGRAM, build_model, load_weights


@dataclass(frozen=True)
class Embedding:
    vector: NDArray[np.float32]
    tags: dict[str, float] = field(default_factory=dict)
    model: str = MODEL_ID

    def to_json(self) -> dict[str, object]:
        return {"model": self.model, "embedding": [float(v) for v in self.vector], "tags": self.tags}


def top_tags(probabilities: NDArray[np.float32], n: int = TOP_TAGS) -> dict[str, float]:
    """The n most probable MSD tags, most probable first."""
    order = np.argsort(-probabilities, kind="stable")[:n]
    return {MSD_TAGS[i]: float(probabilities[i]) for i in order}


def summarise_midlevel(per_patch: NDArray[np.float32]) -> NDArray[np.float32]:
    """The clip's embedding from its patches' mid-level features (n, 1506): their mean,
    signed square root, L2-normalised.

    The square root (power normalisation, Perronnin et al. 2010) damps the few features
    that dominate every clip, so cosine similarity follows the many that tell clips apart:
    on issue 19's dev set (bench/quality_arms.py's protocol) it scores same-source precision@10
    0.59 where the 200-d penultimate scored 0.44. It is fitted to nothing, so it needs no
    catalogue statistics.
    """
    mean = np.asarray(per_patch).mean(axis=0, dtype=np.float64)
    if not np.all(np.isfinite(mean)) or not np.any(mean):
        # Whatever got the audio this far, the model cannot place it: a property of the audio, not a retry.
        raise UnembeddableAudioError("the model gave no finite, non-zero embedding for this audio")
    if mean.shape != (EMBEDDING_DIM,):
        raise ValueError(f"embedding has {mean.shape} values, expected ({EMBEDDING_DIM},)")
    return l2_normalise(np.sign(mean) * np.sqrt(np.abs(mean)))


class Embedder:
    """MSD_musicnn on TensorFlow. Building it costs ≈ 0.4 s after the TF import: build once, reuse."""

    def __init__(
        self,
        weights: Path | None = None,
        patches_per_forward: int = PATCHES_PER_FORWARD,
        model_id: str | None = None,
    ) -> None:
        if patches_per_forward < 1:
            raise ValueError("patches_per_forward must be at least 1")
        self.patches_per_forward = patches_per_forward
        # The label every embedding carries; annoy_service indexes only this id (catalog.model).
        self.model_id = model_id or configured_model_id()
        # One forward pass gives both outputs: the tags' taggram and the embedding's mid-level features.
        self.model = build_model()
        load_weights(self.model, weights)
        # One traced graph for every batch size: no retracing per clip length.
        self._forward = tf.function(
            lambda patches: self.model(patches, training=False),
            input_signature=[tf.TensorSpec([None, PATCH_FRAMES, N_MELS], tf.float32)],
        )
        # Trace now: the first clip should not pay for it, and a cold start measured
        # around the constructor then covers everything.
        self._forward(tf.zeros((1, PATCH_FRAMES, N_MELS), tf.float32))

    def predict(self, patches: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(taggram (n, 50), mid-level features (n, 1506)) of log-mel patches (n, 187, 96), in bounded chunks."""
        patches = np.asarray(patches, dtype=np.float32)
        if patches.ndim != 3 or patches.shape[1:] != (PATCH_FRAMES, N_MELS) or patches.shape[0] == 0:
            raise ValueError(f"patches must have shape (n>0, {PATCH_FRAMES}, {N_MELS}), got {patches.shape}")
        taggrams, midlevels = [], []
        for start in range(0, patches.shape[0], self.patches_per_forward):
            out = self._forward(tf.constant(patches[start : start + self.patches_per_forward]))
            taggrams.append(out[TAGGRAM].numpy())
            midlevels.append(out[MIDLEVEL].numpy())
        return np.concatenate(taggrams), np.concatenate(midlevels)

    def _summarise(self, taggram: NDArray[np.float32], midlevel: NDArray[np.float32]) -> Embedding:
        return Embedding(vector=summarise_midlevel(midlevel), tags=top_tags(taggram.mean(axis=0)), model=self.model_id)

    def embed_patches(self, patches: NDArray[np.float32]) -> Embedding:
        return self._summarise(*self.predict(patches))

    def embed_samples(self, samples: NDArray[np.float32]) -> Embedding:
        """Embed 16 kHz mono samples (at least 3 s, not silent)."""
        check_samples(samples)
        return self.embed_patches(clip_patches(samples))

    def embed_bytes(self, data: bytes) -> Embedding:
        return self.embed_samples(decode(data))

    def embed_file(self, path: str | os.PathLike[str]) -> Embedding:
        # Size first, so an oversize file is refused before it is read.
        check_size(os.path.getsize(path))
        return self.embed_bytes(Path(path).read_bytes())

    def embed_many(self, clips: Sequence[NDArray[np.float32]]) -> list[Embedding | UnembeddableAudioError]:
        """Embed several clips of 16 kHz samples with their patches run through the model together."""
        for samples in clips:
            check_samples(samples)
        return self.embed_patches_many([clip_patches(samples) for samples in clips])

    def embed_patches_many(self, per_clip: Sequence[NDArray[np.float32]]) -> list[Embedding | UnembeddableAudioError]:
        """One embedding per clip's patches, from one pass of all of them through the model."""
        return list(self.embed_patches_iter(per_clip))

    def embed_patches_iter(self, per_clip: Sequence[NDArray[np.float32]]) -> Iterator[Embedding | UnembeddableAudioError]:
        """:meth:`embed_patches_many`, each clip's embedding yielded as soon as the chunks holding
        its patches are through the model, so that a caller can store one clip while the next runs. A clip
        the model cannot place gets its UnembeddableAudioError instead, so the others still stand.

        The chunks are :meth:`predict`'s: all clips' patches together, ``patches_per_forward`` at a time.
        """
        if not per_clip:
            return
        patches = np.concatenate(per_clip)
        bounds = np.cumsum([0] + [p.shape[0] for p in per_clip])
        taggrams: list[NDArray[np.float32]] = []
        midlevels: list[NDArray[np.float32]] = []
        done, clip = 0, 0
        for start in range(0, patches.shape[0], self.patches_per_forward):
            taggram, midlevel = self.predict(patches[start : start + self.patches_per_forward])
            taggrams.append(taggram)
            midlevels.append(midlevel)
            done += taggram.shape[0]
            if bounds[clip + 1] > done:
                continue
            taggram_so_far, midlevel_so_far = np.concatenate(taggrams), np.concatenate(midlevels)
            offset = done - taggram_so_far.shape[0]
            while clip + 1 < len(bounds) and bounds[clip + 1] <= done:
                a, b = bounds[clip] - offset, bounds[clip + 1] - offset
                yield self._summarise_or_error(taggram_so_far[a:b], midlevel_so_far[a:b])
                clip += 1
            # Keep only the patches of clips not yet summarised.
            keep = bounds[clip] - offset
            taggrams, midlevels = [taggram_so_far[keep:]], [midlevel_so_far[keep:]]

    def _summarise_or_error(self, taggram: NDArray[np.float32], midlevel: NDArray[np.float32]) -> Embedding | UnembeddableAudioError:
        try:
            return self._summarise(taggram, midlevel)
        except UnembeddableAudioError as exc:
            return exc
