"""The crawl, one code path for the scheduled Lambda, the CLI and the API's PUT /tracks/{trackId}.

For each accepted track: a conditional put of the Tracks item (status=pending, never over a
pending or ready item), then the audio at previews/{track_id}.{ext} with object metadata.
A track already pending or ready is not downloaded again: its item only gains the playlist.
If the audio upload fails after the item was written, the item is marked failed so that the
next crawl takes the track again (put_pending accepts failed items); if the process dies in
between, the item stays pending, and a pending item older than PENDING_STALE_AFTER_S is
taken again too.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, TypeVar

import requests
from botocore.exceptions import BotoCoreError, ClientError

from catalog.ingest import IngestOutcome, IngestStatus, UpstreamUnavailableError
from catalog.keys import local_track_id, preview_key
from catalog.records import PreviewSource, Source, Status, TrackRecord, utc_now_iso
from catalog.settings import env_str, require_env
from catalog.storage import AudioStore, TrackTable, error_code
from crawler.audio import NotAudioError, sniff
from crawler.deezer import DeezerClient, DeezerError
from crawler.download import Audio, Downloader
from crawler.local import is_local_source, list_source, read_tags
from crawler.previews import NoPreview, PreviewFinder
from crawler.settings import CrawlerSettings
from crawler.spotify import (
    RateLimitedError,
    SpotifyCatalog,
    SpotifyConfigError,
    SpotifyError,
    SpotifyTrack,
    catalog_from_store,
    credential_store,
    is_playlist_ref,
    is_spotify_track_id,
)

logger = logging.getLogger(__name__)

LOCAL_PLAYLIST_PREFIX = "local:"
BATCH_GET_KEYS = 100  # BatchGetItem's limit per request
T = TypeVar("T")


class Outcome(enum.StrEnum):
    NEW = "new"
    KNOWN = "known"
    NO_PREVIEW = "no_preview"
    FAILED = "failed"


@dataclass(frozen=True)
class TrackResult:
    track_id: str
    outcome: Outcome
    reason: str = ""
    title: str = ""
    artists: tuple[str, ...] = ()
    detail: str = ""
    preview_source: str = ""
    status: str | None = None

    @property
    def label(self) -> str:
        who = ", ".join(self.artists)
        return f"{who} - {self.title}" if who else self.title


Progress = Callable[[TrackResult, int, int], None]


@dataclass
class CrawlSummary:
    """What a crawl did, each count by reason; ``errors`` are sources that could not be read."""

    sources: list[str] = field(default_factory=list)
    new: int = 0
    known: int = 0
    new_by_source: Counter[str] = field(default_factory=Counter)
    no_preview: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False

    def add(self, result: TrackResult) -> None:
        if result.outcome is Outcome.NEW:
            self.new += 1
            self.new_by_source[result.preview_source] += 1
        elif result.outcome is Outcome.KNOWN:
            self.known += 1
        elif result.outcome is Outcome.NO_PREVIEW:
            self.no_preview[result.reason] += 1
        else:
            self.failed[result.reason] += 1

    def merge(self, other: CrawlSummary) -> None:
        self.sources += other.sources
        self.new += other.new
        self.known += other.known
        self.new_by_source.update(other.new_by_source)
        self.no_preview.update(other.no_preview)
        self.failed.update(other.failed)
        self.skipped.update(other.skipped)
        self.errors += other.errors
        self.stopped = self.stopped or other.stopped

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "new": self.new,
            "new_by_source": dict(self.new_by_source),
            "known": self.known,
            "no_preview": dict(self.no_preview),
            "failed": dict(self.failed),
            "skipped": dict(self.skipped),
            "errors": list(self.errors),
            "stopped": self.stopped,
        }

    def format(self) -> str:
        def by_reason(counts: Counter[str]) -> str:
            return f"{sum(counts.values())}" + (f" ({', '.join(f'{k}: {v}' for k, v in counts.most_common())})" if counts else "")

        lines = [
            f"new:           {by_reason(self.new_by_source)}",
            f"already known: {self.known}",
            f"no preview:    {by_reason(self.no_preview)}",
            f"failed:        {by_reason(self.failed)}",
            f"skipped:       {by_reason(self.skipped)}",
        ]
        lines += [f"error: {e}" for e in self.errors]
        if self.stopped:
            lines.append("the run stopped early; crawl again later to finish")
        return "\n".join(lines)


class Crawler:
    """The crawl's dependencies. Spotify credentials are read only when a Spotify source comes up."""

    def __init__(
        self,
        table: TrackTable,
        store: AudioStore,
        settings: CrawlerSettings,
        spotify_factory: Callable[[], SpotifyCatalog],
    ) -> None:
        self.table = table
        self.store = store
        self.settings = settings
        self.previews = PreviewFinder(Downloader(settings), DeezerClient(settings))
        self._spotify_factory = spotify_factory

    @cached_property
    def spotify(self) -> SpotifyCatalog:
        return self._spotify_factory()


