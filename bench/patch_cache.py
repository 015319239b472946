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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from catalog.descriptors import Descriptors

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
        import tensorflow as tf

        from extractor.constants import N_MELS, PATCH_FRAMES
        from extractor.model import MIDLEVEL, PENULTIMATE, TAGGRAM, build_model, load_weights, weights_dir

        self._tf = tf
        self.forwards = {}
        # The cache keeps its layer names: 'pooled' is the model's MIDLEVEL output.
        names = {"penultimate": PENULTIMATE, "taggram": TAGGRAM, "pooled": MIDLEVEL}
        for name, folder in (("msd", "MSD_musicnn"), ("mtt", "MTT_musicnn")):
            model = build_model(tuple(names.values()))
            load_weights(model, weights_dir().parent / folder)

            def forward(patches: Any, model: Any = model) -> dict[str, Any]:
                out = model(patches, training=False)
                return {layer: out[key] for layer, key in names.items()}

            self.forwards[name] = tf.function(
                forward,
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
    return cached_rows(paths, "mfcc", f"{N_MFCC}", mfcc_features, root)


def cached_rows(paths: Sequence[Path], name: str, recipe: str, compute: Callable[[bytes], NDArray[np.float32]],
                root: Path = ROOT) -> NDArray[np.float32]:
    """One row of ``compute(clip bytes)`` per clip, each cached as an .npy named by the clip, ``name`` and ``recipe``."""
    from tqdm import tqdm

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in tqdm(paths, desc=name, unit="clip", file=sys.stderr):
        data = Path(path).read_bytes()
        target = cache_path(data, name, recipe, root).with_suffix(".npy")
        if target.is_file():
            rows.append(np.load(target))
            continue
        row = compute(data)
        partial = target.with_name(target.stem + ".partial.npy")
        np.save(partial, row)
        partial.replace(target)
        rows.append(row)
    return np.stack(rows)


def descriptor_vector(data: bytes) -> NDArray[np.float32]:
    """The extractor's descriptors of a clip (its decode, spectra and describe) as :func:`descriptor_numbers`."""
    from extractor.audio import decode_clip
    from extractor.descriptors import describe
    from extractor.features import Spectra

    clip = decode_clip(data)
    return descriptor_numbers(describe(clip, Spectra.of(clip.samples)))


def descriptor_numbers(d: Descriptors) -> NDArray[np.float32]:
    """14 numbers for a small weighted part of a vector.

    Circular quantities go on circles: the tempo's octave-folded log (a detector's
    half- and double-time answers land on the same point) and the key's place on the
    circle of fifths (its Camelot number), each scaled by its confidence; the mode is
    ±confidence. The rest as they are, brightness on a log scale.
    """
    log_tempo = float(np.log2(max(d.tempoBpm, 1.0)))
    tempo_turn = 2 * np.pi * log_tempo
    fifths_turn = 2 * np.pi * (int(d.camelot[:-1]) - 1) / 12
    mode = d.keyConfidence * (1.0 if d.mode == "major" else -1.0)
    return np.array([
        d.tempoConfidence * np.cos(tempo_turn), d.tempoConfidence * np.sin(tempo_turn), log_tempo,
        d.keyConfidence * np.cos(fifths_turn), d.keyConfidence * np.sin(fifths_turn), mode,
        d.loudnessLufs, d.dynamicRangeDb, d.energy, np.log(max(d.brightness, 1.0)), d.onsetRate,
        d.percussiveness, d.danceability, d.tempoConfidence,
    ], dtype=np.float32)


def descriptors_all(paths: Sequence[Path], root: Path = ROOT) -> NDArray[np.float32]:
    """(n_clips, 14) descriptor vectors, cached next to the patches (a new descriptors recipe: bump the name)."""
    return cached_rows(paths, "descriptors", "v1", descriptor_vector, root)
