"""The published index bundle, held in memory once per container.

LATEST.json names the current version. The bundle (tracks.ann + manifest.json)
is downloaded to ephemeral storage, checked (SHA-256, size, dim, item count)
and loaded with Annoy; only then does it replace the one being served, in a
single reference swap. LATEST is read again at most every ``recheck_s``
seconds. A bundle that fails its checks is logged, remembered (so it is not
downloaded again every minute) and the previous one keeps serving.
"""

from __future__ import annotations

import gc
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from annoy import AnnoyIndex
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from api.constants import INDEX_DIR_DEFAULT, INDEX_PREFAULT_DEFAULT, INDEX_RECHECK_S_DEFAULT
from api.served import ServedIndex
from catalog.bundle import METRIC, BundleError, LatestPointer, Manifest, sha256_file
from catalog.keys import ANN_FILENAME, LATEST_KEY, MANIFEST_FILENAME
from catalog.settings import env_float, env_str
from catalog.storage import NOT_FOUND_CODES, client, error_code

logger = Logger(child=True)

# Annoy's angular node: n_descendants (int32) + two int32 children, then the vector.
_ANGULAR_NODE_HEADER_BYTES = 12
_FLOAT32_BYTES = 4
# The version becomes a directory name under INDEX_DIR.
_VERSION_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Parse a large manifest without the cyclic GC, then move it out of the collector's sight.

    A 100k-track manifest is millions of small objects: full collections
    triggered while parsing it slow the load, and later ones would traverse it
    again and again, showing up as p99 spikes. Its objects hold no cycles, so
    reference counting still frees them after a swap.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.freeze()


def verify_ann_file(path: Path, manifest: Manifest) -> None:
    """The .ann file is the one the manifest describes; raise BundleError if not."""
    size = path.stat().st_size
    if size != manifest.ann_bytes:
        raise BundleError(f"tracks.ann has {size} bytes, manifest says {manifest.ann_bytes}")
    digest = sha256_file(path)
    if digest != manifest.ann_sha256:
        raise BundleError(f"tracks.ann SHA-256 is {digest}, manifest says {manifest.ann_sha256}")
    node_bytes = _ANGULAR_NODE_HEADER_BYTES + _FLOAT32_BYTES * manifest.dim
    if size == 0 or size % node_bytes:
        raise BundleError(f"tracks.ann size {size} is not a whole number of dim-{manifest.dim} angular nodes")


def load_bundle(directory: Path, manifest: Manifest, prefault: bool) -> ServedIndex:
    """Verify the files in ``directory`` and map the index; raise BundleError when they do not match."""
    ann_path = directory / ANN_FILENAME
    verify_ann_file(ann_path, manifest)
    index = AnnoyIndex(manifest.dim, METRIC)
    try:
        index.load(str(ann_path), prefault=prefault)
    except OSError as exc:
        raise BundleError(f"Annoy cannot load tracks.ann: {exc}") from exc
    if index.get_n_items() != manifest.count:
        index.unload()
        raise BundleError(f"tracks.ann holds {index.get_n_items()} items, manifest says {manifest.count}")
    try:
        return ServedIndex(manifest, index, directory)
    except BundleError:
        index.unload()
        raise


