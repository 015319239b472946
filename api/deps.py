"""What route handlers depend on, declared with Powertools' ``Depends``.

Routes name a dependency in their signature (``index: Annotated[ServedIndex,
Depends(served_index)]``) and the resolver calls it once per request. Tests
replace any of these with ``app.dependency_overrides[fn] = ...`` instead of
re-importing the handler module or patching its globals. Powertools 3.37 calls
an override with the arguments the original's own dependencies resolved to, so
an override of a function that has dependencies takes ``**_`` (tests use
``api_testkit.override``).

This module and the route modules do not use ``from __future__ import annotations``:
Powertools 3.37 rebuilds each route's dependency tree on every request with
``typing.get_type_hints``, which compiles and evaluates every annotation that is a
string. With real annotations that was 40 % of a warm request's time
(tests/api/test_api_annotations.py keeps it so).

Settings are read from the environment on each request (a few lookups); the
objects built from them (the index cache, table adapters) live as long as the
container, memoised on the settings that define them, so a process whose
environment changes (the local stack, tests) gets fresh ones.
"""


from dataclasses import dataclass
from functools import cache
from typing import Annotated

from aws_lambda_powertools.event_handler import Depends

from api.constants import INDEX_PREFAULT_DEFAULT, INDEX_RECHECK_S_DEFAULT
from api.errors import ApiError
from api.index_cache import IndexCache, default_index_dir
from api.served import ServedIndex
from catalog.settings import env_float, env_str, require_env
from catalog.storage import TrackTable, resource
from catalog.user_models import UserModelStore

_TRUE = frozenset({"1", "true", "yes"})


@dataclass(frozen=True)
class ApiSettings:
    index_bucket: str
    tracks_table: str
    index_dir: str = ""
    index_recheck_s: float = INDEX_RECHECK_S_DEFAULT
    index_prefault: bool = INDEX_PREFAULT_DEFAULT


def settings() -> ApiSettings:
    return ApiSettings(
        index_bucket=require_env("INDEX_BUCKET"),
        tracks_table=require_env("TRACKS_TABLE"),
        index_dir=env_str("INDEX_DIR", default_index_dir()),
        index_recheck_s=env_float("INDEX_RECHECK_S", INDEX_RECHECK_S_DEFAULT),
        index_prefault=env_str("INDEX_PREFAULT", str(INDEX_PREFAULT_DEFAULT)).lower() in _TRUE,
    )


@cache
def _index_cache_for(bucket: str, directory: str, recheck_s: float, prefault: bool) -> IndexCache:
    return IndexCache(bucket, directory=directory or None, recheck_s=recheck_s, prefault=prefault)


def index_cache(config: Annotated[ApiSettings, Depends(settings)]) -> IndexCache:
    """The container's index cache (one per bucket and settings)."""
    return _index_cache_for(config.index_bucket, config.index_dir, config.index_recheck_s, config.index_prefault)


def current_index(cache_: Annotated[IndexCache, Depends(index_cache)]) -> ServedIndex | None:
    """The index being served, or None before the first one is published."""
    return cache_.current()


def served_index(index: Annotated[ServedIndex | None, Depends(current_index)]) -> ServedIndex:
    """The index being served; a 503 before the first one is published."""
    if index is None:
        raise ApiError(503, "index_unavailable", "no recommendation index has been published yet; try again later")
    return index


@cache
def _table_on(endpoint: str | None, name: str) -> TrackTable:
    # Keyed on the endpoint, not the resource object: boto3 service resources without
    # identifiers all compare equal, so a cache keyed on one would outlive a moved endpoint.
    return TrackTable(name, resource("dynamodb").Table(name))


def tracks_table(config: Annotated[ApiSettings, Depends(settings)]) -> TrackTable:
    """The Tracks table; built once per container (building one costs over a millisecond)."""
    return _table_on(resource("dynamodb").meta.client.meta.endpoint_url, config.tracks_table)


def user_store(config: Annotated[ApiSettings, Depends(settings)]) -> UserModelStore:
    """Listeners' models and profiles (users/ in the index bucket), written by the history importer."""
    return UserModelStore(config.index_bucket)
