"""Per-patch musicnn outputs of audio clips, computed once and cached, so pooling variants need no re-run.

For every clip, the checkpoints the musicnn wheel ships with the same
architecture (MSD_musicnn, the served model, and MTT_musicnn: same 64 variables
with the same shapes, 50 MagnaTagATune tags instead of MSD's) can be run on two
patch grids of the same log-mel spectrogram:

- ``hop187``: the extractor's grid, 187-frame (≈ 3 s) patches without overlap;
- ``mid93``: the same patches shifted by 93 frames (≈ 1.49 s). Together the two
  grids are the half-overlapping grid (hop 93 or 94 frames, ≤ 1.5 s), at the cost
  of the 9 extra patches only.

Per patch three layers are kept: ``penultimate`` (200), ``taggram`` (50) and
``pooled`` (1506, the mid-end's max and mean over time before the back-end's
batch norm: the mid-level features). Audio is decoded by the extractor's own
``decode`` (16 kHz mono, soxr), as in production.

The cache is one ``.npz`` per clip, model and grid under ``.local/patch-cache/``,
named by the SHA-256 of the clip's bytes and :data:`CACHE_FORMAT`, so a changed
clip or a changed recipe is recomputed and nothing else is, and each (model,
grid) can be filled in its own pass.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1] / ".local" / "patch-cache"
MODELS = ("msd", "mtt")
GRIDS = {"hop187": 0, "mid93": 93}  # grid -> first patch's start frame; patches every 187 frames
LAYERS = ("penultimate", "taggram", "pooled")
CACHE_FORMAT = 2

Patches = dict[str, NDArray[np.float32]]  # layer -> (n_patches, width)


def cache_path(data: bytes, model: str, grid: str, root: Path = ROOT) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return root / f"{digest[:32]}-{model}-{grid}-v{CACHE_FORMAT}.npz"


class PatchRunner:
    """Both checkpoints with an extra ``pooled`` output; loads TensorFlow on construction."""

    def __init__(self) -> None:
        import keras
        import tensorflow as tf
        from keras import layers

        from extractor.constants import N_MELS, PATCH_FRAMES
        from extractor.model import PENULTIMATE, TAGGRAM, build_model, load_weights, weights_dir

        self._tf = tf
        self.forwards = {}
        for name, folder in (("msd", "MSD_musicnn"), ("mtt", "MTT_musicnn")):
            model = build_model()
            load_weights(model, weights_dir().parent / folder)
            flatten = next(layer for layer in model.layers if isinstance(layer, layers.Flatten))
            probe = keras.Model(
                model.input, {"penultimate": model.output[PENULTIMATE], "taggram": model.output[TAGGRAM],
                              "pooled": flatten.output}
            )  # fmt: skip
            self.forwards[name] = tf.function(
                lambda patches, probe=probe: probe(patches, training=False),
                input_signature=[tf.TensorSpec([None, PATCH_FRAMES, N_MELS], tf.float32)],
            )

    def run(self, data: bytes, model: str, grid: str) -> Patches:
        from extractor.audio import decode
        from extractor.constants import PATCH_FRAMES, PATCHES_PER_FORWARD
        from extractor.features import log_mel

        mel = log_mel(decode(data))
        starts = range(GRIDS[grid], mel.shape[0] - PATCH_FRAMES + 1, PATCH_FRAMES)
        patches = np.stack([mel[s : s + PATCH_FRAMES] for s in starts]).astype(np.float32)
        parts: dict[str, list[NDArray[np.float32]]] = {layer: [] for layer in LAYERS}
        for a in range(0, len(patches), PATCHES_PER_FORWARD):
            result = self.forwards[model](self._tf.constant(patches[a : a + PATCHES_PER_FORWARD]))
            for layer in LAYERS:
                parts[layer].append(result[layer].numpy())
        return {layer: np.concatenate(parts[layer]).astype(np.float32) for layer in LAYERS}


def load_all(paths: Sequence[Path], model: str = "msd", grid: str = "hop187", root: Path = ROOT) -> list[Patches]:
    """Per-patch outputs of every clip for one (model, grid), computing (and caching) only the ones missing."""
    from tqdm import tqdm

    root.mkdir(parents=True, exist_ok=True)
    runner: PatchRunner | None = None
    result = []
    for path in tqdm(paths, desc=f"{model}/{grid}", unit="clip", file=sys.stderr):
        data = Path(path).read_bytes()
        target = cache_path(data, model, grid, root)
        if target.is_file():
            with np.load(target) as cached:
                result.append({key: cached[key] for key in cached.files})
            continue
        runner = runner or PatchRunner()
        patches = runner.run(data, model, grid)
        # Written under a temporary name and renamed: a crash leaves no half file.
        partial = target.with_name(target.stem + ".partial.npz")
        np.savez(partial, **patches)
        partial.replace(target)
        result.append(patches)
    return result


def cached(paths: Sequence[Path], model: str, grid: str, root: Path = ROOT) -> bool:
    """Whether every clip's (model, grid) outputs are already in the cache."""
    return all(cache_path(Path(p).read_bytes(), model, grid, root).is_file() for p in paths)


MFCC_SAMPLE_RATE_HZ = 22_050
N_MFCC = 20


def mfcc_features(data: bytes) -> NDArray[np.float32]:
    """The classic baseline: 20 MFCCs (librosa defaults, 22.05 kHz), their means and deviations (40 values)."""
    import io

    import librosa

    samples, rate = librosa.load(io.BytesIO(data), sr=MFCC_SAMPLE_RATE_HZ, mono=True)
    mfcc = librosa.feature.mfcc(y=samples, sr=rate, n_mfcc=N_MFCC)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float32)


def mfcc_all(paths: Sequence[Path], root: Path = ROOT) -> NDArray[np.float32]:
    """(n_clips, 40) MFCC summaries, cached next to the patches."""
    from tqdm import tqdm

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in tqdm(paths, desc="mfcc", unit="clip", file=sys.stderr):
        data = Path(path).read_bytes()
        target = cache_path(data, "mfcc", f"{N_MFCC}", root).with_suffix(".npy")
        if target.is_file():
            rows.append(np.load(target))
            continue
        row = mfcc_features(data)
        partial = target.with_name(target.stem + ".partial.npy")
        np.save(partial, row)
        partial.replace(target)
        rows.append(row)
    return np.stack(rows)
