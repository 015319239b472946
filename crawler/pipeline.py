"""The crawl, one code path for the scheduled Lambda, the CLI and the API's PUT /tracks/{trackId}.

For each accepted track: a conditional put of the Tracks item (status=pending, never over a
pending or ready item), then the audio at previews/{track_id}.{ext} with object metadata.
A track already pending or ready is not downloaded again: its item only gains the playlist.
If the audio upload fails after the item was written, the item is marked failed so that the
next crawl takes the track again (put_pending accepts failed items); if the process dies in
between, the item stays pending, and a pending item older than PENDING_STALE_AFTER_S is
taken again too.

One recording, one track: an entry is looked up by ISRC (the table's isrc-index) before a
track is crawled, so a recording reached through Spotify and through Deezer is one entry that
gains the other service's id (``spotify_id`` / ``deezer_id``) and playlist, and is neither
downloaded nor extracted twice. Tracks reached only through Deezer get ``dz-{deezer id}``.

A bad entry never stops a crawl: each is counted under a named reason, and a local file that
was read and refused gets a failed item saying why. What does stop it: Spotify's or Deezer's
quota, and storage (S3 / DynamoDB) that stays unreachable for STORAGE_ERROR_LIMIT tracks:
the summary then says ``stopped`` with one error line.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import requests
from botocore.exceptions import BotoCoreError, ClientError

from catalog.crawl_requests import stale_before as pending_stale_before
from catalog.ingest import IngestOutcome, IngestStatus, UpstreamUnavailableError
from catalog.keys import (
    LOCAL_ID_HEX_CHARS,
    LOCAL_ID_PREFIX,
    deezer_number,
    deezer_track_id,
    local_track_id,
    preview_key,
)
from catalog.records import PreviewSource, Source, Status, TrackRecord, utc_now_iso
from catalog.settings import env_str, require_env
from catalog.storage import AudioStore, TrackTable, error_code, is_unreachable
from crawler.audio import NotAudioError, sniff
from crawler.deezer import (
    DeezerClient,
    DeezerError,
    DeezerQuotaError,
    DeezerTrack,
    is_deezer_ref,
    parse_deezer_ref,
)
from crawler.download import Audio, Downloader
from crawler.local import is_local_source, list_source, read_tags
from crawler.previews import NoPreview, PreviewFinder
from crawler.settings import CrawlerSettings
from crawler.spotify import (
    PlaylistListing,
    RateLimitedError,
    SpotifyCatalog,
    SpotifyConfigError,
    SpotifyError,
    SpotifyTrack,
    catalog_from_store,
    credential_store,
    is_library_ref,
    is_playlist_ref,
    is_spotify_track_id,
    parse_library_ref,
)

logger = logging.getLogger(__name__)

LOCAL_PLAYLIST_PREFIX = "local:"
BATCH_GET_KEYS = 100  # BatchGetItem's limit per request
T = TypeVar("T")


class _Listed(Protocol):
    """What a listing's track (SpotifyTrack, DeezerTrack) has that duplicates are found by."""

    @property
    def id(self) -> Any: ...  # noqa: A003 - the services' own name for it

    @property
    def isrc(self) -> str: ...


U = TypeVar("U", bound=_Listed)


class StorageUnreachableError(RuntimeError):
    """S3 / DynamoDB stayed unreachable for STORAGE_ERROR_LIMIT tracks: the run stops."""


def _stops_run(exc: BaseException) -> bool:
    return isinstance(exc, (RateLimitedError, DeezerQuotaError))


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
        # One Deezer client, hence one request pacer, for every worker and every source of the run.
        self.deezer = DeezerClient(settings)
        self.previews = PreviewFinder(Downloader(settings), self.deezer)
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
    return pending_stale_before(crawler.settings.pending_stale_after_s)


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


def _same_recording(crawler: Crawler, isrc: str, own_id: str) -> TrackRecord | None:
    """The entry already holding this recording (same ISRC) under another id, if any."""
    for track_id in crawler.table.find_by_isrc(isrc):
        if track_id != own_id:
            existing = crawler.table.get(track_id)
            if existing is not None:
                return existing
    return None


def _linked(crawler: Crawler, existing: TrackRecord, playlist: str, refs: dict[str, str], title: str, artists: tuple[str, ...]) -> TrackResult | None:
    """KNOWN when ``existing`` is settled: it gains the playlist and the other service's id."""
    if not is_settled(existing.status.value, existing.crawled_at, stale_before(crawler)):
        return None
    crawler.table.link(existing.track_id, {playlist} if playlist else set(), refs)
    return TrackResult(existing.track_id, Outcome.KNOWN, title=title, artists=artists, status=existing.status.value)


