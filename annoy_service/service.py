"""One rebuild: read the ready embeddings, build, publish; shared by the Lambda handler and the CLI."""

from __future__ import annotations

import enum
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from annoy_service.builder import (
    N_TREES,
    SCAN_SEGMENTS,
    Progress,
    build_index,
    content_fingerprint,
    load_ready_embeddings,
    search_k_for,
)
from annoy_service.publisher import Announcer, IndexStore, publish
from catalog.bundle import Manifest, Projection, sha256_file
from catalog.keys import ANN_FILENAME, new_index_version
from catalog.model import configured_model_id
from catalog.records import utc_now_iso
from catalog.settings import env_int, require_env
from catalog.storage import TrackTable

DEFAULT_KEEP_VERSIONS = 5


class Result(enum.StrEnum):
    PUBLISHED = "published"
    UNCHANGED = "unchanged"  # LATEST was built from exactly these embeddings and settings
    EMPTY = "empty"  # no ready embedding of the model: nothing to build


@dataclass(frozen=True)
class Outcome:
    result: Result
    version: str
    count: int
    dim: int
    skipped: dict[str, int] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    read_s: float = 0.0
    build_s: float = 0.0
    publish_s: float = 0.0
    ann_bytes: int = 0

    def summary(self) -> str:
        if self.result is Result.EMPTY:
            return f"no ready embeddings to index; nothing published (skipped {self.skipped})"
        if self.result is Result.UNCHANGED:
            return f"index {self.version} already holds these {self.count:,} embeddings; nothing published"
        return (
            f"published index {self.version}: {self.count:,} tracks, dim {self.dim}, "
            f"{self.ann_bytes / 1e6:.1f} MB; read {self.read_s:.1f}s, build {self.build_s:.1f}s, "
            f"publish {self.publish_s:.1f}s; skipped {self.skipped}; pruned {len(self.pruned)} old versions"
        )


def rebuild_and_publish(
    table: TrackTable,
    store: IndexStore,
    announcer: Announcer,
    model_id: str,
    keep: int,
    *,
    force: bool = False,
    n_trees: int = N_TREES,
    search_k: int | None = None,
    segments: int = SCAN_SEGMENTS,
    workdir: str | Path | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Build the index of every ready embedding of ``model_id`` and publish it.

    ``search_k`` (the manifest's default for readers) follows the item count unless given.
    Skips the build when LATEST was built from the same input (unless ``force``),
    so a redelivered stream batch publishes nothing new. Any failure raises before
    LATEST.json is written, leaving readers on the previous version.
    """
    started = time.perf_counter()
    ready = load_ready_embeddings(table, model_id, segments, progress)
    read_s = time.perf_counter() - started
    if not ready.ids:
        return Outcome(Result.EMPTY, version="", count=0, dim=0, skipped=ready.skipped, read_s=read_s)
    count, dim = ready.vectors.shape
    search_k = search_k if search_k is not None else search_k_for(count)
    fingerprint = content_fingerprint(model_id, ready.ids, ready.vectors, n_trees, search_k)
    latest = store.read_latest()
    if not force and latest is not None and latest.content_sha256 == fingerprint:
        return Outcome(Result.UNCHANGED, latest.version, count, dim, skipped=ready.skipped, read_s=read_s)

    version = new_index_version()
    with tempfile.TemporaryDirectory(prefix="annoy-", dir=workdir) as tmp:
        ann_path = Path(tmp) / ANN_FILENAME
        started = time.perf_counter()
        build_index(ready.vectors, n_trees, ann_path, progress=progress).unload()
        build_s = time.perf_counter() - started
        manifest = Manifest(
            version=version,
            created_at=utc_now_iso(),
            model=model_id,
            dim=dim,
            n_trees=n_trees,
            search_k=search_k,
            count=count,
            ann_sha256=sha256_file(ann_path),
            ann_bytes=ann_path.stat().st_size,
            track_ids=ready.ids,
            tracks=ready.metadata,
            skipped=ready.skipped,
            content_sha256=fingerprint,
            projection=Projection.fit(ready.vectors).to_dict(),
        )
        if progress:
            progress(f"uploading index {version} ({manifest.ann_bytes / 1e6:.1f} MB)")
        started = time.perf_counter()
        published = publish(store, announcer, manifest, ann_path, keep)
        publish_s = time.perf_counter() - started
    return Outcome(
        Result.PUBLISHED,
        version,
        count,
        dim,
        skipped=ready.skipped,
        pruned=published.pruned,
        read_s=read_s,
        build_s=build_s,
        publish_s=publish_s,
        ann_bytes=manifest.ann_bytes,
    )


@dataclass(frozen=True)
class Settings:
    table: str
    bucket: str
    topic_arn: str
    model_id: str
    keep_versions: int

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            table=require_env("TRACKS_TABLE"),
            bucket=require_env("INDEX_BUCKET"),
            topic_arn=require_env("INDEX_TOPIC_ARN"),
            model_id=configured_model_id(),
            keep_versions=env_int("INDEX_KEEP_VERSIONS", DEFAULT_KEEP_VERSIONS),
        )
