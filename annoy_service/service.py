"""Keeping the published index current: deltas from stream changes, compaction, full rebuilds, healing.

Shared by the Lambda handler (stream batches and schedules) and the CLI
(``make index``). The cost of a change grows with the change: a stream batch reads
LATEST and the current delta, never the table, and publishes a new small delta.
Compaction folds the delta into a new base from the previous base's vectors. Only a
full rebuild (recovery, the weekly reconcile, a fresh stack) scans the table.
"""

from __future__ import annotations

import copy
import enum
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from aws_lambda_powertools import Logger

from annoy_service.builder import N_TREES, SCAN_SEGMENTS, Progress, ReadyEmbeddings, load_ready_embeddings, search_k_for
from annoy_service.changes import Change, Remove, Upsert
from annoy_service.listeners import ListenerRetrainer
from annoy_service.publisher import Announcer, announce_and_prune
from catalog.bundle import (
    CHUNK_ROWS,
    BaseManifest,
    BaseReader,
    BaseRows,
    BaseRowsReader,
    BuiltFrom,
    BundleError,
    Delta,
    LatestPointer,
    Transform,
    at_base_precision,
    open_rows,
    write_base,
)
from catalog.bundle_store import BundleStore, LatestMovedError, LatestRead
from catalog.keys import new_index_version
from catalog.model import MODEL_ID, configured_model_id
from catalog.settings import env_float, env_int, env_str, require_env
from catalog.storage import TrackTable
from catalog.train_requests import TrainQueue
from catalog.user_models import UserModelStore

logger = Logger(child=True)

DEFAULT_KEEP_VERSIONS = 5
# At most one delta publication per this many seconds; changes arriving meanwhile coalesce.
DEFAULT_DEBOUNCE_S = 30.0
# Compact when the delta holds this many entries + tombstones, or this share of the base.
# 10k keeps the API's exact delta search near 1 ms (bench/RESULTS.md, "bench/api.py").
DEFAULT_COMPACT_ITEMS = 10_000
DEFAULT_COMPACT_SHARE = 0.10
# Conditional writes that lose a race start again from what won, this many times.
PUBLISH_ATTEMPTS = 5


class Result(enum.StrEnum):
    DELTA = "delta"  # a new delta over the same base
    COMPACTED = "compacted"  # a new base from the previous base's vectors plus the delta
    REBUILT = "rebuilt"  # a new base from a full table scan
    UNCHANGED = "unchanged"  # LATEST already serves exactly this
    SUPERSEDED = "superseded"  # another builder published a newer base meanwhile; this one was dropped
    EMPTY = "empty"  # nothing to index


@dataclass(frozen=True)
class Drift:
    """Table against index: what a full rebuild found the published index to be missing or to hold wrongly."""

    missing: int  # ready in the table, not served
    stale: int  # served, not ready in the table (any more)
    changed: int  # served with another embedding or metadata than the table's

    @property
    def total(self) -> int:
        return self.missing + self.stale + self.changed


@dataclass(frozen=True)
class Outcome:
    result: Result
    version: str = ""
    count: int = 0
    dim: int = 0
    delta_size: int = 0
    items_read: int = 0  # Tracks items read (a scan's), never more than a full rebuild's
    skipped: dict[str, int] = field(default_factory=dict)
    drift: Drift | None = None
    healed: str = ""  # why LATEST was rebuilt before anything else, when it was
    seconds: float = 0.0
    pruned: list[str] = field(default_factory=list)
    # The new base searches another space than the one before: listeners asked to be trained again.
    retrain_requested: int = 0

    def summary(self) -> str:
        parts = {
            Result.DELTA: f"published delta {self.version}: {self.count:,} tracks served, delta of {self.delta_size:,}",
            Result.COMPACTED: f"compacted into base {self.version}: {self.count:,} tracks, dim {self.dim}",
            Result.REBUILT: f"rebuilt base {self.version} from the table: {self.count:,} tracks, dim {self.dim}",
            Result.UNCHANGED: f"index {self.version} already serves this; nothing published",
            Result.EMPTY: "no ready embeddings to index; nothing published",
            Result.SUPERSEDED: f"another builder published base {self.version} meanwhile; this build was dropped",
        }
        text = parts[self.result]
        if self.healed:
            text = f"LATEST was unusable ({self.healed}); healed. " + text
        if self.drift is not None:
            text += f"; drift: {self.drift.missing} missing, {self.drift.stale} stale, {self.drift.changed} changed"
        if self.skipped:
            text += f"; skipped {self.skipped}"
        if self.retrain_requested:
            text += f"; {self.retrain_requested} listeners to be trained again in the new searched space"
        return text + f" ({self.seconds:.1f} s)"


