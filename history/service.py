"""What every way in shares: import exports into Listens against the served index, and train and store a listener's models.

Importing (the CLI, POST /users/{userId}/history, the recently-played feed) ends by
sending a TrainQueue request (catalog.train_requests); HistoryTrainFunction answers it
with :func:`train_and_store`. Only training needs scikit-learn, so it is imported there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, BinaryIO

from api.index_cache import IndexCache
from api.served import ServedIndex
from catalog.listens import ListenTable
from catalog.settings import require_env
from catalog.user_models import UserModelStore
from history.importer import CrawlRequest, ImportReport, Progress, import_streams
from history.matching import matcher_for


class NoIndexError(RuntimeError):
    """No index is published yet: plays cannot be matched to tracks with embeddings."""


def require_index(index: ServedIndex | None) -> ServedIndex:
    if index is None:
        raise NoIndexError("no index is published yet; crawl, extract and index the catalogue first (make crawl, extract, index)")
    return index


def served_index() -> ServedIndex:
    return require_index(IndexCache(require_env("INDEX_BUCKET")).current())


def import_history(
    user_id: str,
    sources: Iterable[tuple[str, BinaryIO]],
    table: ListenTable,
    index: ServedIndex,
    *,
    crawl: CrawlRequest | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    return import_streams(user_id, sources, matcher_for(index), table, crawl=crawl, progress=progress)


def train_and_store(
    user_id: str,
    table: ListenTable,
    store: UserModelStore,
    index: ServedIndex,
    now: datetime,
    last_import: dict[str, Any],
) -> dict[str, object]:
    """Train the listener's models from all their Listens and store them; returns the stored profile.

    Without ``last_import`` (trained again for a new searched space, no import) the stored
    profile's last import is kept.
    """
    from history.training import TrainingSettings, train_user

    model, profile = train_user(user_id, list(table.listens_of(user_id)), index, matcher_for(index), now, TrainingSettings.from_env())
    if not last_import:
        last_import = (store.profile(user_id) or {}).get("lastImport") or {}
    if last_import:
        profile["lastImport"] = last_import
    store.put(user_id, model, profile)
    return profile
