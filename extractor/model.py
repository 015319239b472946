"""MSD_musicnn's forward pass in Keras 3, with the weights read from the musicnn wheel.

The musicnn package itself is never imported: its code needs legacy Keras under
TF 2.x. Only its checkpoint files are used. Layer names are the checkpoint's
variable scopes, so loading is a name-for-name copy that fails loudly on any gap.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from extractor.constants import (
    BATCH_NORM_EPSILON,
    MIDEND_FILTERS,
    MIDEND_KERNEL_FRAMES,
    N_MELS,
    N_TAGS,
    PATCH_FRAMES,
    PENULTIMATE_UNITS,
    TEMPORAL_FILTERS,
    TEMPORAL_KERNEL_FRAMES,
    TIMBRAL_FILTERS,
    TIMBRAL_KERNEL_FRAMES,
    TIMBRAL_KERNEL_MELS,
    WEIGHTS_FOLDER,
    WEIGHTS_PACKAGE,
)

# The checkpoint's files have empty basenames: the prefix is the folder itself.
CHECKPOINT_FILES = (".index", ".data-00000-of-00001")
META_GRAPH_FILE = ".meta"
TAGGRAM = "taggram"
# The back-end's input before its batch norm: the mid-level features the embedding is made of.
MIDLEVEL = "midlevel"
PENULTIMATE = "penultimate"
# What the extractor serves from; the penultimate is there for the parity test and the benchmark.
SERVED_OUTPUTS = (TAGGRAM, MIDLEVEL)


class WeightsError(RuntimeError):
    """The MSD_musicnn checkpoint is missing or does not fit the model."""


def weights_dir() -> Path:
    """The MSD_musicnn checkpoint folder inside the installed musicnn package (not imported)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"package {WEIGHTS_PACKAGE!r} is not installed; install its weights with "
            f"pip install --no-deps -r extractor/requirements-nodeps.txt"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FOLDER


def checkpoint_prefix(folder: Path) -> str:
    """The reader's prefix for ``folder``, after checking that the checkpoint files are there."""
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise WeightsError(
            f"checkpoint files {missing} are missing from {folder} (files named only by an "
            f"extension are skipped by some copy tools)"
        )
    # The 'checkpoint' file points to the author's home directory, so the
    # prefix is given directly: the folder with a trailing slash.
    return str(folder) + "/"


def _batch_norm(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=name)


def build_model(outputs: Sequence[str] = SERVED_OUTPUTS) -> keras.Model:
    """MSD_musicnn (inference mode): log-mel patches → a dict of the named ``outputs`` among
    taggram (n, 50), midlevel (n, 1506) and penultimate (n, 200).

    Every checkpoint variable is in the model only when the taggram is among the outputs
    (load_weights refuses a checkpoint with unused variables).
    """
    unknown = set(outputs) - {TAGGRAM, MIDLEVEL, PENULTIMATE}
    if unknown or not outputs:
        raise ValueError(f"outputs must name some of {TAGGRAM}, {MIDLEVEL}, {PENULTIMATE}; got {list(outputs)}")
    log_mel = keras.Input((PATCH_FRAMES, N_MELS), name="log_mel")
    x = layers.Reshape((PATCH_FRAMES, N_MELS, 1))(log_mel)
    x = _batch_norm("batch_normalization")(x)

    # Timbral filters: 'same' in time by zero padding, 'valid' in frequency.
    # Every front-end branch then keeps only the maximum over frequency.
    half = TIMBRAL_KERNEL_FRAMES // 2
    padded = layers.ZeroPadding2D(((half, half), (0, 0)))(x)
    front = []
    bn_index = 1
    conv_index = 0
    for mels in TIMBRAL_KERNEL_MELS:
        conv = layers.Conv2D(
            TIMBRAL_FILTERS, (TIMBRAL_KERNEL_FRAMES, mels), activation="relu", name=f"conv2d{_suffix(conv_index)}"
        )(padded)
        front.append(ops.max(_batch_norm(f"batch_normalization_{bn_index}")(conv), axis=2))
        bn_index += 1
        conv_index += 1
    for frames in TEMPORAL_KERNEL_FRAMES:
        conv = layers.Conv2D(
            TEMPORAL_FILTERS, (frames, 1), padding="same", activation="relu", name=f"conv2d_{conv_index}"
        )(x)
        front.append(ops.max(_batch_norm(f"batch_normalization_{bn_index}")(conv), axis=2))
        bn_index += 1
        conv_index += 1
    front_features = layers.Concatenate(axis=-1)(front)

    # Mid-end: 1-D convolutions over time; the 2nd and 3rd are residual.
    mid = [front_features]
    previous = front_features
    for layer in range(3):
        conv = layers.Conv1D(
            MIDEND_FILTERS, MIDEND_KERNEL_FRAMES, padding="same", activation="relu", name=f"conv2d_{conv_index}"
        )(previous)
        normed = _batch_norm(f"batch_normalization_{bn_index}")(conv)
        previous = normed if layer == 0 else layers.Add()([normed, previous])
        mid.append(previous)
        bn_index += 1
        conv_index += 1
    features = layers.Concatenate(axis=-1)(mid)

    # Back-end: max and mean over time, interleaved per feature as the
    # original's concat-then-flatten lays them out (max0, mean0, max1, ...).
    pooled = ops.stack([ops.max(features, axis=1), ops.mean(features, axis=1)], axis=-1)
    midlevel = layers.Flatten(name=MIDLEVEL)(pooled)
    pooled = _batch_norm(f"batch_normalization_{bn_index}")(midlevel)
    dense = layers.Dense(PENULTIMATE_UNITS, activation="relu", name="dense")(pooled)
    penultimate = _batch_norm(f"batch_normalization_{bn_index + 1}")(dense)
    taggram = layers.Dense(N_TAGS, activation="sigmoid", name="dense_1")(penultimate)
    tensors = {TAGGRAM: taggram, MIDLEVEL: midlevel, PENULTIMATE: penultimate}
    return keras.Model(log_mel, {name: tensors[name] for name in outputs}, name="msd_musicnn")


def _suffix(index: int) -> str:
    return "" if index == 0 else f"_{index}"


def load_weights(model: keras.Model, folder: Path | None = None) -> None:
    """Copy every variable of the MSD_musicnn checkpoint into ``model``; raise on any mismatch."""
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(folder or weights_dir()))
    available = reader.get_variable_to_shape_map()
    used: set[str] = set()
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            names = ("gamma", "beta", "moving_mean", "moving_variance")
        elif isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Dense)):
            names = ("kernel", "bias")
        else:
            continue
        values = []
        for name, variable in zip(names, layer.weights, strict=True):
            key = f"{layer.name}/{name}"
            if key not in available:
                raise WeightsError(f"checkpoint has no variable {key}")
            value = reader.get_tensor(key)
            if value.size != int(np.prod(variable.shape)):
                raise WeightsError(f"{key} has shape {value.shape}, layer expects {tuple(variable.shape)}")
            # Mid-end kernels are stored as 2-D convolutions [7, C, 1, 64]; Conv1D takes [7, C, 64].
            values.append(value.reshape(variable.shape))
            used.add(key)
        layer.set_weights(values)
    unused = {k for k in available if k not in used and "Adam" not in k and not k.endswith("_power")}
    if unused:
        raise WeightsError(f"checkpoint variables not used by the model: {sorted(unused)}")