def process_spotify_track(crawler: Crawler, track: SpotifyTrack, playlist: str, known_status: str | None = None) -> TrackResult:
    """One track; ``known_status`` when a batch lookup already found it pending or ready."""
    if known_status is not None:
        if playlist:
            crawler.table.add_playlists(track.id, {playlist})
        return TrackResult(track.id, Outcome.KNOWN, title=track.title, artists=track.artists, status=known_status)
    other = _same_recording(crawler, track.isrc, track.id) if track.isrc else None
    if other is not None:
        linked = _linked(crawler, other, playlist, {"spotify_id": track.id}, track.title, track.artists)
        if linked:
            return linked
    try:
        preview = crawler.previews.find(track)
    except NoPreview as exc:
        return TrackResult(track.id, Outcome.NO_PREVIEW, exc.reason, track.title, track.artists, exc.detail)
    record = TrackRecord(
        track_id=other.track_id if other else track.id,
        source=other.source if other else Source.SPOTIFY,
        title=track.title,
        artists=list(track.artists),
        album=track.album,
        isrc=track.isrc,
        duration_ms=track.duration_ms,
        playlists=(other.playlists if other else set()) | ({playlist} if playlist else set()),
        preview_source=preview.source,
        spotify_id=track.id,
        deezer_id=preview.deezer_id or (other.deezer_id if other else ""),
    )
    return _store(crawler, record, preview.audio, playlist)


def _complete(crawler: Crawler, track: DeezerTrack) -> DeezerTrack | None:
    """The track with its ISRC and a preview URL: a list may leave them out, /track/{id} has them."""
    if track.isrc and track.preview_url:
        return track
    full = crawler.deezer.track(track.id)
    if full is None:
        return None
    return DeezerTrack(
        id=track.id, title=track.title or full.title, artist=track.artist or full.artist, preview_url=full.preview_url,
        artists=track.artists or full.artists, album=track.album or full.album, isrc=full.isrc,
        duration_ms=track.duration_ms or full.duration_ms, title_short=track.title_short,
    )


def process_deezer_track(crawler: Crawler, track: DeezerTrack, playlist: str, known_status: str | None = None) -> TrackResult:
    """One Deezer track, under ``dz-{id}`` unless the recording is already in the catalogue."""
    own_id = deezer_track_id(track.id)
    artists = track.artists or ((track.artist,) if track.artist else ())
    if known_status is not None:
        if playlist:
            crawler.table.add_playlists(own_id, {playlist})
        return TrackResult(own_id, Outcome.KNOWN, title=track.title, artists=artists, status=known_status)
    try:
        complete = _complete(crawler, track)
    except DeezerQuotaError:
        raise
    except DeezerError as exc:
        return TrackResult(own_id, Outcome.NO_PREVIEW, "deezer_error", track.title, artists, str(exc))
    if complete is None:
        return TrackResult(own_id, Outcome.NO_PREVIEW, "unavailable", track.title, artists, f"Deezer no longer knows track {track.id}")
    other = _same_recording(crawler, complete.isrc, own_id) if complete.isrc else None
    if other is not None:
        linked = _linked(crawler, other, playlist, {"deezer_id": str(track.id)}, track.title, artists)
        if linked:
            return linked
    try:
        preview = crawler.previews.find_deezer(complete)
    except NoPreview as exc:
        return TrackResult(own_id, Outcome.NO_PREVIEW, exc.reason, track.title, artists, exc.detail)
    record = TrackRecord(
        track_id=other.track_id if other else own_id,
        source=other.source if other else Source.DEEZER,
        title=complete.title,
        artists=list(artists),
        album=complete.album,
        isrc=complete.isrc,
        duration_ms=complete.duration_ms,
        playlists=(other.playlists if other else set()) | ({playlist} if playlist else set()),
        preview_source=PreviewSource.DEEZER,
        spotify_id=other.spotify_id if other else "",
        deezer_id=str(track.id),
    )
    return _store(crawler, record, preview.audio, playlist)


def _path_track_id(path: Path) -> str:
    """The id of a file that cannot be read (no bytes to hash): from its absolute path instead."""
    digest = hashlib.sha256(b"path:" + str(path.absolute()).encode("utf-8", "surrogateescape")).hexdigest()
    return LOCAL_ID_PREFIX + digest[:LOCAL_ID_HEX_CHARS]


