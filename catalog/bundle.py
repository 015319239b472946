"""The index bundle: what annoy_service publishes and the API serves, in one typed module.

A published index is a large immutable *base* plus a small *delta* of what changed
since the base was built (docs/ARCHITECTURE.md, "The index bundle"):

    index/{base}/manifest.json        BaseManifest: version, counts, settings, checksums
    index/{base}/tracks.ann           Annoy (angular) over searched-space vectors; item i = row i
    index/{base}/vectors.f16          raw model embeddings, little-endian float16, row i = item i
                                      (vectors.f32, float32, in bases of format 2, which are still read)
    index/{base}/meta.sqlite          item -> track id and TrackMeta (JSON), read by item or by id
    index/{base}/space.npz            the catalogue transform's parameters and the map's PCA basis
    index/{base}/deltas/{seq}.npz     Delta: tracks added or changed since the base, and tombstones
    index/LATEST.json                 LatestPointer: the base + delta to serve

One writer (:func:`write_base`, :meth:`Delta.write`) and one reader
(:class:`BaseReader`, :meth:`Delta.read`); :mod:`catalog.bundle_store` moves them
to and from S3.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import re
import sqlite3
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from annoy import AnnoyIndex

from catalog.keys import (
    ANN_FILENAME,
    MANIFEST_FILENAME,
    META_FILENAME,
    SPACE_FILENAME,
    VECTORS_FILENAME,
    VECTORS_FILENAME_F32,
    delta_key,
    manifest_key,
)
from catalog.records import TrackRecord

# LATEST.json and deltas; a base's manifest has a format of its own.
FORMAT = 2
# Base format 3 keeps the raw vectors as float16: half the bytes of float32, so a compaction
# (the previous base's vectors beside the new one's on /tmp) reaches twice the catalogue. The
# table keeps the model's float32 output. Format 2 bases (float32) are still read, and
# compaction writes them out again as format 3.
BASE_FORMAT = 3
BASE_VECTORS = {2: (VECTORS_FILENAME_F32, np.dtype("<f4")), 3: (VECTORS_FILENAME, np.dtype("<f2"))}
METRIC = "angular"
VECTOR_DTYPE = np.dtype("<f4")  # a delta's vectors, as the table holds them
RAW_DTYPE = BASE_VECTORS[BASE_FORMAT][1]  # a base's raw vectors
# A bundle carries only each track's strongest tags: all 50 musicnn tags for every track
# would multiply its size for no use in a results list.
META_TOP_TAGS = 5
PROJECTION_DIMS = 2
# The map's PCA basis is fitted on at most this many vectors (a fixed-seed sample): two
# principal axes are stable long before 1M vectors, and the SVD stays well under a second.
PROJECTION_FIT_MAX_ITEMS = 50_000
PROJECTION_SEED = 0
# Fixed so that the same input builds the same file (Annoy picks split points at random).
ANNOY_SEED = 42
# From this many items Annoy writes the index straight to its file while building, so the
# builder's memory holds the vectors once instead of twice (numpy + Annoy's heap).
ON_DISK_BUILD_MIN_ITEMS = 200_000
# Rows moved per step when writing or compacting: bounded memory at any catalogue size.
CHUNK_ROWS = 50_000
# Parsed TrackMeta kept per opened base (results, filters and the map ask for the same tracks).
META_CACHE_ITEMS = 65_536
# The files a reader needs to serve, and the ones compaction needs as well.
# (A base's complete list is BaseManifest.base_files, and what it is rebuilt from, compaction
# and the drift check, is BaseManifest.row_files: its rows, not its Annoy index.)
SERVING_FILES = (ANN_FILENAME, META_FILENAME, SPACE_FILENAME)
# A version becomes a directory name on readers' disks.
VERSION_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
_VERSION_RE = re.compile(VERSION_PATTERN)

Progress = Callable[[str], None]


class BundleError(ValueError):
    """A bundle (or LATEST.json) that must not be served: bad checksum, shape, or content."""


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def validate_version(version: object) -> str:
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version) or version.strip(".") == "":
        raise BundleError("an index version must be a plain directory name")
    return version


# -- per-track metadata ----------------------------------------------------------------

@dataclass(frozen=True)
class TrackMeta:
    """What a bundle carries per track: everything a response shows, nothing it does not.

    Built from the Tracks record by :meth:`from_record` only, so the builder (from a
    table scan or a stream image) and every reader agree on it.
    """

    track_id: str
    title: str = ""
    artists: tuple[str, ...] = ()
    album: str = ""
    isrc: str = ""
    duration_ms: int | None = None
    source: str = ""
    preview_source: str | None = None
    tags: dict[str, float] = field(default_factory=dict)
    descriptors: dict[str, Any] | None = None
    refs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: TrackRecord) -> TrackMeta:
        top_tags = sorted(record.tags.items(), key=lambda kv: (-kv[1], kv[0]))[:META_TOP_TAGS]
        return cls(
            track_id=record.track_id,
            title=record.title,
            artists=tuple(record.artists),
            album=record.album,
            isrc=record.isrc,
            duration_ms=record.duration_ms,
            source=record.source.value,
            preview_source=record.preview_source.value if record.preview_source else None,
            tags=dict(top_tags),
            descriptors=record.descriptors.to_json() if record.descriptors else None,
            refs=record.refs,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["artists"] = list(self.artists)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackMeta:
        try:
            values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            values["artists"] = tuple(str(a) for a in values.get("artists") or ())
            values["tags"] = {str(k): float(v) for k, v in (values.get("tags") or {}).items()}
            values["refs"] = {str(k): str(v) for k, v in (values.get("refs") or {}).items()}
            return cls(**values)
        except (TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"track metadata is not valid: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> TrackMeta:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BundleError(f"track metadata is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BundleError("track metadata is not a JSON object")
        return cls.from_dict(data)


# -- the searched space ----------------------------------------------------------------

IDENTITY_TRANSFORM = "identity"
PCA_TRANSFORM = "pca"
# A base of at least this many raw dimensions more than SEARCHED_DIMS and at least
# PCA_MIN_ITEMS tracks is searched in a PCA space of SEARCHED_DIMS axes fitted on its
# own raw vectors (docs/ARCHITECTURE.md, "The searched space"): it keeps tracks.ann, the
# API's memory and every query at the size of a 200-d index at any catalogue size,
# whatever the model's width. Ten fitting rows per kept axis is the least that estimates
# them; a smaller catalogue is searched in the raw space, where size is no concern.
SEARCHED_DIMS = 200
PCA_MIN_ITEMS = 10 * SEARCHED_DIMS
# The PCA basis is fitted on at most this many raw vectors (a fixed-seed sample): 200
# axes of a 1506-d space are estimated well by 20k rows, and the fit stays seconds.
PCA_FIT_MAX_ITEMS = 20_000
PCA_SEED = 1
# A compaction keeps the previous base's fitted basis until the catalogue has grown this
# many times over the count it was fitted on: 10 % more tracks barely move 200 principal
# axes, and every refit changes the searched space, which stales the listeners' models
# (trained in it) until they are trained again.
PCA_REFIT_GROWTH = 2.0


def _unit_rows(vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def row_files(base_format: int) -> tuple[str, ...]:
    return (BASE_VECTORS[base_format][0], META_FILENAME, SPACE_FILENAME)


def base_files(base_format: int) -> tuple[str, ...]:
    return (ANN_FILENAME, *row_files(base_format))


def at_base_precision(vector: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """The raw vector as a base stores it (each value to the nearest float16), in float32: a delta
    holds its tracks so, and a track then has the same searched vector before and after compaction."""
    with np.errstate(over="ignore"):
        return np.asarray(vector, np.float32).astype(RAW_DTYPE).astype(np.float32)


def _sample_rows(count: int, limit: int, seed: int) -> npt.NDArray[np.intp] | slice:
    """Rows to fit on: all of them, or ``limit`` of them drawn with a fixed seed, in item order."""
    if count <= limit:
        return slice(None)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def _fixed_signs(components: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """SVD and eigenvector signs are arbitrary: flip each row so its largest entry is positive (same data, same file)."""
    rows = np.arange(components.shape[0])
    signs = np.where(components[rows, np.abs(components).argmax(axis=1)] < 0, -1.0, 1.0)
    return components * signs[:, None]


@dataclass(frozen=True)
class Transform:
    """The catalogue-level transform from a raw model embedding to the searched space.

    Named and versioned so that a reader refuses one it does not know; the manifest
    holds the name, version and ``dims``, space.npz the fitted parameters. The
    bundle's raw vectors stay as the model gave them, so compaction refits it.

    - ``identity`` v1: L2 normalisation; the searched space is the raw space.
    - ``pca`` v1: ``unit((unit(raw) - mean) @ components.T)``: mean-centring and
      projection on the ``dims`` leading principal axes of the base's raw unit
      vectors, then L2 normalisation. Cosines in it are those of centred vectors
      with the weakest axes dropped; no axis is rescaled (whitening lost on every
      measure, bench/RESULTS.md).
    """

    name: str = IDENTITY_TRANSFORM
    version: int = 1
    dims: int | None = None  # pca: the searched space's dimension
    fitted_on: int | None = None  # pca: how many base vectors it was fitted on
    fit_id: str | None = None  # pca: SHA-256 prefix of its parameters; the searched space's identity
    mean: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)  # (raw dim,)
    components: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)  # (dims, raw dim)

    def validate(self) -> None:
        """A transform a manifest may name: identity, or a fitted pca (its dims, count and fit id)."""
        fit = (self.dims, self.fitted_on, self.fit_id)
        if (self.name, self.version) == (IDENTITY_TRANSFORM, 1) and fit == (None, None, None):
            return
        if (self.name, self.version) == (PCA_TRANSFORM, 1) and all(fit) and min(self.dims or 0, self.fitted_on or 0) > 0:
            return
        raise BundleError(f"unknown catalogue transform {self.name!r} version {self.version} ({self.to_dict()})")

    @property
    def space(self) -> str:
        """Names the searched space: vectors of two bases with the same space are comparable."""
        return self.name if self.fit_id is None else f"{self.name}:{self.dims}:{self.fit_id}"

    def searched_dim(self, raw_dim: int) -> int:
        return raw_dim if self.dims is None else self.dims

    def apply(self, raw: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Rows (or one vector) of raw embeddings → unit vectors in the searched space."""
        vectors = _unit_rows(raw)
        if self.name == IDENTITY_TRANSFORM:
            return vectors
        if self.mean is None or self.components is None:
            raise BundleError(f"the {self.name} transform has no fitted parameters (space.npz not read)")
        return _unit_rows((vectors - self.mean) @ self.components.T)

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "version": self.version}
        fit = {"dims": self.dims, "fitted_on": self.fitted_on, "fit_id": self.fit_id}
        return spec | {key: value for key, value in fit.items() if value is not None}

    @classmethod
    def from_dict(cls, data: Any) -> Transform:
        try:
            dims, fitted_on, fit_id = data.get("dims"), data.get("fitted_on"), data.get("fit_id")
            transform = cls(
                name=str(data.get("name", IDENTITY_TRANSFORM)),
                version=int(data.get("version", 1)),
                dims=None if dims is None else int(dims),
                fitted_on=None if fitted_on is None else int(fitted_on),
                fit_id=None if fit_id is None else str(fit_id),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"transform is not valid: {exc}") from exc
        transform.validate()
        return transform

    def with_parameters(self, mean: npt.NDArray[np.float32], components: npt.NDArray[np.float32], raw_dim: int) -> Transform:
        """This transform with its fitted parameters, checked against the raw dimension; BundleError if they do not fit."""
        if mean.shape != (raw_dim,) or components.shape != (self.dims, raw_dim):
            raise BundleError(f"{self.name} parameters {mean.shape}, {components.shape} do not fit {self.dims} x {raw_dim}")
        return Transform(self.name, self.version, self.dims, self.fitted_on, self.fit_id,
                         np.asarray(mean, np.float32), np.asarray(components, np.float32))

    @property
    def spec(self) -> Transform:
        """What the manifest holds: everything but the parameters (those are in space.npz)."""
        return Transform(self.name, self.version, self.dims, self.fitted_on, self.fit_id)