@dataclass(frozen=True)
class Settings:
    table: str
    bucket: str
    topic_arn: str
    model_id: str = MODEL_ID
    keep_versions: int = DEFAULT_KEEP_VERSIONS
    debounce_s: float = DEFAULT_DEBOUNCE_S
    compact_items: int = DEFAULT_COMPACT_ITEMS
    compact_share: float = DEFAULT_COMPACT_SHARE
    n_trees: int = N_TREES
    # TrainQueue: listeners are trained again when a new base changes the searched space ("" = nobody is asked).
    train_queue_url: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            table=require_env("TRACKS_TABLE"),
            bucket=require_env("INDEX_BUCKET"),
            topic_arn=require_env("INDEX_TOPIC_ARN"),
            model_id=configured_model_id(),
            keep_versions=env_int("INDEX_KEEP_VERSIONS", DEFAULT_KEEP_VERSIONS),
            debounce_s=env_float("INDEX_DEBOUNCE_S", DEFAULT_DEBOUNCE_S),
            compact_items=env_int("INDEX_COMPACT_ITEMS", DEFAULT_COMPACT_ITEMS),
            compact_share=env_float("INDEX_COMPACT_SHARE", DEFAULT_COMPACT_SHARE),
            n_trees=env_int("INDEX_N_TREES", N_TREES),
            train_queue_url=env_str("TRAIN_QUEUE_URL", ""),
        )

    def compaction_due(self, delta_size: int, base_count: int) -> bool:
        return delta_size > 0 and (delta_size >= self.compact_items or delta_size >= self.compact_share * base_count)


class UnusableIndexError(Exception):
    """LATEST.json, or the bundle it names, cannot be served: the builder heals it."""


@dataclass
class Current:
    """The published state a builder works from: LATEST (with its ETag), its base's manifest and its delta."""

    read: LatestRead
    pointer: LatestPointer
    manifest: BaseManifest
    delta: Delta


