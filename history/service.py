"""One import: open the served index, import the files into Listens, retrain, store the models."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from api.index_cache import IndexCache
from api.served import ServedIndex
from catalog.listens import ListenTable, iso_utc
from catalog.settings import require_env
from catalog.user_models import UserModelStore
from history.importer import CrawlRequest, ImportReport, Progress, import_files
from history.matching import CatalogueMatcher
from history.training import TrainingSettings, train_user


class NoIndexError(RuntimeError):
    """No index is published yet: plays cannot be matched to tracks with embeddings."""


def served_index() -> ServedIndex:
    index = IndexCache(require_env("INDEX_BUCKET")).current()
    if index is None:
        raise NoIndexError("no index is published yet; crawl, extract and index the catalogue first (make crawl, extract, index)")
    return index


def matcher_for(index: ServedIndex) -> CatalogueMatcher:
    return CatalogueMatcher(index.meta(track_id) for track_id in index.track_ids())


def import_and_train(
    user_id: str,
    paths: Sequence[Path],
    table: ListenTable,
    store: UserModelStore,
    now: datetime,
    *,
    index: ServedIndex | None = None,
    crawl: CrawlRequest | None = None,
    progress: Progress | None = None,
    settings: TrainingSettings | None = None,
) -> tuple[ImportReport, dict[str, object]]:
    index = index or served_index()
    matcher = matcher_for(index)
    report = import_files(user_id, paths, matcher, table, crawl=crawl, progress=progress)
    model, profile = train_user(user_id, list(table.listens_of(user_id)), index, matcher, now, settings or TrainingSettings.from_env())
    profile["lastImport"] = {"at": iso_utc(now), **report.to_json()}
    store.put(user_id, model, profile)
    return report, profile