def transform_for(count: int, raw_dim: int) -> Transform:
    """The transform a base of ``count`` raw vectors of ``raw_dim`` values is searched with (unfitted)."""
    if raw_dim > SEARCHED_DIMS and count >= PCA_MIN_ITEMS:
        return Transform(PCA_TRANSFORM, 1, SEARCHED_DIMS)
    return Transform()


def transform_of_base(raw: npt.NDArray[np.float32], carry: Transform | None = None) -> Transform:
    """The fitted transform a base of these raw vectors is searched with.

    ``carry`` is the previous base's (compaction): kept while it is the kind
    :func:`transform_for` names for this base and the base has grown less than
    PCA_REFIT_GROWTH times over what it was fitted on; refitted otherwise.
    """
    count, raw_dim = raw.shape
    spec = transform_for(count, raw_dim)
    if (
        spec.name != IDENTITY_TRANSFORM and carry is not None and carry.mean is not None and (carry.name, carry.dims) == (spec.name, spec.dims)
        and carry.mean.shape == (raw_dim,) and count < PCA_REFIT_GROWTH * (carry.fitted_on or 0)
    ):
        return carry
    return fit_transform(spec, raw)


def fit_transform(spec: Transform, raw: npt.NDArray[np.float32]) -> Transform:
    """``spec`` fitted on a base's raw vectors (n, raw dim); identity needs no fit.

    PCA: on at most PCA_FIT_MAX_ITEMS rows (a fixed-seed sample), the raw vectors'
    unit rows are centred and the covariance's leading ``dims`` eigenvectors kept.
    """
    if spec.name == IDENTITY_TRANSFORM:
        return spec
    count, raw_dim = raw.shape
    if spec.dims is None or spec.dims > min(count, raw_dim):
        raise ValueError(f"cannot fit {spec.dims} axes on {count} vectors of {raw_dim} values")
    sample = _unit_rows(raw[_sample_rows(count, PCA_FIT_MAX_ITEMS, PCA_SEED)]).astype(np.float64)
    mean = sample.mean(axis=0)
    sample -= mean  # in place: the sample is the fit's largest array
    values, vectors = np.linalg.eigh(sample.T @ sample)
    leading = _fixed_signs(vectors[:, np.argsort(values)[::-1][: spec.dims]].T).astype(np.float32)
    centre = mean.astype(np.float32)
    fit_id = hashlib.sha256(centre.tobytes() + leading.tobytes()).hexdigest()[:16]
    fitted = Transform(spec.name, spec.version, spec.dims, count, fit_id)
    return fitted.with_parameters(centre, leading, raw_dim)