class IndexCache:
    """The index bundle being served, refreshed from S3 at most every ``recheck_s`` seconds."""

    def __init__(
        self,
        bucket: str,
        *,
        s3: Any | None = None,
        directory: str | Path = INDEX_DIR_DEFAULT,
        recheck_s: float = INDEX_RECHECK_S_DEFAULT,
        prefault: bool = INDEX_PREFAULT_DEFAULT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self._s3 = s3
        self.directory = Path(directory)
        self.recheck_s = recheck_s
        self.prefault = prefault
        self._clock = clock
        self._current: ServedIndex | None = None
        self._checked_at: float | None = None
        self._rejected_version: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, bucket: str) -> IndexCache:
        return cls(
            bucket,
            directory=env_str("INDEX_DIR", INDEX_DIR_DEFAULT),
            recheck_s=env_float("INDEX_RECHECK_S", INDEX_RECHECK_S_DEFAULT),
            prefault=env_str("INDEX_PREFAULT", str(INDEX_PREFAULT_DEFAULT)).lower() in {"1", "true", "yes"},
        )

    @property
    def s3(self) -> Any:
        return self._s3 or client("s3")

    def current(self) -> ServedIndex | None:
        """The index to answer from; re-reads LATEST first when the last check is old enough."""
        checked_at = self._checked_at
        if checked_at is None or self._clock() - checked_at >= self.recheck_s:
            self.refresh()
        return self._current

    def refresh(self) -> ServedIndex | None:
        """Read LATEST and load its bundle if it is new. Never raises: the previous index keeps serving.

        Concurrent callers do not queue behind a download while an index is
        being served; before the first index they wait for it.
        """
        if not self._lock.acquire(blocking=self._current is None):
            return self._current
        try:
            if self._checked_at is not None and self._clock() - self._checked_at < self.recheck_s:
                return self._current  # another thread checked while this one waited
            try:
                self._refresh_locked()
            finally:
                self._checked_at = self._clock()
        finally:
            self._lock.release()
        return self._current

    def _refresh_locked(self) -> None:
        try:
            pointer = self._read_latest()
        except (ClientError, BotoCoreError, BundleError) as exc:
            logger.error("cannot read LATEST.json", extra={"bucket": self.bucket, "error": str(exc)})
            return
        if pointer is None:
            logger.info("no index published yet", extra={"bucket": self.bucket})
            return
        current = self._current
        if (current is not None and current.version == pointer.version) or pointer.version == self._rejected_version:
            return
        started = time.perf_counter()
        try:
            with _collector_paused():
                loaded = self._download_and_load(pointer)
        except BundleError as exc:
            self._rejected_version = pointer.version
            logger.error(
                "index bundle rejected; still serving the previous one",
                extra={"version": pointer.version, "serving": current.version if current else None, "error": str(exc)},
            )
            return
        except (ClientError, BotoCoreError, OSError) as exc:
            logger.error(
                "index bundle could not be fetched; will retry at the next check",
                extra={"version": pointer.version, "serving": current.version if current else None, "error": str(exc)},
            )
            return
        self._current = loaded
        logger.info(
            "index loaded",
            extra={"version": loaded.version, "count": loaded.count, "seconds": round(time.perf_counter() - started, 3)},
        )
        self._remove_other_versions(keep=loaded.directory)

    def _read_latest(self) -> LatestPointer | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=LATEST_KEY)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return LatestPointer.from_json(body)

    def _download_and_load(self, pointer: LatestPointer) -> ServedIndex:
        if not _VERSION_RE.fullmatch(pointer.version) or pointer.version.strip(".") == "":
            raise BundleError("LATEST.json names a version that is not a plain directory name")
        target = self.directory / pointer.version
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            manifest_body = self.s3.get_object(Bucket=self.bucket, Key=pointer.manifest_key)["Body"].read()
            manifest = Manifest.from_json(manifest_body)
            mismatched = [
                name
                for name, theirs in (("version", manifest.version), ("dim", manifest.dim), ("ann_sha256", manifest.ann_sha256))
                if getattr(pointer, name) != theirs
            ]
            if mismatched:
                raise BundleError(f"LATEST.json and manifest.json disagree on {', '.join(mismatched)}")
            (target / MANIFEST_FILENAME).write_bytes(manifest_body)
            self.s3.download_file(self.bucket, pointer.ann_key, str(target / ANN_FILENAME))
            return load_bundle(target, manifest, self.prefault)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    def _remove_other_versions(self, keep: Path) -> None:
        # Old files may still be mapped by a request in flight; unlinking leaves those mappings valid.
        for path in self.directory.iterdir():
            if path != keep and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
