"""A listener's models and profile in S3: written by the history trainer, read by the personal routes.

Both live in the index bucket under ``users/{userId}/`` (the API already reads that
bucket; its policy grants ``users/*`` separately from ``index/*``):

* ``model.npz``: numpy arrays only (no pickle), so the API needs neither scikit-learn
  nor TensorFlow to use them: the tastes (centroids and weights), the heard tracks,
  the affinity model's training tracks and the continuation model's matrix;
* ``profile.json``: what ``GET /users/{userId}`` shows (counts, sessions, last import,
  the models' cross-validated quality).

The model is written before the profile, so a profile never names a model that is not there.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from botocore.exceptions import ClientError

from catalog.storage import NOT_FOUND_CODES, client, error_code

USERS_PREFIX = "users/"
MODEL_FILENAME = "model.npz"
PROFILE_FILENAME = "profile.json"
# Descriptor features of the affinity model, scaled to about unit range; a flag says whether they are known.
TEMPO_SCALE_BPM = 100.0
LOUDNESS_SCALE_LUFS = 20.0
DESCRIPTOR_FEATURES = 3
# The affinity model: the distance-weighted mean of the plays of the nearest training tracks (cosine).
AFFINITY_NEIGHBOURS = 5


def model_key(user_id: str) -> str:
    return f"{USERS_PREFIX}{user_id}/{MODEL_FILENAME}"


def profile_key(user_id: str) -> str:
    return f"{USERS_PREFIX}{user_id}/{PROFILE_FILENAME}"


def affinity_features(vector: npt.NDArray[np.float32], descriptors: Mapping[str, Any] | None) -> npt.NDArray[np.float32]:
    """The affinity model's input: the track's unit embedding, then tempo, loudness and a 'descriptors known' flag."""
    extra = np.zeros(DESCRIPTOR_FEATURES, np.float32)
    if descriptors:
        extra[:] = (float(descriptors["tempoBpm"]) / TEMPO_SCALE_BPM, float(descriptors["loudnessLufs"]) / LOUDNESS_SCALE_LUFS, 1.0)
    return np.concatenate([np.asarray(vector, np.float32).reshape(-1), extra])


def neighbour_mean(
    examples: npt.NDArray[np.float32], targets: npt.NDArray[np.float32], features: npt.NDArray[np.float32]
) -> float:
    """scikit-learn's KNeighborsRegressor(AFFINITY_NEIGHBOURS, weights="distance", metric="cosine") in numpy:
    the API serves it without scikit-learn. Exact matches (distance 0), if any, decide alone."""
    unit = examples / np.maximum(np.linalg.norm(examples, axis=1, keepdims=True), 1e-12)
    query = features / max(float(np.linalg.norm(features)), 1e-12)
    distance = np.maximum(0.0, 1.0 - unit @ query)
    nearest = np.argsort(distance, kind="stable")[:AFFINITY_NEIGHBOURS]
    exact = nearest[distance[nearest] <= 0.0]
    if exact.size:
        return float(np.mean(targets[exact]))
    weights = 1.0 / distance[nearest]
    return float(np.sum(weights * targets[nearest]) / np.sum(weights))


def predict_next(
    transition: npt.NDArray[np.float32], bias: npt.NDArray[np.float32], prefix: Sequence[npt.NDArray[np.float32]]
) -> npt.NDArray[np.float32]:
    """The continuation model's unit prediction of the next track from the tracks so far (oldest first)."""
    predicted = np.concatenate([prefix[-1], np.mean(prefix, axis=0)]) @ transition + bias
    return (predicted / max(float(np.linalg.norm(predicted)), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class UserModel:
    index_version: str  # the index the model was trained on
    dim: int
    heard: tuple[str, ...]  # every matched track the listener played (skips included): never recommended
    centroids: npt.NDArray[np.float32]  # (tastes, dim), unit rows
    taste_weights: npt.NDArray[np.float32]  # (tastes,), summing to 1
    # The affinity model's training tracks: features (examples, dim + DESCRIPTOR_FEATURES) and log1p(plays).
    affinity_ids: tuple[str, ...]
    affinity_examples: npt.NDArray[np.float32]
    affinity_targets: npt.NDArray[np.float32]
    affinity_reference: npt.NDArray[np.float32]  # sorted predicted plays over the training tracks: the 0..1 score
    # (2 * dim, dim) and (dim,): next embedding from [last track, mean of the session so far]; empty when untrained.
    transition: npt.NDArray[np.float32]
    transition_bias: npt.NDArray[np.float32]
    # The searched space the vectors are in (catalog.bundle.Transform.space); a model
    # written before spaces were named is in the raw space ("identity").
    space: str = "identity"

    def expected_plays(self, track_id: str, features: npt.NDArray[np.float32]) -> float:
        """Predicted plays; a training track is predicted from the others (its own plays, or the 0
        it was sampled with as an unplayed track, would otherwise answer for it)."""
        keep = np.array([t != track_id for t in self.affinity_ids], dtype=bool)
        return float(np.expm1(neighbour_mean(self.affinity_examples[keep], self.affinity_targets[keep], features)))

    def score(self, expected: float) -> float:
        """The share of the listener's training tracks predicted to be played less (0..1)."""
        return float(np.searchsorted(self.affinity_reference, expected, side="left") / max(1, self.affinity_reference.size))

    @property
    def has_transition(self) -> bool:
        return self.transition.size > 0

    def next_vector(self, prefix: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        return predict_next(self.transition, self.transition_bias, prefix)

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez_compressed(
            out,
            index_version=np.array(self.index_version),
            dim=np.array(self.dim),
            heard=np.array(self.heard, dtype=str),
            centroids=self.centroids,
            taste_weights=self.taste_weights,
            affinity_ids=np.array(self.affinity_ids, dtype=str),
            affinity_examples=self.affinity_examples,
            affinity_targets=self.affinity_targets,
            affinity_reference=self.affinity_reference,
            transition=self.transition,
            transition_bias=self.transition_bias,
            space=np.array(self.space),
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> UserModel:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return cls(
                index_version=str(npz["index_version"]),
                dim=int(npz["dim"]),
                heard=tuple(str(t) for t in npz["heard"]),
                centroids=npz["centroids"].astype(np.float32),
                taste_weights=npz["taste_weights"].astype(np.float32),
                affinity_ids=tuple(str(t) for t in npz["affinity_ids"]),
                affinity_examples=npz["affinity_examples"].astype(np.float32),
                affinity_targets=npz["affinity_targets"].astype(np.float32),
                affinity_reference=npz["affinity_reference"].astype(np.float32),
                transition=npz["transition"].astype(np.float32),
                transition_bias=npz["transition_bias"].astype(np.float32),
                space=str(npz["space"]) if "space" in npz.files else "identity",
            )


class UserModelStore:
    """users/{userId}/ in the index bucket."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self.s3 = s3 or client("s3")

    def put(self, user_id: str, model: UserModel, profile: Mapping[str, Any]) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=model_key(user_id), Body=model.to_bytes(), ContentType="application/octet-stream")
        self.s3.put_object(
            Bucket=self.bucket,
            Key=profile_key(user_id),
            Body=json.dumps(profile, ensure_ascii=False, separators=(",", ":")).encode(),
            ContentType="application/json",
        )

    def _get(self, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise

    def user_ids(self) -> list[str]:
        """Every listener with something stored (a model or a profile), in key order."""
        ids: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=USERS_PREFIX, Delimiter="/"):
            ids += [str(common["Prefix"])[len(USERS_PREFIX):].rstrip("/") for common in page.get("CommonPrefixes", [])]
        return ids

    def model(self, user_id: str) -> UserModel | None:
        data = self._get(model_key(user_id))
        return None if data is None else UserModel.from_bytes(data)

    def profile(self, user_id: str) -> dict[str, Any] | None:
        data = self._get(profile_key(user_id))
        return None if data is None else json.loads(data)