@dataclass(frozen=True)
class Projection:
    """The 2-D map's PCA basis: ``(v - mean) @ components.T`` places a searched-space vector."""

    mean: npt.NDArray[np.float32]
    components: npt.NDArray[np.float32]  # PROJECTION_DIMS x dim

    @classmethod
    def fit(cls, vectors: npt.NDArray[np.float32]) -> Projection:
        count, dim = vectors.shape
        vectors = np.asarray(vectors[_sample_rows(count, PROJECTION_FIT_MAX_ITEMS, PROJECTION_SEED)], dtype=np.float64)
        mean = vectors.mean(axis=0)
        _, _, vt = np.linalg.svd(vectors - mean, full_matrices=False)
        components = np.zeros((PROJECTION_DIMS, dim), np.float64)
        components[: min(PROJECTION_DIMS, vt.shape[0])] = vt[:PROJECTION_DIMS]
        return cls(mean.astype(np.float32), _fixed_signs(components).astype(np.float32))

    def apply(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return ((np.atleast_2d(vectors) - self.mean) @ self.components.T).astype(np.float32)


def write_space(path: Path, projection: Projection, transform: Transform) -> None:
    parameters = {} if transform.mean is None else {"transform_mean": transform.mean, "transform_components": transform.components}
    np.savez(path, projection_mean=projection.mean, projection_components=projection.components, **parameters)


def read_space(path: Path, manifest: BaseManifest) -> tuple[Projection, Transform]:
    """The map's basis and the manifest's transform with its fitted parameters; BundleError if either does not fit."""
    transform, searched = manifest.transform, manifest.searched_dim
    try:
        with np.load(path, allow_pickle=False) as space:
            mean = np.asarray(space["projection_mean"], np.float32)
            components = np.asarray(space["projection_components"], np.float32)
            if transform.name != IDENTITY_TRANSFORM:
                transform = transform.with_parameters(
                    np.asarray(space["transform_mean"], np.float32), np.asarray(space["transform_components"], np.float32),
                    manifest.dim,
                )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BundleError(f"space.npz is not valid: {exc}") from exc
    if mean.shape != (searched,) or components.shape != (PROJECTION_DIMS, searched):
        raise BundleError(f"space.npz shapes {mean.shape}, {components.shape} do not fit dim {searched}")
    return Projection(mean, components), transform


# -- the base ------------------------------------------------------------------------

class BuiltFrom(enum.StrEnum):
    TABLE = "table"  # a full scan of Tracks (make index FULL=1, the weekly reconcile, a fresh stack)
    COMPACTION = "compaction"  # the previous base's vectors plus its delta


@dataclass(frozen=True)
class FileSum:
    sha256: str
    bytes: int

    @classmethod
    def of(cls, path: Path) -> FileSum:
        return cls(sha256_file(path), path.stat().st_size)


def _parse_object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        raw = json.loads(data)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundleError(f"{what} is JSON but not an object")
    return raw


@dataclass
class BaseManifest:
    """index/{base}/manifest.json: version, counts, settings and checksums; no per-track data."""

    version: str
    created_at: str
    model: str
    dim: int
    count: int
    n_trees: int
    search_k: int
    files: dict[str, FileSum]
    transform: Transform = field(default_factory=Transform)
    built_from: str = BuiltFrom.TABLE.value
    # SHA-256 of what the base was built from (model, settings, ids, raw vectors): a full
    # rebuild whose input equals LATEST's base (and no delta) publishes nothing new.
    content_sha256: str = ""
    skipped: dict[str, int] = field(default_factory=dict)
    metric: str = METRIC
    format: int = BASE_FORMAT

    def validate(self) -> None:
        validate_version(self.version)
        if self.format not in BASE_VECTORS:
            raise BundleError(f"bundle format {self.format}, this reader knows {sorted(BASE_VECTORS)}")
        if self.metric != METRIC:
            raise BundleError(f"bundle metric is {self.metric!r}, expected {METRIC!r}")
        if self.dim <= 0 or self.count <= 0:
            raise BundleError(f"bundle dim and count must be positive, got {self.dim} and {self.count}")
        missing = [name for name in self.base_files if name not in self.files]
        if missing:
            raise BundleError(f"manifest lists no checksum for {', '.join(missing)}")
        if self.files[self.vectors_file].bytes != self.count * self.dim * self.vector_dtype.itemsize:
            raise BundleError(f"{self.vectors_file} size does not match count x dim {self.vector_dtype.name}")
        self.transform.validate()

    @property
    def vectors_file(self) -> str:
        return BASE_VECTORS[self.format][0]

    @property
    def vector_dtype(self) -> np.dtype[Any]:
        return BASE_VECTORS[self.format][1]

    @property
    def row_files(self) -> tuple[str, ...]:
        """What a base is rebuilt from (compaction, the drift check): its rows, not its Annoy index."""
        return row_files(self.format)

    @property
    def base_files(self) -> tuple[str, ...]:
        return base_files(self.format)

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.version)

    @property
    def searched_dim(self) -> int:
        """tracks.ann's dimension: the transform's output (``dim`` is the raw vectors')."""
        return self.transform.searched_dim(self.dim)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["transform"] = self.transform.to_dict()
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> BaseManifest:
        raw = _parse_object(data, "manifest.json")
        try:
            values = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
            values["files"] = {str(name): FileSum(str(f["sha256"]), int(f["bytes"])) for name, f in values["files"].items()}
            values["transform"] = Transform.from_dict(values.get("transform", {}))
            manifest = cls(**values)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise BundleError(f"manifest.json is not valid: {exc}") from exc
        manifest.validate()
        return manifest