def build_crawler(table_name: str, bucket: str, spotify_secret_id: str | None, settings: CrawlerSettings | None = None) -> Crawler:
    settings = settings or CrawlerSettings.from_env()
    return Crawler(
        TrackTable(table_name),
        AudioStore(bucket),
        settings,
        lambda: catalog_from_store(settings, credential_store(spotify_secret_id)),
    )


@lru_cache(maxsize=1)
def default_crawler() -> Crawler:
    """The crawler of a Lambda container (crawler and api functions), built once per container."""
    return build_crawler(require_env("TRACKS_TABLE"), require_env("AUDIO_BUCKET"), require_env("SPOTIFY_SECRET_ID"))


def cli_crawler() -> Crawler:
    """The crawler of ``make crawl``: Spotify credentials from Secrets Manager when
    SPOTIFY_SECRET_ID is set (local stack), else from .local/spotify.json."""
    return build_crawler(require_env("TRACKS_TABLE"), require_env("AUDIO_BUCKET"), env_str("SPOTIFY_SECRET_ID", "") or None)


# -- one track --------------------------------------------------------------------------


def stale_before(crawler: Crawler) -> str:
    """Pending items crawled before this instant (ISO 8601 UTC) are crawled again."""
    instant = datetime.now(UTC) - timedelta(seconds=crawler.settings.pending_stale_after_s)
    return instant.isoformat(timespec="seconds").replace("+00:00", "Z")


def is_settled(status: str, crawled_at: str, stale: str) -> bool:
    """Ready, or pending since ``stale`` or later: not to be downloaded again."""
    return status == Status.READY.value or (status == Status.PENDING.value and crawled_at >= stale)


def _known(crawler: Crawler, track_id: str, playlist: str) -> TrackRecord | None:
    """The item when the track is ready or freshly pending (its playlists gain ``playlist``), else None."""
    existing = crawler.table.get(track_id)
    if existing is None or not is_settled(existing.status.value, existing.crawled_at, stale_before(crawler)):
        return None
    if playlist:
        crawler.table.add_playlists(track_id, {playlist})
    return existing


def _store(crawler: Crawler, record: TrackRecord, audio: Audio, playlist: str) -> TrackResult:
    record.audio_key = preview_key(record.track_id, audio.format.ext)
    record.crawled_at = utc_now_iso()
    result = TrackResult(
        record.track_id, Outcome.NEW, title=record.title, artists=tuple(record.artists),
        preview_source=record.preview_source.value if record.preview_source else "", status=Status.PENDING.value,
    )
    if not crawler.table.put_pending(record, stale_before=stale_before(crawler)):
        if playlist:
            crawler.table.add_playlists(record.track_id, {playlist})
        return TrackResult(record.track_id, Outcome.KNOWN, title=record.title, artists=tuple(record.artists))
    try:
        crawler.store.put_preview(record, audio.format.ext, audio.data, audio.format.content_type, playlist)
    except Exception as exc:
        crawler.table.mark_failed(record.track_id, f"audio upload failed: {exc}", fallback=record)
        raise
    return result


def known_statuses(crawler: Crawler, track_ids: Sequence[str]) -> dict[str, str]:
    """track_id -> status of the ids that are pending or ready, in one BatchGetItem per 100 ids
    instead of one GetItem per track."""
    # The Table resource's client takes and returns plain Python values (boto3's DynamoDB transform).
    dynamodb = crawler.table.table.meta.client
    known: dict[str, str] = {}
    stale = stale_before(crawler)
    for start in range(0, len(track_ids), BATCH_GET_KEYS):
        request: dict[str, Any] = {
            crawler.table.name: {
                "Keys": [{"track_id": tid} for tid in track_ids[start:start + BATCH_GET_KEYS]],
                "ProjectionExpression": "track_id, #s, crawled_at",
                "ExpressionAttributeNames": {"#s": "status"},
            }
        }
        for attempt in range(crawler.settings.max_retries + 1):
            response = dynamodb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(crawler.table.name, []):
                status = str(item.get("status", ""))
                if is_settled(status, str(item.get("crawled_at", "")), stale):
                    known[str(item["track_id"])] = status
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            if attempt == crawler.settings.max_retries:
                raise RuntimeError(f"DynamoDB left {len(request[crawler.table.name]['Keys'])} keys unprocessed after retries")
            time.sleep(crawler.settings.backoff_s * 2**attempt)
    return known


