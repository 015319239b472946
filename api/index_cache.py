"""The published index, held once per container and swapped whole.

LATEST.json names a base and a delta. A new base is downloaded into its own
folder, verified (SHA-256 and size of every file it serves from) and opened:
Annoy maps tracks.ann, SQLite opens meta.sqlite, nothing is parsed whole. A delta
is small: downloaded, checked against the checksum LATEST names and against the
base it claims to extend, then held in memory. Only a complete, verified pair
replaces the one being served, in a single reference swap. LATEST is read again
at most every ``recheck_s`` seconds.

What fails its checks is logged and remembered (so it is not downloaded again
every check), and the previous pair keeps serving. A container with nothing to
serve yet whose LATEST is unusable falls back to the newest bundle in the bucket
that verifies. The folder holds the bundle being served and at most the one being
downloaded; the cache deletes only folders it created (they carry a marker file).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from api.constants import INDEX_PREFAULT_DEFAULT, INDEX_RECHECK_S_DEFAULT
from api.served import ServedIndex
from catalog.bundle import SERVING_FILES, BaseManifest, BaseReader, BundleError, Delta, LatestPointer
from catalog.bundle_store import BundleStore
from catalog.keys import delta_key

logger = Logger(child=True)

LAMBDA_INDEX_DIR = "/tmp/soundslike-index"
LOCAL_INDEX_DIRNAME = "api-index"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Written into every folder the cache creates: the only folders it ever deletes.
OWNED_MARKER = ".soundslike-index-cache"
_PARTIAL_SUFFIX = ".partial"
# What can go wrong fetching or opening a bundle; none of it may reach a request.
_FETCH_ERRORS = (ClientError, BotoCoreError, OSError, sqlite3.Error)


def default_index_dir() -> str:
    """/tmp in AWS Lambda (its only writable disk); the local stack's state folder elsewhere."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return LAMBDA_INDEX_DIR
    state = os.environ.get("SOUNDSLIKE_STATE_DIR", "").strip() or str(REPO_ROOT / ".local")
    return str(Path(state) / LOCAL_INDEX_DIRNAME)