@dataclass(frozen=True)
class BaseRows:
    """One chunk of a base being written: ids, their TrackMeta as JSON, their raw vectors."""

    track_ids: Sequence[str]
    metas_json: Sequence[str]
    vectors: npt.NDArray[np.float32]


def _create_meta_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.executescript(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
        "CREATE TABLE tracks (item INTEGER PRIMARY KEY, track_id TEXT NOT NULL, meta TEXT NOT NULL);"
    )
    return db


def write_base(
    directory: Path,
    rows: Iterable[BaseRows],
    *,
    version: str,
    created_at: str,
    model: str,
    n_trees: int,
    search_k: int | Callable[[int], int],
    carry: Transform | None = None,
    built_from: BuiltFrom = BuiltFrom.TABLE,
    skipped: Mapping[str, int] | None = None,
    progress: Progress | None = None,
) -> BaseManifest:
    """Write a complete base into ``directory`` (the one writer of base files).

    ``rows`` arrive in item order and are streamed to disk, so memory stays bounded
    at any size. ``search_k`` may depend on the final count. The searched space is
    :func:`transform_of_base`'s (``carry``: the previous base's fitted transform, kept
    while it fits). Raises ValueError for an empty input, mixed dims or a duplicate
    track id.
    """
    validate_version(version)
    if n_trees < 1:
        raise ValueError(f"n_trees must be at least 1, got {n_trees}")
    directory.mkdir(parents=True, exist_ok=True)
    vectors_path = directory / BASE_VECTORS[BASE_FORMAT][0]
    db = _create_meta_db(directory / META_FILENAME)
    digest = hashlib.sha256()
    count, dim = 0, 0
    try:
        with vectors_path.open("wb") as vectors_file:
            for chunk in rows:
                with np.errstate(over="ignore"):
                    vectors = np.ascontiguousarray(chunk.vectors, dtype=RAW_DTYPE)
                if not np.isfinite(vectors).all():
                    raise ValueError(f"a vector holds a value that is not finite or does not fit {RAW_DTYPE.name}")
                if len(chunk.track_ids) != len(vectors) or len(chunk.metas_json) != len(vectors):
                    raise ValueError("a chunk's ids, metadata and vectors differ in length")
                if not len(vectors):
                    continue
                if vectors.ndim != 2 or (dim and vectors.shape[1] != dim) or vectors.shape[1] == 0:
                    raise ValueError(f"vectors of shape {vectors.shape} do not fit dim {dim}")
                dim = vectors.shape[1]
                vectors_file.write(vectors.tobytes())
                db.executemany(
                    "INSERT INTO tracks (item, track_id, meta) VALUES (?, ?, ?)",
                    zip(range(count, count + len(vectors)), chunk.track_ids, chunk.metas_json, strict=True),
                )
                digest.update("\n".join(chunk.track_ids).encode() + b"\n")
                digest.update(vectors.tobytes())
                count += len(vectors)
        if count == 0:
            raise ValueError("a base needs at least one track")
        try:
            db.execute("CREATE UNIQUE INDEX tracks_by_id ON tracks (track_id)")
        except sqlite3.IntegrityError as exc:
            raise ValueError("a track id appears twice in the base") from exc
        db.commit()
    finally:
        db.close()
    k = search_k(count) if callable(search_k) else search_k
    raw = np.memmap(vectors_path, dtype=RAW_DTYPE, mode="r", shape=(count, dim))
    transform = transform_of_base(raw, carry)
    if progress and transform.name != IDENTITY_TRANSFORM:
        kept = "kept" if transform is carry else "fitted"
        progress(f"{transform.name} transform ({dim} -> {transform.dims} dims) {kept}: {transform.space}")
    _build_annoy(raw, transform, n_trees, directory / ANN_FILENAME, progress)
    write_space(directory / SPACE_FILENAME, Projection.fit(_sample_transformed(raw, transform)), transform)
    del raw
    digest.update(f"{model}\n{count}x{dim}\n{n_trees}\n{k}\n{ANNOY_SEED}\n{transform.to_dict()}".encode())
    manifest = BaseManifest(
        version=version,
        created_at=created_at,
        model=model,
        dim=dim,
        count=count,
        n_trees=n_trees,
        search_k=k,
        files={name: FileSum.of(directory / name) for name in base_files(BASE_FORMAT)},
        transform=transform.spec,  # the parameters are in space.npz
        built_from=built_from.value,
        content_sha256=digest.hexdigest(),
        skipped=dict(skipped or {}),
    )
    manifest.validate()
    (directory / MANIFEST_FILENAME).write_bytes(manifest.to_json())
    return manifest