def _refused(crawler: Crawler, track_id: str, reason: str, detail: str, path: Path, title: str = "", artists: tuple[str, ...] = ()) -> TrackResult:
    """A local file seen and refused: a failed item says why (GET /tracks/{id} shows it)."""
    record = TrackRecord(
        track_id=track_id, source=Source.LOCAL, status=Status.FAILED, title=title or path.name, artists=list(artists),
        error=f"{reason}: {detail}", crawled_at=utc_now_iso(),
    )
    crawler.table.put_failed(record)
    return TrackResult(track_id, Outcome.FAILED, reason, title or path.name, artists, f"{path}: {detail}")


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return LOCAL_ID_PREFIX + digest.hexdigest()[:LOCAL_ID_HEX_CHARS]


def process_local_file(crawler: Crawler, path: Path, playlist: str) -> TrackResult:
    try:
        size = path.stat().st_size
        if size > crawler.settings.local_max_bytes:
            return _refused(crawler, _hash_file(path), "too_large", f"{size} bytes > LOCAL_MAX_BYTES={crawler.settings.local_max_bytes}", path)
        data = path.read_bytes()
    except OSError as exc:
        return _refused(crawler, _path_track_id(path), "unreadable", exc.strerror or type(exc).__name__, path)
    track_id = local_track_id(data)
    if not data:
        return _refused(crawler, track_id, "empty_file", "the file has no bytes", path)
    tags = read_tags(data, path)
    existing = _known(crawler, track_id, playlist)
    if existing is not None:
        return TrackResult(track_id, Outcome.KNOWN, title=tags.title, artists=tags.artists, status=existing.status.value)
    try:
        fmt = sniff(data)
    except NotAudioError as exc:
        return _refused(crawler, track_id, "not_audio", str(exc), path, tags.title, tags.artists)
    record = TrackRecord(
        track_id=track_id,
        source=Source.LOCAL,
        title=tags.title,
        artists=list(tags.artists),
        album=tags.album,
        duration_ms=round(fmt.duration_s * 1000),
        playlists={playlist},
        preview_source=PreviewSource.FILE,
        local_path=str(path.resolve()),
    )
    if crawler.settings.keep_local_previews:
        record.listen_key = crawler.store.put_listen_copy(track_id, fmt.ext, data, fmt.content_type)
    return _store(crawler, record, Audio(data, fmt), playlist)


def _failure_reason(exc: BaseException) -> str:
    return error_code(exc) or type(exc).__name__


def _run(crawler: Crawler, items: Sequence[T], work: Callable[[T], TrackResult], describe: Callable[[T], str], summary: CrawlSummary, progress: Progress | None) -> None:
    """``work`` on every item, ``crawler.settings.concurrency`` at a time; one item's failure is
    counted, not raised. A quota, or storage unreachable STORAGE_ERROR_LIMIT times, stops the
    run: the items not started are not attempted, and ``summary`` says so (stopped, one error)."""
    stop = threading.Event()
    lock = threading.Lock()
    stopped_by: list[BaseException] = []
    unreachable = [0]

    def safe(item: T) -> TrackResult | None:
        if stop.is_set():
            return None
        try:
            return work(item)
        except Exception as exc:
            if _stops_run(exc):
                with lock:
                    stopped_by.append(exc)
                stop.set()
                return None
            if is_unreachable(exc):
                with lock:
                    unreachable[0] += 1
                    if unreachable[0] >= crawler.settings.storage_error_limit and not stop.is_set():
                        stopped_by.append(StorageUnreachableError(
                            f"storage unreachable ({exc}); stopped after {unreachable[0]} connection errors: "
                            "is the local stack up (make up), or AWS reachable?"
                        ))
                        stop.set()
                logger.debug("crawling %s: storage unreachable: %s", describe(item), exc)
                return TrackResult("", Outcome.FAILED, "storage_unreachable", describe(item), detail=str(exc))
            logger.exception("crawling %s failed", describe(item))
            return TrackResult("", Outcome.FAILED, _failure_reason(exc), describe(item), detail=str(exc))

    def record(result: TrackResult | None, done: int) -> None:
        if result is None:
            return
        summary.add(result)
        if progress:
            progress(result, done, len(items))

    if crawler.settings.concurrency == 1:
        for done, item in enumerate(items, 1):
            record(safe(item), done)
    else:
        with ThreadPoolExecutor(max_workers=crawler.settings.concurrency, thread_name_prefix="crawl") as pool:
            futures = [pool.submit(safe, item) for item in items]
            for done, future in enumerate(as_completed(futures), 1):
                record(future.result(), done)
    if stopped_by:
        summary.errors.append(str(stopped_by[0]))
        summary.stopped = True