class IndexCache:
    """The base + delta being served, refreshed from S3 at most every ``recheck_s`` seconds."""

    def __init__(
        self,
        bucket: str,
        *,
        s3: Any | None = None,
        directory: str | Path | None = None,
        recheck_s: float = INDEX_RECHECK_S_DEFAULT,
        prefault: bool = INDEX_PREFAULT_DEFAULT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self._s3 = s3
        self.directory = Path(directory if directory is not None else default_index_dir())
        self.recheck_s = recheck_s
        self.prefault = prefault
        self._clock = clock
        self._current: ServedIndex | None = None
        self._checked_at: float | None = None
        self._rejected: set[str] = set()  # served versions (base or base+delta) that failed their checks
        self._rejected_bases: set[str] = set()
        self._lock = threading.Lock()

    @property
    def store(self) -> BundleStore:
        return BundleStore(self.bucket, self._s3)

    def current(self) -> ServedIndex | None:
        """The index to answer from; re-reads LATEST first when the last check is old enough."""
        checked_at = self._checked_at
        if checked_at is None or self._clock() - checked_at >= self.recheck_s:
            self.refresh()
        return self._current

    def refresh(self, *, force: bool = False) -> ServedIndex | None:
        """Read LATEST and load what it names if it is new. Never raises: the previous pair keeps serving.

        Concurrent callers do not queue behind a download while an index is
        being served; before the first index they wait for it. ``force`` reads
        LATEST even when it was read less than ``recheck_s`` ago, and waits its turn.
        """
        if not self._lock.acquire(blocking=force or self._current is None):
            return self._current
        try:
            if not force and self._checked_at is not None and self._clock() - self._checked_at < self.recheck_s:
                return self._current  # another thread checked while this one waited
            try:
                self._refresh_locked()
            except Exception:  # a bug here must not take the serving index (or /health) down with it
                logger.exception("index refresh failed; still serving the previous index")
            finally:
                self._checked_at = self._clock()
        finally:
            self._lock.release()
        return self._current

    # -- one check ------------------------------------------------------------------------

    def _refresh_locked(self) -> None:
        store = self.store
        try:
            read = store.read_latest()
        except _FETCH_ERRORS as exc:
            logger.error("cannot read LATEST.json", extra={"bucket": self.bucket, "error": str(exc)})
            return
        pointer = read.pointer
        if pointer is None:
            if read.exists:
                logger.error("LATEST.json is not a usable pointer", extra={"bucket": self.bucket, "error": read.error})
                self._fall_back(store)
            else:
                logger.info("no index published yet", extra={"bucket": self.bucket})
            return
        current = self._current
        if (current is not None and current.version == pointer.version) or pointer.version in self._rejected:
            return
        started = time.perf_counter()
        try:
            loaded = self._load(store, pointer)
        except BundleError as exc:
            self._rejected.add(pointer.version)
            logger.error(
                "index bundle rejected; still serving the previous one",
                extra={"version": pointer.version, "serving": current.version if current else None, "error": str(exc)},
            )
            self._fall_back(store)
            return
        except _FETCH_ERRORS as exc:
            logger.error(
                "index bundle could not be fetched; will retry at the next check",
                extra={"version": pointer.version, "serving": current.version if current else None, "error": str(exc)},
            )
            return
        self._swap(loaded, time.perf_counter() - started)

    def _swap(self, loaded: ServedIndex, seconds: float) -> None:
        self._current = loaded
        logger.info(
            "index loaded",
            extra={"version": loaded.version, "count": loaded.count, "delta": loaded.delta_sequence, "seconds": round(seconds, 3)},
        )
        self._remove_other_bases(keep=loaded.base.directory)

    def _fall_back(self, store: BundleStore) -> None:
        """With nothing to serve yet, serve the newest bundle in the bucket that verifies."""
        if self._current is not None:
            return
        try:
            versions = list(reversed(store.base_versions()))
        except _FETCH_ERRORS as exc:
            logger.error("cannot list index bundles to fall back to", extra={"error": str(exc)})
            return
        for version in versions:
            if version in self._rejected_bases:
                continue
            started = time.perf_counter()
            try:
                base = self._open_base(store, store.read_manifest(version))
            except (BundleError, *_FETCH_ERRORS) as exc:
                self._rejected_bases.add(version)
                logger.warning("bundle does not verify; trying an older one", extra={"version": version, "error": str(exc)})
                continue
            delta = self._newest_good_delta(store, base)
            version_served = base.manifest.version if delta is None else f"{base.manifest.version}+{delta.sequence}"
            logger.warning("LATEST.json is unusable; serving the newest bundle that verifies", extra={"version": version_served})
            self._swap(ServedIndex(base, delta, version_served), time.perf_counter() - started)
            return

    def _newest_good_delta(self, store: BundleStore, base: BaseReader) -> Delta | None:
        version = base.manifest.version
        for key in reversed(store.delta_keys(version)):
            path = base.directory / "found-delta.npz"
            try:
                return store.read_delta_unchecked(key, path, version)
            except (BundleError, *_FETCH_ERRORS) as exc:
                logger.warning("delta does not verify; trying an older one", extra={"key": key, "error": str(exc)})
            finally:
                path.unlink(missing_ok=True)
        return None

    # -- loading ------------------------------------------------------------------------

    def _load(self, store: BundleStore, pointer: LatestPointer) -> ServedIndex:
        current = self._current
        if current is not None and current.base_version == pointer.base_version:
            base = current.base  # only the delta changed: the base stays mapped
        else:
            if pointer.base_version in self._rejected_bases:
                raise BundleError(f"base {pointer.base_version} failed its checks before")
            try:
                base = self._open_base(store, store.read_manifest(pointer.base_version, pointer.base_manifest_sha256))
            except BundleError:
                self._rejected_bases.add(pointer.base_version)
                raise
        if base.manifest.model != pointer.model or base.manifest.dim != pointer.dim:
            raise BundleError("LATEST.json and manifest.json disagree on model or dim")
        delta = None
        if pointer.delta_sequence:
            path = base.directory / f"delta-{pointer.delta_sequence}.npz"
            try:
                delta = store.download_delta(pointer.delta_key, path, pointer.delta_sha256, base.manifest.version)
            finally:
                path.unlink(missing_ok=True)
            if delta.key != delta_key(base.manifest.version, pointer.delta_sequence):
                raise BundleError("the delta's own sequence is not the one LATEST.json names")
        return ServedIndex(base, delta, pointer.version)

    def _open_base(self, store: BundleStore, manifest: BaseManifest) -> BaseReader:
        """Download (into a partial folder), verify and open a base; the folder is renamed only once it verifies."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / manifest.version
        partial = self.directory / (manifest.version + _PARTIAL_SUFFIX)
        for path in (final, partial):
            self._remove_owned(path)
        partial.mkdir()
        (partial / OWNED_MARKER).touch()
        try:
            store.download_base(manifest, partial, SERVING_FILES)
            partial.rename(final)
            return BaseReader.open(final, manifest, verify=False, prefault=self.prefault)
        except BaseException:
            self._remove_owned(partial)
            self._remove_owned(final)
            raise

    @staticmethod
    def _remove_owned(path: Path) -> None:
        if path.is_dir() and (path / OWNED_MARKER).is_file():
            shutil.rmtree(path, ignore_errors=True)

    def _remove_other_bases(self, keep: Path) -> None:
        # Files still mapped by a request in flight stay valid after unlinking.
        for path in self.directory.iterdir():
            if path != keep:
                self._remove_owned(path)