def _sample_transformed(raw: npt.NDArray[np.float32], transform: Transform) -> npt.NDArray[np.float32]:
    return transform.apply(raw[_sample_rows(raw.shape[0], PROJECTION_FIT_MAX_ITEMS, PROJECTION_SEED)])


def _build_annoy(
    raw: npt.NDArray[np.float32], transform: Transform, n_trees: int, path: Path, progress: Progress | None
) -> None:
    count = raw.shape[0]
    dim = transform.searched_dim(raw.shape[1])
    index = AnnoyIndex(dim, METRIC)
    index.set_seed(ANNOY_SEED)
    on_disk = count >= ON_DISK_BUILD_MIN_ITEMS
    if on_disk:
        index.on_disk_build(str(path))
    for start in range(0, count, CHUNK_ROWS):
        for offset, vector in enumerate(transform.apply(raw[start:start + CHUNK_ROWS])):
            index.add_item(start + offset, vector)
        if progress and count > CHUNK_ROWS:
            progress(f"added {min(count, start + CHUNK_ROWS):,} of {count:,} vectors")
    if progress:
        progress(f"building {n_trees} trees over {count:,} vectors (dim {dim}, {'on disk' if on_disk else 'in memory'})")
    index.build(n_trees, n_jobs=-1)
    if not on_disk:
        index.save(str(path))
    index.unload()