def process_spotify_track(crawler: Crawler, track: SpotifyTrack, playlist: str, known_status: str | None = None) -> TrackResult:
    """One track; ``known_status`` when a batch lookup already found it pending or ready."""
    if known_status is not None:
        if playlist:
            crawler.table.add_playlists(track.id, {playlist})
        return TrackResult(track.id, Outcome.KNOWN, title=track.title, artists=track.artists, status=known_status)
    try:
        preview = crawler.previews.find(track)
    except NoPreview as exc:
        return TrackResult(track.id, Outcome.NO_PREVIEW, exc.reason, track.title, track.artists, exc.detail)
    record = TrackRecord(
        track_id=track.id,
        source=Source.SPOTIFY,
        title=track.title,
        artists=list(track.artists),
        album=track.album,
        isrc=track.isrc,
        duration_ms=track.duration_ms,
        playlists={playlist} if playlist else set(),
        preview_source=preview.source,
    )
    return _store(crawler, record, preview.audio, playlist)


def process_local_file(crawler: Crawler, path: Path, playlist: str) -> TrackResult:
    size = path.stat().st_size
    if size > crawler.settings.local_max_bytes:
        return TrackResult("", Outcome.FAILED, "too_large", path.name, detail=f"{path}: {size} bytes > LOCAL_MAX_BYTES")
    data = path.read_bytes()
    track_id = local_track_id(data)
    tags = read_tags(data, path)
    existing = _known(crawler, track_id, playlist)
    if existing is not None:
        return TrackResult(track_id, Outcome.KNOWN, title=tags.title, artists=tags.artists, status=existing.status.value)
    try:
        fmt = sniff(data)
    except NotAudioError as exc:
        return TrackResult(track_id, Outcome.FAILED, "not_audio", tags.title, tags.artists, f"{path}: {exc}")
    record = TrackRecord(
        track_id=track_id,
        source=Source.LOCAL,
        title=tags.title,
        artists=list(tags.artists),
        album=tags.album,
        duration_ms=round(fmt.duration_s * 1000),
        playlists={playlist},
        preview_source=PreviewSource.FILE,
    )
    return _store(crawler, record, Audio(data, fmt), playlist)


def _failure_reason(exc: BaseException) -> str:
    return error_code(exc) or type(exc).__name__


def _run(crawler: Crawler, items: Sequence[T], work: Callable[[T], TrackResult], describe: Callable[[T], str], summary: CrawlSummary, progress: Progress | None) -> None:
    """``work`` on every item, ``crawler.settings.concurrency`` at a time; one item's failure is counted, not raised."""

    def safe(item: T) -> TrackResult:
        try:
            return work(item)
        except Exception as exc:
            logger.exception("crawling %s failed", describe(item))
            return TrackResult("", Outcome.FAILED, _failure_reason(exc), describe(item), detail=str(exc))

    def record(result: TrackResult, done: int) -> None:
        summary.add(result)
        if progress:
            progress(result, done, len(items))

    if crawler.settings.concurrency == 1:
        for done, item in enumerate(items, 1):
            record(safe(item), done)
        return
    with ThreadPoolExecutor(max_workers=crawler.settings.concurrency, thread_name_prefix="crawl") as pool:
        futures = [pool.submit(safe, item) for item in items]
        for done, future in enumerate(as_completed(futures), 1):
            record(future.result(), done)


# -- sources ----------------------------------------------------------------------------