# -- sources ----------------------------------------------------------------------------


def _crawl_spotify_listing(crawler: Crawler, listing: PlaylistListing, source: str, progress: Progress | None) -> CrawlSummary:
    summary = CrawlSummary(sources=[source], skipped=Counter(listing.skipped))
    tracks = _unique(listing.tracks, summary)
    logger.info("%s (%r): %d tracks, %d entries skipped", source, listing.name, len(tracks), sum(listing.skipped.values()))
    known = known_statuses(crawler, [t.id for t in tracks])
    _run(
        crawler, tracks, lambda t: process_spotify_track(crawler, t, listing.playlist_id, known.get(t.id)),
        lambda t: f"{t.id} ({t.title})", summary, progress,
    )
    return summary


def crawl_playlist(crawler: Crawler, ref: str, progress: Progress | None = None) -> CrawlSummary:
    """One Spotify playlist; raises SpotifyError (PlaylistUnavailableError, RateLimitedError ...)."""
    listing = crawler.spotify.playlist(ref)
    return _crawl_spotify_listing(crawler, listing, f"spotify:playlist:{listing.playlist_id}", progress)


def crawl_library(crawler: Crawler, ref: str, progress: Progress | None = None) -> CrawlSummary:
    """spotify:me:tracks, spotify:me:top, spotify:me:recent, or spotify:me:playlists (each playlist
    the user owns or collaborates on, crawled in turn; one that cannot be read is reported)."""
    kind = parse_library_ref(ref)
    if kind != "playlists":
        return _crawl_spotify_listing(crawler, crawler.spotify.library(kind), f"spotify:me:{kind}", progress)
    playlists, skipped = crawler.spotify.own_playlists()
    total = CrawlSummary(sources=[f"spotify:me:{kind}"], skipped=skipped)
    for playlist_id, name in playlists:
        try:
            total.merge(crawl_playlist(crawler, playlist_id, progress))
        except RateLimitedError:
            raise
        except SpotifyError as exc:
            total.errors.append(f"spotify:playlist:{playlist_id} ({name!r}): {exc}")
        if total.stopped:
            break
    return total


def _unique(tracks: Sequence[U], summary: CrawlSummary) -> list[U]:
    """One entry per track id and per ISRC: a list may hold the same recording twice (a single and
    its album cut). Crawling both at once would race on the isrc-index, and each would make an
    entry of its own; the first one of the list is crawled, the others count as duplicate_entry."""
    unique: list[U] = []
    ids: set[object] = set()
    isrcs: set[str] = set()
    for track in tracks:
        if track.id in ids or (track.isrc and track.isrc in isrcs):
            summary.skipped["duplicate_entry"] += 1
            continue
        ids.add(track.id)
        if track.isrc:
            isrcs.add(track.isrc)
        unique.append(track)
    return unique


def crawl_deezer(crawler: Crawler, ref: str, progress: Progress | None = None) -> CrawlSummary:
    """A Deezer playlist, album, artist's top tracks, the chart or one track; raises
    DeezerUnavailableError (private, unknown id) and DeezerQuotaError."""
    listing = crawler.deezer.listing(parse_deezer_ref(ref))
    label = listing.ref.label
    summary = CrawlSummary(sources=[label], skipped=Counter(listing.skipped))
    tracks = _unique(listing.tracks, summary)
    logger.info("%s (%r): %d tracks, %d entries skipped", label, listing.name, len(tracks), sum(summary.skipped.values()))
    known = known_statuses(crawler, [deezer_track_id(t.id) for t in tracks])
    playlist = "" if listing.ref.kind == "track" else label
    _run(
        crawler, tracks, lambda t: process_deezer_track(crawler, t, playlist, known.get(deezer_track_id(t.id))),
        lambda t: f"{deezer_track_id(t.id)} ({t.title})", summary, progress,
    )
    return summary


def crawl_local(crawler: Crawler, ref: str, progress: Progress | None = None) -> CrawlSummary:
    """A folder, an .m3u playlist or one audio file."""
    listing = list_source(ref)
    playlist = LOCAL_PLAYLIST_PREFIX + listing.name
    summary = CrawlSummary(sources=[str(Path(ref).expanduser())], skipped=Counter(listing.skipped))
    _run(crawler, listing.files, lambda p: process_local_file(crawler, p, playlist), str, summary, progress)
    return summary