def verify_files(directory: Path, manifest: BaseManifest, names: Iterable[str]) -> None:
    """Each named file in ``directory`` is the one the manifest describes; BundleError if not."""
    for name in names:
        path = directory / name
        expected = manifest.files[name]
        if not path.is_file():
            raise BundleError(f"{name} is missing")
        size = path.stat().st_size
        if size != expected.bytes:
            raise BundleError(f"{name} has {size} bytes, manifest says {expected.bytes}")
        digest = sha256_file(path)
        if digest != expected.sha256:
            raise BundleError(f"{name} SHA-256 is {digest}, manifest says {expected.sha256}")


def _open_meta_db(directory: Path, manifest: BaseManifest) -> sqlite3.Connection:
    """meta.sqlite opened read-only, its row count checked against the manifest."""
    try:
        # immutable=1: the file never changes, so SQLite takes no locks and reads no journal.
        db = sqlite3.connect(f"{(directory / META_FILENAME).resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        (rows,) = db.execute("SELECT count(*) FROM tracks").fetchone()
    except sqlite3.Error as exc:
        raise BundleError(f"meta.sqlite cannot be read: {exc}") from exc
    if rows != manifest.count:
        db.close()
        raise BundleError(f"meta.sqlite holds {rows} tracks, manifest says {manifest.count}")
    return db


class BaseRowsReader:
    """A base's rows: metadata by item number and the raw vectors, without its Annoy index.

    What compaction and the drift check read (the manifest's row_files, a third of a base's bytes, with the fitted transform compaction may keep). Thread-safe:
    the SQLite connection is shared behind a lock.
    """

    def __init__(self, directory: Path, manifest: BaseManifest, db: sqlite3.Connection, transform: Transform) -> None:
        self.directory = directory
        self.manifest = manifest
        self.transform = transform  # the manifest's, with its fitted parameters (space.npz)
        self._db = db
        self._lock = threading.Lock()
        self.meta = lru_cache(maxsize=META_CACHE_ITEMS)(self._meta)

    def close(self) -> None:
        self._db.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def item_of(self, track_id: str) -> int | None:
        rows = self._query("SELECT item FROM tracks WHERE track_id = ?", (track_id,))
        return rows[0][0] if rows else None

    def items_of(self, track_ids: Iterable[str]) -> dict[str, int]:
        """Item numbers of those ids that are in the base."""
        ids = list(track_ids)
        found: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            found.update(self._query(f"SELECT track_id, item FROM tracks WHERE track_id IN ({marks})", part))
        return found

    def track_ids_of(self, items: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for start in range(0, len(items), 500):
            part = list(items[start:start + 500])
            marks = ",".join("?" * len(part))
            found.update(self._query(f"SELECT item, track_id FROM tracks WHERE item IN ({marks})", part))
        return found

    def _meta(self, item: int) -> TrackMeta:
        rows = self._query("SELECT meta FROM tracks WHERE item = ?", (item,))
        if not rows:
            raise KeyError(item)
        return TrackMeta.from_json(rows[0][0])

    def iter_rows(self, chunk: int = CHUNK_ROWS) -> Iterator[list[tuple[int, str, str]]]:
        """(item, track_id, meta JSON) in item order, ``chunk`` rows at a time."""
        for start in range(0, self.manifest.count, chunk):
            yield self._query(
                "SELECT item, track_id, meta FROM tracks WHERE item >= ? AND item < ? ORDER BY item", (start, start + chunk)
            )

    def raw_vectors(self) -> npt.NDArray[np.floating]:
        """The raw embeddings as stored (float16, or float32 in a format 2 base), memory-mapped (present
        where the base was downloaded with its row files)."""
        manifest = self.manifest
        return np.memmap(
            self.directory / manifest.vectors_file, dtype=manifest.vector_dtype, mode="r", shape=(manifest.count, manifest.dim)
        )


def open_rows(directory: Path, manifest: BaseManifest) -> BaseRowsReader:
    """The rows of a base whose row files are in ``directory`` (verified by whoever downloaded them)."""
    _, transform = read_space(directory / SPACE_FILENAME, manifest)
    return BaseRowsReader(directory, manifest, _open_meta_db(directory, manifest), transform)


class BaseReader(BaseRowsReader):
    """An opened base (the one reader of base files): Annoy mapped, metadata opened, never parsed whole."""

    def __init__(
        self, directory: Path, manifest: BaseManifest, annoy: AnnoyIndex, db: sqlite3.Connection, projection: Projection,
        transform: Transform,
    ) -> None:
        super().__init__(directory, manifest, db, transform)
        self.annoy = annoy
        self.projection = projection

    @classmethod
    def open(cls, directory: Path, manifest: BaseManifest, *, verify: bool = True, prefault: bool = False) -> BaseReader:
        if verify:
            verify_files(directory, manifest, SERVING_FILES)
        projection, transform = read_space(directory / SPACE_FILENAME, manifest)
        index = AnnoyIndex(manifest.searched_dim, METRIC)
        try:
            index.load(str(directory / ANN_FILENAME), prefault=prefault)
        except OSError as exc:
            raise BundleError(f"Annoy cannot load tracks.ann: {exc}") from exc
        if index.get_n_items() != manifest.count:
            index.unload()
            raise BundleError(f"tracks.ann holds {index.get_n_items()} items, manifest says {manifest.count}")
        try:
            db = _open_meta_db(directory, manifest)
        except BundleError:
            index.unload()
            raise
        return cls(directory, manifest, index, db, projection, transform)

    def close(self) -> None:
        self.annoy.unload()
        super().close()


# -- the delta -----------------------------------------------------------------------

@dataclass(frozen=True)
class DeltaEntry:
    meta: TrackMeta
    vector: npt.NDArray[np.float32]  # raw model embedding
    # True when the base holds an older copy of this track: removing it then needs a tombstone.
    shadows_base: bool = False


@dataclass
class Delta:
    """What changed since the base: tracks added or changed (raw vectors and metadata) and tombstones.

    A reader hides a base item whose id is tombstoned or has an entry here. Deltas are
    cumulative: sequence n holds everything since the base, so a reader needs only the newest.
    """

    base_version: str
    sequence: int
    model: str
    dim: int
    created_at: str = ""
    entries: dict[str, DeltaEntry] = field(default_factory=dict)
    tombstones: set[str] = field(default_factory=set)

    @property
    def size(self) -> int:
        """What compaction thresholds count: entries plus tombstones."""
        return len(self.entries) + len(self.tombstones)

    def served_count(self, base_count: int) -> int:
        shadowing = sum(entry.shadows_base for entry in self.entries.values())
        return base_count - len(self.tombstones) - shadowing + len(self.entries)

    def upsert(self, meta: TrackMeta, vector: npt.NDArray[np.float32], was_indexed: bool) -> None:
        """Add or replace a track; ``was_indexed`` says the index held it before this change."""
        previous = self.entries.get(meta.track_id)
        shadows = previous.shadows_base if previous is not None else (was_indexed or meta.track_id in self.tombstones)
        self.tombstones.discard(meta.track_id)
        self.entries[meta.track_id] = DeltaEntry(meta, at_base_precision(vector), shadows)

    def remove(self, track_id: str, was_indexed: bool) -> None:
        previous = self.entries.pop(track_id, None)
        if (previous is not None and previous.shadows_base) or (previous is None and was_indexed):
            self.tombstones.add(track_id)

    def content_sha256(self) -> str:
        """Fingerprint of what the delta serves: equal fingerprints, equal answers."""
        digest = hashlib.sha256(f"{self.base_version}\n{self.model}\n{self.dim}\n".encode())
        for track_id in sorted(self.entries):
            entry = self.entries[track_id]
            digest.update(f"{entry.meta.to_json()}\n{int(entry.shadows_base)}\n".encode())
            digest.update(np.ascontiguousarray(entry.vector, VECTOR_DTYPE).tobytes())
        digest.update("\n".join(sorted(self.tombstones)).encode())
        return digest.hexdigest()

    @property
    def key(self) -> str:
        return delta_key(self.base_version, self.sequence)

    def write(self, path: Path) -> FileSum:
        """The one writer of delta files (an .npz of plain arrays, no pickles)."""
        ids = list(self.entries)
        header = {
            "format": FORMAT,
            "base_version": self.base_version,
            "sequence": self.sequence,
            "model": self.model,
            "dim": self.dim,
            "created_at": self.created_at,
            "count": len(ids),
            "tombstones": len(self.tombstones),
        }
        vectors = (
            np.stack([self.entries[i].vector for i in ids]).astype(VECTOR_DTYPE)
            if ids
            else np.zeros((0, self.dim), VECTOR_DTYPE)
        )
        metas = json.dumps([self.entries[i].meta.to_dict() for i in ids], ensure_ascii=False, separators=(",", ":"))
        buffer = io.BytesIO()
        np.savez(
            buffer,
            header=np.frombuffer(json.dumps(header).encode(), np.uint8),
            track_ids=np.array(ids, dtype=str) if ids else np.zeros(0, "U1"),
            vectors=vectors,
            shadows_base=np.array([self.entries[i].shadows_base for i in ids], dtype=bool),
            metas=np.frombuffer(metas.encode(), np.uint8),
            tombstones=np.array(sorted(self.tombstones), dtype=str) if self.tombstones else np.zeros(0, "U1"),
        )
        path.write_bytes(buffer.getvalue())
        return FileSum.of(path)

    @classmethod
    def read(cls, path: Path) -> Delta:
        """The one reader of delta files; BundleError when the file is not a whole, consistent delta."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = _parse_object(bytes(data["header"]), "delta header")
                ids = [str(i) for i in data["track_ids"]]
                vectors = np.asarray(data["vectors"], np.float32)
                shadows = [bool(s) for s in data["shadows_base"]]
                metas = json.loads(bytes(data["metas"]).decode())
                tombstones = {str(t) for t in data["tombstones"]}
            delta = cls(
                base_version=validate_version(header["base_version"]),
                sequence=int(header["sequence"]),
                model=str(header["model"]),
                dim=int(header["dim"]),
                created_at=str(header.get("created_at", "")),
            )
        except BundleError:
            raise
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError) as exc:
            raise BundleError(f"delta file is not valid: {exc}") from exc
        if header.get("format") != FORMAT:
            raise BundleError(f"delta format {header.get('format')}, this reader knows {FORMAT}")
        if not (len(ids) == len(shadows) == len(metas) == vectors.shape[0]) or (ids and vectors.shape[1] != delta.dim):
            raise BundleError("delta ids, metadata and vectors do not line up")
        if len(set(ids)) != len(ids) or tombstones & set(ids):
            raise BundleError("delta lists a track twice")
        if not isinstance(metas, list):
            raise BundleError("delta metadata is not a list")
        for track_id, vector, shadow, meta in zip(ids, vectors, shadows, metas, strict=True):
            entry_meta = TrackMeta.from_dict(meta) if isinstance(meta, dict) else None
            if entry_meta is None or entry_meta.track_id != track_id:
                raise BundleError("delta metadata does not match its ids")
            delta.entries[track_id] = DeltaEntry(entry_meta, vector, shadow)
        delta.tombstones = tombstones
        return delta

    def rebased(self, base: BaseRowsReader, compacted: Delta | None) -> Delta:
        """This delta re-expressed over ``base``, a newer base that already holds ``compacted``.

        ``compacted`` is an earlier state of this delta (same old base) that went into the
        new base, or None; what changed since it stays, what it held is dropped.
        """
        before = compacted if compacted is not None else Delta(self.base_version, 0, self.model, self.dim)
        rebased = Delta(base.manifest.version, 1, self.model, self.dim, self.created_at)
        in_base = base.items_of(self.entries.keys() | self.tombstones | before.entries.keys())
        for track_id, entry in self.entries.items():
            old = before.entries.get(track_id)
            if old is not None and old.meta == entry.meta and np.array_equal(old.vector, entry.vector):
                continue
            rebased.entries[track_id] = DeltaEntry(entry.meta, entry.vector, track_id in in_base)
        # Removed since ``compacted``: tombstoned here, or dropped from the entries it had.
        for track_id in (self.tombstones - before.tombstones) | (before.entries.keys() - self.entries.keys()):
            if track_id in in_base:
                rebased.tombstones.add(track_id)
        return rebased


# -- LATEST.json -----------------------------------------------------------------------

@dataclass
class LatestPointer:
    """index/LATEST.json: the base and delta to serve. The only mutable key, written conditionally."""

    base_version: str
    base_manifest_sha256: str
    model: str
    dim: int
    base_count: int
    count: int  # tracks served: base minus hidden plus delta entries
    published_at: str
    delta_sequence: int = 0  # 0: no delta
    delta_key: str = ""
    delta_sha256: str = ""
    delta_size: int = 0
    delta_content_sha256: str = ""
    base_content_sha256: str = ""
    format: int = FORMAT

    @property
    def version(self) -> str:
        """The served version: the base's, plus the delta's sequence when there is one."""
        return self.base_version if not self.delta_sequence else f"{self.base_version}+{self.delta_sequence}"

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.base_version)

    def validate(self) -> None:
        validate_version(self.base_version)
        if self.format != FORMAT:
            raise BundleError(f"LATEST.json format {self.format}, this reader knows {FORMAT}")
        if self.delta_sequence < 0 or (self.delta_sequence > 0) != bool(self.delta_key):
            raise BundleError("LATEST.json delta fields disagree")
        if self.delta_sequence and self.delta_key != delta_key(self.base_version, self.delta_sequence):
            raise BundleError("LATEST.json names a delta of another base")

    @classmethod
    def for_base(cls, manifest: BaseManifest, manifest_sha256: str, published_at: str) -> LatestPointer:
        return cls(
            base_version=manifest.version,
            base_manifest_sha256=manifest_sha256,
            model=manifest.model,
            dim=manifest.dim,
            base_count=manifest.count,
            count=manifest.count,
            published_at=published_at,
            base_content_sha256=manifest.content_sha256,
        )

    def with_delta(self, delta: Delta, file: FileSum, published_at: str) -> LatestPointer:
        if delta.base_version != self.base_version:
            raise BundleError(f"delta of base {delta.base_version} cannot extend base {self.base_version}")
        return LatestPointer(
            base_version=self.base_version,
            base_manifest_sha256=self.base_manifest_sha256,
            model=self.model,
            dim=self.dim,
            base_count=self.base_count,
            count=delta.served_count(self.base_count),
            published_at=published_at,
            delta_sequence=delta.sequence,
            delta_key=delta.key,
            delta_sha256=file.sha256,
            delta_size=delta.size,
            delta_content_sha256=delta.content_sha256(),
            base_content_sha256=self.base_content_sha256,
        )

    def to_json(self) -> bytes:
        data = asdict(self)
        data["version"] = self.version  # for people and scripts reading the pointer
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> LatestPointer:
        raw = _parse_object(data, "LATEST.json")
        try:
            pointer = cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        except TypeError as exc:
            raise BundleError(f"LATEST.json is not valid: {exc}") from exc
        if not all(isinstance(getattr(pointer, name), int) for name in ("dim", "base_count", "count", "delta_sequence", "format")):
            raise BundleError("LATEST.json counts are not integers")
        pointer.validate()
        return pointer