def crawl_playlist(crawler: Crawler, ref: str, progress: Progress | None = None) -> CrawlSummary:
    """One Spotify playlist; raises SpotifyError (PlaylistUnavailableError, RateLimitedError ...)."""
    listing = crawler.spotify.playlist(ref)
    summary = CrawlSummary(sources=[f"spotify:playlist:{listing.playlist_id}"], skipped=Counter(listing.skipped))
    unique: dict[str, SpotifyTrack] = {}
    for track in listing.tracks:
        if track.id in unique:
            summary.skipped["duplicate_entry"] += 1
        unique.setdefault(track.id, track)
    tracks = list(unique.values())
    logger.info("playlist %s (%r): %d tracks, %d entries skipped", listing.playlist_id, listing.name, len(tracks), sum(listing.skipped.values()))
    known = known_statuses(crawler, [t.id for t in tracks])
    _run(
        crawler, tracks, lambda t: process_spotify_track(crawler, t, listing.playlist_id, known.get(t.id)),
        lambda t: f"{t.id} ({t.title})", summary, progress,
    )
    return summary


def crawl_local(crawler: Crawler, ref: str, progress: Progress | None = None) -> CrawlSummary:
    """A folder, an .m3u playlist or one audio file."""
    listing = list_source(ref)
    playlist = LOCAL_PLAYLIST_PREFIX + listing.name
    summary = CrawlSummary(sources=[str(Path(ref).expanduser())], skipped=Counter(listing.skipped))
    _run(crawler, listing.files, lambda p: process_local_file(crawler, p, playlist), str, summary, progress)
    return summary


def crawl_sources(crawler: Crawler, refs: Iterable[str], progress: Progress | None = None) -> CrawlSummary:
    """Playlists and local sources in turn. A source that cannot be read is reported and the
    next one crawled; a Spotify rate limit beyond the cap stops the run."""
    total = CrawlSummary()
    for ref in refs:
        try:
            if is_local_source(ref):
                total.merge(crawl_local(crawler, ref, progress))
            elif is_playlist_ref(ref):
                total.merge(crawl_playlist(crawler, ref, progress))
            else:
                total.errors.append(f"{ref}: not an existing folder, .m3u or audio file, nor a Spotify playlist id, URI or URL")
        except RateLimitedError as exc:
            total.errors.append(str(exc))
            total.stopped = True
            break
        except (SpotifyError, ValueError, OSError) as exc:
            total.errors.append(f"{ref}: {exc}")
    return total


# -- the API's PUT /tracks/{trackId} --------------------------------------------------------


def ingest_spotify_track(crawler: Crawler, track_id: str) -> IngestOutcome:
    """Ingest one Spotify track now. Raises SpotifyError (RateLimitedError, SpotifyConfigError ...)
    when Spotify cannot answer, and storage errors as they come."""
    existing = crawler.table.get(track_id)
    if existing is not None and is_settled(existing.status.value, existing.crawled_at, stale_before(crawler)):
        return IngestOutcome(track_id, IngestStatus.KNOWN, existing.status, f"track is already {existing.status.value}")
    previous = existing.status if existing else None
    if not is_spotify_track_id(track_id):
        return IngestOutcome(track_id, IngestStatus.NOT_FOUND, previous, "not a Spotify track id (22 letters and digits); local tracks come in through make crawl")
    track = crawler.spotify.track(track_id)
    if track is None:
        return IngestOutcome(track_id, IngestStatus.NOT_FOUND, previous, "Spotify does not know this track")
    result = process_spotify_track(crawler, track, "", None)
    if result.outcome is Outcome.NEW:
        return IngestOutcome(track_id, IngestStatus.QUEUED, Status.PENDING, f"preview from {result.preview_source} queued for extraction")
    if result.outcome is Outcome.KNOWN:
        return IngestOutcome(track_id, IngestStatus.KNOWN, Status(result.status or Status.PENDING), "track is already known")
    return IngestOutcome(track_id, IngestStatus.NO_PREVIEW, previous, f"no preview found: {result.detail}")


def ingest_track(track_id: str) -> IngestOutcome:
    """One Spotify track now, with this container's cached crawler (see ingest_spotify_track).

    Raises UpstreamUnavailableError when Spotify, Deezer or AWS cannot answer. Missing or
    refused Spotify credentials are this deployment's fault, not the upstream's, and
    propagate as SpotifyConfigError.
    """
    try:
        return ingest_spotify_track(default_crawler(), track_id)
    except SpotifyConfigError:
        raise
    except (SpotifyError, DeezerError, requests.RequestException, ClientError, BotoCoreError) as exc:
        raise UpstreamUnavailableError(f"ingesting {track_id}: {exc}") from exc