SOURCE_FORMS = (
    "an existing folder, .m3u or audio file; a Spotify playlist id, URI or URL; spotify:me:tracks, "
    "spotify:me:playlists, spotify:me:top or spotify:me:recent; deezer:playlist:ID, deezer:album:ID, "
    "deezer:artist:ID, deezer:track:ID, deezer:chart or a deezer.com URL of one"
)


def crawl_one(crawler: Crawler, ref: str, progress: Progress | None = None) -> CrawlSummary:
    """One reference of any kind; ValueError when it is none of them."""
    if is_local_source(ref):
        return crawl_local(crawler, ref, progress)
    if is_playlist_ref(ref):
        return crawl_playlist(crawler, ref, progress)
    if is_library_ref(ref):
        return crawl_library(crawler, ref, progress)
    if is_deezer_ref(ref):
        return crawl_deezer(crawler, ref, progress)
    raise ValueError(f"not {SOURCE_FORMS}")


def crawl_sources(crawler: Crawler, refs: Iterable[str], progress: Progress | None = None) -> CrawlSummary:
    """Every reference in turn. One that cannot be read is reported and the next one crawled;
    a quota (Spotify's or Deezer's) or unreachable storage stops the run."""
    total = CrawlSummary()
    for ref in refs:
        try:
            total.merge(crawl_one(crawler, ref, progress))
            if total.stopped:
                break
        except (RateLimitedError, DeezerQuotaError) as exc:
            total.errors.append(str(exc))
            total.stopped = True
            break
        except (SpotifyError, DeezerError, ValueError, OSError) as exc:
            total.errors.append(f"{ref}: {exc}")
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            total.errors.append(f"storage unreachable ({exc}): is the local stack up (make up), or AWS reachable?")
            total.stopped = True
            break
    return total


# -- the API's PUT /tracks/{trackId} --------------------------------------------------------


def _ingest_result(track_id: str, result: TrackResult, previous: Status | None) -> IngestOutcome:
    if result.outcome is Outcome.NEW:
        return IngestOutcome(result.track_id, IngestStatus.QUEUED, Status.PENDING, f"preview from {result.preview_source} queued for extraction")
    if result.outcome is Outcome.KNOWN:
        note = "" if result.track_id == track_id else f" as {result.track_id} (the same recording)"
        return IngestOutcome(result.track_id, IngestStatus.KNOWN, Status(result.status or Status.PENDING), f"track is already known{note}")
    return IngestOutcome(track_id, IngestStatus.NO_PREVIEW, previous, f"no preview found: {result.detail}")


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
    return _ingest_result(track_id, process_spotify_track(crawler, track, "", None), previous)


def ingest_deezer_track(crawler: Crawler, track_id: str) -> IngestOutcome:
    """Ingest one Deezer-only track (``dz-{id}``) now; raises DeezerError when Deezer cannot answer."""
    existing = crawler.table.get(track_id)
    if existing is not None and is_settled(existing.status.value, existing.crawled_at, stale_before(crawler)):
        return IngestOutcome(track_id, IngestStatus.KNOWN, existing.status, f"track is already {existing.status.value}")
    previous = existing.status if existing else None
    number = deezer_number(track_id)
    track = crawler.deezer.track(number) if number is not None else None
    if track is None:
        return IngestOutcome(track_id, IngestStatus.NOT_FOUND, previous, "Deezer does not know this track")
    return _ingest_result(track_id, process_deezer_track(crawler, track, "", None), previous)


def ingest_track(track_id: str) -> IngestOutcome:
    """One track now (a Spotify id, or ``dz-`` and a Deezer id), with this container's cached crawler.

    Raises UpstreamUnavailableError when Spotify, Deezer or AWS cannot answer. Missing or
    refused Spotify credentials are this deployment's fault, not the upstream's, and
    propagate as SpotifyConfigError.
    """
    try:
        if deezer_number(track_id) is not None:
            return ingest_deezer_track(default_crawler(), track_id)
        return ingest_spotify_track(default_crawler(), track_id)
    except SpotifyConfigError:
        raise
    except (SpotifyError, DeezerError, requests.RequestException, ClientError, BotoCoreError) as exc:
        raise UpstreamUnavailableError(f"ingesting {track_id}: {exc}") from exc