def _now_iso(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Indexer:
    """The index's one custodian: every way the published index changes goes through here."""

    def __init__(
        self,
        settings: Settings,
        table: TrackTable,
        store: BundleStore,
        announcer: Announcer,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        workdir: str | Path | None = None,
        progress: Progress | None = None,
        retrainer: ListenerRetrainer | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.store = store
        self.announcer = announcer
        self.retrainer = retrainer
        self.clock = clock
        self.sleep = sleep
        self.workdir = workdir
        self.progress = progress

    # -- reading the published state ----------------------------------------------------

    @contextmanager
    def _scratch(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="annoy-", dir=self.workdir) as tmp:
            yield Path(tmp)

    def _say(self, message: str) -> None:
        if self.progress:
            self.progress(message)

    def current(self, read: LatestRead, scratch: Path) -> Current | None:
        """The published state; None on a fresh bucket; UnusableIndexError when it cannot be served."""
        if not read.exists:
            if self.store.base_versions():
                raise UnusableIndexError("LATEST.json is missing but bundles exist")
            return None
        if read.pointer is None:
            raise UnusableIndexError(read.error)
        pointer = read.pointer
        try:
            manifest = self.store.read_manifest(pointer.base_version, pointer.base_manifest_sha256)
            self.store.check_base_objects(manifest)
            if pointer.delta_sequence:
                delta = self.store.download_delta(pointer.delta_key, scratch / "current-delta.npz", pointer.delta_sha256, manifest.version)
            else:
                delta = Delta(manifest.version, 0, manifest.model, manifest.dim)
        except BundleError as exc:
            raise UnusableIndexError(str(exc)) from exc
        if manifest.model != self.settings.model_id:
            raise UnusableIndexError(f"LATEST serves model {manifest.model}, this builder indexes {self.settings.model_id}")
        return Current(read, pointer, manifest, delta)

    # -- stream batches -----------------------------------------------------------------

    def apply_changes(self, changes: Sequence[Change]) -> Outcome:
        """Publish the changes of a stream batch as a new delta (no table read), then compact if due."""
        started = time.perf_counter()
        healed = ""
        for _ in range(PUBLISH_ATTEMPTS):
            with self._scratch() as scratch:
                read = self.store.read_latest()
                try:
                    current = self.current(read, scratch)
                except UnusableIndexError as exc:
                    healed = str(exc)
                    repaired = self._heal(read, healed)
                    if repaired.result is Result.REBUILT:
                        # The scan read the table after this batch's writes: they are in the new base.
                        return Outcome(**{**repaired.__dict__, "healed": healed, "seconds": time.perf_counter() - started})
                    continue
                try:
                    if current is None:
                        outcome = self._first_base(changes, read, scratch)
                    else:
                        outcome = self._publish_delta(current, changes, scratch)
                except LatestMovedError:
                    logger.info("LATEST.json moved while publishing; starting again from the new one")
                    continue
            if (
                outcome.result is Result.DELTA
                and current is not None
                and self.settings.compaction_due(outcome.delta_size, current.manifest.count)
            ):
                # The delta is out first (the new tracks are recommendable now); compaction follows.
                compacted = self.compact()
                outcome = Outcome(**{**outcome.__dict__, "result": compacted.result, "version": compacted.version,
                                     "count": compacted.count, "delta_size": compacted.delta_size,
                                     "retrain_requested": compacted.retrain_requested})
            return Outcome(**{**outcome.__dict__, "healed": healed, "seconds": time.perf_counter() - started})
        raise LatestMovedError(f"LATEST.json kept moving; gave up after {PUBLISH_ATTEMPTS} attempts")

    def _delta_after(self, current: Current, changes: Sequence[Change]) -> tuple[Delta, dict[str, int]]:
        delta = copy.deepcopy(current.delta)
        skipped: dict[str, int] = {}
        for change in changes:
            if isinstance(change, Remove):
                delta.remove(change.track_id, was_indexed=True)
            elif change.vector.size != current.manifest.dim:
                skipped["other_dim"] = skipped.get("other_dim", 0) + 1
                delta.remove(change.track_id, was_indexed=change.was_indexed)
            else:
                delta.upsert(change.meta, change.vector, change.was_indexed)
        return delta, skipped

    def _debounce(self, published_at: str) -> None:
        last = _epoch(published_at)
        if last is None:
            return
        wait_s = last + self.settings.debounce_s - self.clock()
        if wait_s > 0:
            logger.info("debouncing the delta publication", extra={"wait_s": round(wait_s, 3)})
            self.sleep(wait_s)

    def _publish_delta(self, current: Current, changes: Sequence[Change], scratch: Path) -> Outcome:
        delta, skipped = self._delta_after(current, changes)
        if delta.content_sha256() == current.delta.content_sha256():
            return Outcome(Result.UNCHANGED, current.pointer.version, current.pointer.count, current.manifest.dim,
                           delta_size=delta.size, skipped=skipped)
        self._debounce(current.pointer.published_at)
        delta.sequence = current.delta.sequence + 1
        delta.created_at = _now_iso(self.clock)
        file = self.store.upload_delta(delta, scratch / "delta.npz")
        pointer = current.pointer.with_delta(delta, file, _now_iso(self.clock))
        self.store.write_latest(pointer, current.read.etag)
        pruned = announce_and_prune(self.store, self.announcer, pointer, self.settings.keep_versions)
        self._say(f"published delta {pointer.version} ({delta.size:,} entries and tombstones)")
        return Outcome(Result.DELTA, pointer.version, pointer.count, pointer.dim, delta_size=delta.size,
                       skipped=skipped, pruned=pruned)

    def _first_base(self, changes: Sequence[Change], read: LatestRead, scratch: Path) -> Outcome:
        """A fresh bucket: the batch's tracks become the first base (every ready track passes through the stream)."""
        latest: dict[str, Upsert] = {}
        for change in changes:
            if isinstance(change, Upsert):
                latest[change.track_id] = change
            else:
                latest.pop(change.track_id, None)
        if not latest:
            return Outcome(Result.EMPTY)
        dims = [u.vector.size for u in latest.values()]
        dim = max(set(dims), key=lambda d: (dims.count(d), d))
        kept = [u for u in latest.values() if u.vector.size == dim]
        skipped = {"other_dim": len(latest) - len(kept)} if len(kept) < len(latest) else {}
        rows = [BaseRows([u.track_id for u in kept], [u.meta.to_json() for u in kept], np.stack([u.vector for u in kept]))]
        return self._publish_base(rows, BuiltFrom.COMPACTION, read, None, scratch, skipped=skipped)

    # -- bases ------------------------------------------------------------------------

    def _publish_base(
        self,
        rows: Sequence[BaseRows] | Iterator[BaseRows],
        built_from: BuiltFrom,
        read: LatestRead,
        superseded: Delta | None,
        scratch: Path,
        *,
        carry: Transform | None = None,
        skipped: dict[str, int] | None = None,
        items_read: int = 0,
        drift: Drift | None = None,
        previous: BaseManifest | None = None,
    ) -> Outcome:
        """Write a base, upload it and point LATEST at it; a delta published meanwhile is carried over.

        ``superseded`` is the delta the new base already contains (None when built from
        the table or from nothing). ``previous`` is the base LATEST served until now: when
        the new one is searched in another space, the listeners are trained again.
        """
        version = new_index_version(datetime.fromtimestamp(self.clock(), UTC))
        directory = scratch / version
        manifest = write_base(
            directory, rows, version=version, created_at=_now_iso(self.clock), model=self.settings.model_id,
            n_trees=self.settings.n_trees, search_k=search_k_for, carry=carry, built_from=built_from, skipped=skipped,
            progress=self.progress,
        )
        self._say(f"uploading base {version} ({sum(f.bytes for f in manifest.files.values()) / 1e6:.1f} MB)")
        manifest_sha = self.store.upload_base(directory, manifest)
        pointer = LatestPointer.for_base(manifest, manifest_sha, _now_iso(self.clock))
        etag = read.etag
        for _ in range(PUBLISH_ATTEMPTS):
            try:
                self.store.write_latest(pointer, etag)
                break
            except LatestMovedError:
                pointer, etag = self._carry_over(pointer, manifest, directory, superseded, scratch)
        else:
            raise LatestMovedError(f"LATEST.json kept moving; base {version} was not published")
        pruned = announce_and_prune(self.store, self.announcer, pointer, self.settings.keep_versions)
        retrain = 0
        space = manifest.transform.space
        if self.retrainer is not None and previous is not None and (
            (previous.transform.space, previous.searched_dim) != (space, manifest.searched_dim)
        ):
            self._say(f"searched space {previous.transform.space} -> {space}: asking for the listeners to be trained again")
            retrain = self.retrainer.space_changed(space)
        result = Result.REBUILT if built_from is BuiltFrom.TABLE else Result.COMPACTED
        return Outcome(result, pointer.version, pointer.count, manifest.dim, delta_size=pointer.delta_size,
                       skipped=manifest.skipped, items_read=items_read, drift=drift, pruned=pruned, retrain_requested=retrain)

    def _carry_over(
        self, pointer: LatestPointer, manifest: BaseManifest, directory: Path, superseded: Delta | None, scratch: Path
    ) -> tuple[LatestPointer, str | None]:
        """LATEST moved while the base was built: keep what the winner published since, or give way.

        Only a newer delta over the base this one was built from is carried over (rebased);
        a base published by another builder meanwhile wins, so LATEST never goes backwards.
        """
        read = self.store.read_latest()
        winner = read.pointer
        if winner is None or superseded is None or winner.base_version != superseded.base_version:
            raise LatestMovedError(f"LATEST.json moved to {winner.version if winner else 'something unreadable'}; "
                                   f"base {manifest.version} is dropped")
        if not winner.delta_sequence:
            return pointer, read.etag
        newer = self.store.download_delta(winner.delta_key, scratch / "winner-delta.npz", winner.delta_sha256, winner.base_version)
        reader = open_rows(directory, manifest)
        try:
            rebased = newer.rebased(reader, superseded)
        finally:
            reader.close()
        if not rebased.size:
            return LatestPointer.for_base(manifest, pointer.base_manifest_sha256, _now_iso(self.clock)), read.etag
        rebased.created_at = _now_iso(self.clock)
        file = self.store.upload_delta(rebased, scratch / "rebased-delta.npz")
        base_pointer = LatestPointer.for_base(manifest, pointer.base_manifest_sha256, _now_iso(self.clock))
        return base_pointer.with_delta(rebased, file, _now_iso(self.clock)), read.etag

    def _base_rows(self, reader: BaseRowsReader, delta: Delta) -> Iterator[BaseRows]:
        """The previous base minus what the delta hides, then the delta's entries: no table read."""
        hidden = set(reader.items_of(delta.entries.keys() | delta.tombstones).values())
        raw = reader.raw_vectors()
        for rows in reader.iter_rows():
            keep = [row for row in rows if row[0] not in hidden]
            if keep:
                items = np.fromiter((row[0] for row in keep), dtype=np.int64, count=len(keep))
                yield BaseRows([row[1] for row in keep], [row[2] for row in keep], np.asarray(raw[items]))
        entries = list(delta.entries.values())
        for start in range(0, len(entries), CHUNK_ROWS):
            part = entries[start:start + CHUNK_ROWS]
            yield BaseRows([e.meta.track_id for e in part], [e.meta.to_json() for e in part], np.stack([e.vector for e in part]))

    def _download_base(self, manifest: BaseManifest, scratch: Path) -> BaseReader:
        """Every file of the base, verified against its manifest, and opened (Annoy included)."""
        directory = self._download(manifest, scratch, manifest.base_files)
        return BaseReader.open(directory, manifest, verify=False)

    def _download_rows(self, manifest: BaseManifest, scratch: Path) -> BaseRowsReader:
        """The base's rows only (vectors and metadata, verified): what a new base is built from.
        Its Annoy index, two thirds of its bytes, is never read back."""
        return open_rows(self._download(manifest, scratch, manifest.row_files), manifest)

    def _download(self, manifest: BaseManifest, scratch: Path, names: tuple[str, ...]) -> Path:
        directory = scratch / f"previous-{manifest.version}"
        megabytes = sum(manifest.files[name].bytes for name in names) / 1e6
        self._say(f"downloading {', '.join(names)} of base {manifest.version} ({megabytes:.1f} MB)")
        self.store.download_base(manifest, directory, names)
        return directory

    def compact(self, *, verify: bool = False) -> Outcome:
        """Fold the published delta into a new base built from the previous base's vectors (no table read).

        With ``verify`` the base is downloaded and checked even when the delta is empty, so
        damage no HEAD can see (a same-size tracks.ann) is found and healed.
        """
        started = time.perf_counter()
        with self._scratch() as scratch:
            read = self.store.read_latest()
            try:
                current = self.current(read, scratch)
            except UnusableIndexError as exc:
                outcome = self._heal(read, str(exc))
                return Outcome(**{**outcome.__dict__, "healed": str(exc), "seconds": time.perf_counter() - started})
            if current is None:
                return Outcome(Result.EMPTY)
            unchanged = Outcome(Result.UNCHANGED, current.pointer.version, current.pointer.count, current.manifest.dim)
            if not current.delta.size and not verify:
                return unchanged
            try:
                # verify: every file, so that damage no HEAD sees is found; else the rows are enough.
                reader = (self._download_base if verify else self._download_rows)(current.manifest, scratch)
            except BundleError as exc:
                outcome = self._heal(read, str(exc))
                return Outcome(**{**outcome.__dict__, "healed": str(exc), "seconds": time.perf_counter() - started})
            try:
                if not current.delta.size:
                    return unchanged
                outcome = self._publish_base(self._base_rows(reader, current.delta), BuiltFrom.COMPACTION, read,
                                             current.delta, scratch, carry=reader.transform, previous=current.manifest)
            except LatestMovedError as exc:
                outcome = self._superseded(exc)
            finally:
                reader.close()
        return Outcome(**{**outcome.__dict__, "seconds": time.perf_counter() - started})

    def _superseded(self, exc: LatestMovedError) -> Outcome:
        logger.info("another builder published meanwhile; this build is dropped", extra={"reason": str(exc)})
        read = self.store.read_latest()
        pointer = read.pointer
        return Outcome(Result.SUPERSEDED, pointer.version if pointer else "", pointer.count if pointer else 0,
                       pointer.dim if pointer else 0)

    # -- recovery ---------------------------------------------------------------------

    def _heal(self, read: LatestRead, problem: str) -> Outcome:
        """LATEST cannot be served: publish a good one from the newest bundle if it verifies, else from the table.

        Only the newest base (of this model) is trusted: if it is damaged, what it held
        beyond older bases is known only to the table.
        """
        logger.error("LATEST.json cannot be served; rebuilding it", extra={"problem": problem})
        self._say(f"LATEST.json cannot be served ({problem}); rebuilding it")
        with self._scratch() as scratch:
            try:
                reader = self._newest_base(scratch)
            except BundleError as exc:
                logger.warning("the newest bundle does not verify; rebuilding from the table", extra={"error": str(exc)})
                reader = None
            try:
                if reader is not None:
                    delta = self._newest_good_delta(reader.manifest, scratch)
                    self._say(f"healing from base {reader.manifest.version}" + (f" and its delta {delta.sequence}" if delta.size else ""))
                    return self._publish_base(self._base_rows(reader, delta), BuiltFrom.COMPACTION, read, delta, scratch,
                                              carry=reader.transform)
                self._say("no bundle to trust; rebuilding from the table")
                return self._rebuild(read, None, scratch, force=True)
            except LatestMovedError as exc:
                return self._superseded(exc)
            finally:
                if reader is not None:
                    reader.close()

    def _newest_base(self, scratch: Path) -> BaseReader | None:
        """The newest base of this model, downloaded and verified; None when there is none; BundleError when damaged."""
        for version in reversed(self.store.base_versions()):
            manifest = self.store.read_manifest(version)
            if manifest.model == self.settings.model_id:
                return self._download_base(manifest, scratch)
        return None

    def _newest_good_delta(self, manifest: BaseManifest, scratch: Path) -> Delta:
        for key in reversed(self.store.delta_keys(manifest.version)):
            try:
                return self.store.read_delta_unchecked(key, scratch / "found-delta.npz", manifest.version)
            except BundleError as exc:
                logger.warning("delta does not verify; trying an older one", extra={"key": key, "error": str(exc)})
        return Delta(manifest.version, 0, manifest.model, manifest.dim)

    def rebuild_full(self, *, force: bool = False, segments: int = SCAN_SEGMENTS) -> Outcome:
        """A new base from a full scan of Tracks, with the drift between the table and what was published."""
        started = time.perf_counter()
        with self._scratch() as scratch:
            read = self.store.read_latest()
            try:
                current = self.current(read, scratch)
            except UnusableIndexError as exc:
                logger.error("LATEST.json cannot be served; the full rebuild replaces it", extra={"problem": str(exc)})
                current = None
                force = True
            try:
                outcome = self._rebuild(read, current, scratch, force=force, segments=segments)
            except LatestMovedError as exc:
                outcome = self._superseded(exc)
        return Outcome(**{**outcome.__dict__, "seconds": time.perf_counter() - started})

    def _rebuild(self, read: LatestRead, current: Current | None, scratch: Path, *, force: bool,
                 segments: int = SCAN_SEGMENTS) -> Outcome:
        self._say(f"reading ready embeddings of {self.settings.model_id} from {self.settings.table}")
        ready = load_ready_embeddings(self.table, self.settings.model_id, segments, self.progress)
        if not ready.ids:
            return Outcome(Result.EMPTY, skipped=ready.skipped, items_read=ready.scanned)
        drift, carry = self._drift(current, ready, scratch) if current is not None else (None, None)
        if not force and current is not None and drift is not None and drift.total == 0 and not current.delta.size:
            return Outcome(Result.UNCHANGED, current.pointer.version, current.pointer.count, current.manifest.dim,
                           items_read=ready.scanned, drift=drift, skipped=ready.skipped)
        rows = (
            BaseRows(ready.ids[s:s + CHUNK_ROWS], ready.metas_json[s:s + CHUNK_ROWS], ready.vectors[s:s + CHUNK_ROWS])
            for s in range(0, len(ready.ids), CHUNK_ROWS)
        )
        # The served base's fitted transform is kept as compaction keeps it (until the catalogue doubles):
        # a weekly rebuild that refitted would move the searched space, and every listener's models, each week.
        return self._publish_base(rows, BuiltFrom.TABLE, read, current.delta if current else None, scratch,
                                  carry=carry, skipped=ready.skipped, items_read=ready.scanned, drift=drift,
                                  previous=current.manifest if current else None)

    def _drift(self, current: Current, ready: ReadyEmbeddings, scratch: Path) -> tuple[Drift, Transform]:
        """Compare the table's ready embeddings with what LATEST serves (its base's files and its delta);
        also the served base's fitted transform, read with its rows."""
        positions = {track_id: i for i, track_id in enumerate(ready.ids)}
        vectors = ready.vectors
        metas = ready.metas_json
        served: set[str] = set()
        changed = 0
        reader = self._download_rows(current.manifest, scratch)
        try:
            hidden = current.delta.entries.keys() | current.delta.tombstones
            raw = reader.raw_vectors()
            for rows in reader.iter_rows():
                for item, track_id, meta_json in rows:
                    if track_id in hidden:
                        continue
                    served.add(track_id)
                    i = positions.get(track_id)
                    # The base holds its raw vectors at its own precision (float16 from format 3).
                    if i is not None and (meta_json != metas[i] or not np.array_equal(raw[item], vectors[i].astype(raw.dtype))):
                        changed += 1
            transform = reader.transform
        finally:
            reader.close()
        for track_id, entry in current.delta.entries.items():
            served.add(track_id)
            i = positions.get(track_id)
            if i is not None and (entry.meta.to_json() != metas[i] or not np.array_equal(entry.vector, at_base_precision(vectors[i]))):
                changed += 1
        drift = Drift(missing=len(positions.keys() - served), stale=len(served - positions.keys()), changed=changed)
        return drift, transform

    def ensure(self, *, segments: int = SCAN_SEGMENTS) -> Outcome:
        """``make index``: heal a bad LATEST or base, build from the table on a fresh bucket, else compact the delta."""
        with self._scratch() as scratch:
            read = self.store.read_latest()
            try:
                current = self.current(read, scratch)
            except UnusableIndexError:
                current = None
            else:
                if current is None:
                    started = time.perf_counter()
                    try:
                        outcome = self._rebuild(read, None, scratch, force=True, segments=segments)
                    except LatestMovedError as exc:
                        outcome = self._superseded(exc)
                    return Outcome(**{**outcome.__dict__, "seconds": time.perf_counter() - started})
        return self.compact(verify=True)


def build_indexer(settings: Settings, progress: Progress | None = None) -> Indexer:
    """The Indexer on AWS (or the local stack) from its settings: the Lambda's and ``make index``'s."""
    retrainer = None
    if settings.train_queue_url:
        retrainer = ListenerRetrainer(UserModelStore(settings.bucket), TrainQueue(settings.train_queue_url))
    return Indexer(settings, TrackTable(settings.table), BundleStore(settings.bucket), Announcer(settings.topic_arn),
                   progress=progress, retrainer=retrainer)
