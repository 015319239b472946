"""Import export files into Listens: stream, match, skip what is stored, write in batches.

Nothing read before a failure is lost: plays are written in batches as they are read,
and the batch in hand is written before a malformed record's error (which names the
file and the record) reaches the caller. Running the import again after fixing the
file adds only what is missing, because every play's key is deterministic
(:attr:`catalog.listens.Listen.sort_key`) and stored keys are read first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from catalog.listens import SKIP_BELOW_MS, Listen, ListenTable
from history.exports import ExportPlay, iter_plays
from history.matching import CatalogueMatcher, spotify_id_of

WRITE_BATCH = 500
PROGRESS_EVERY = 5000

# (file name, records read in it so far, the report so far)
Progress = Callable[[str, int, "ImportReport"], None]
# Asks the crawler to ingest one Spotify track (crawler.pipeline.ingest_track, or a test's counter).
CrawlRequest = Callable[[str], object]


class CrawlStoppedError(Exception):
    """Raised by a CrawlRequest to stop asking (an upstream is down): the import itself stands."""


@dataclass
class ImportReport:
    files: int = 0
    records: int = 0
    plays: int = 0
    added: int = 0
    already_imported: int = 0
    matched: int = 0
    unmatched: int = 0
    skips: int = 0
    not_music: int = 0
    crawl_requested: int = 0
    # Plays the recently-played feed had stored, replaced by this export's record of the same play.
    feed_plays_replaced: int = 0
    crawl_stopped: str = ""  # why the crawl requests stopped before the last unmatched track
    # Plays per Spotify track id the catalogue did not match: what a crawl request may ask for.
    unmatched_spotify_plays: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, int]:
        return {
            "files": self.files,
            "records": self.records,
            "plays": self.plays,
            "added": self.added,
            "alreadyImported": self.already_imported,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "skips": self.skips,
            "notMusic": self.not_music,
            "crawlRequested": self.crawl_requested,
            "feedPlaysReplaced": self.feed_plays_replaced,
        }

    def unmatched_by_plays(self) -> list[str]:
        """The unmatched Spotify track ids, most played first (ties by id): the order crawl requests go in."""
        return sorted(self.unmatched_spotify_plays, key=lambda track_id: (-self.unmatched_spotify_plays[track_id], track_id))

    def format(self) -> str:
        return (
            f"{self.files} file(s), {self.records} records: {self.plays} plays ({self.skips} skips under "
            f"{SKIP_BELOW_MS // 1000} s), {self.added} added, {self.already_imported} already imported; "
            f"{self.matched} matched the catalogue, {self.unmatched} did not "
            f"({len(self.unmatched_spotify_plays)} distinct Spotify tracks); {self.not_music} non-music entries left out; "
            f"{self.crawl_requested} tracks queued for crawling"
            + (f"; {self.feed_plays_replaced} plays stored by the recently-played feed replaced by the export's record" if self.feed_plays_replaced else "")
            + (f"; crawling stopped: {self.crawl_stopped}" if self.crawl_stopped else "")
        )


def to_listen(user_id: str, play: ExportPlay, matcher: CatalogueMatcher) -> Listen:
    return Listen(
        user_id=user_id,
        ended_at=play.ended_at,
        artist=play.artist,
        title=play.title,
        ms_played=play.ms_played,
        track_id=matcher.match(play.spotify_uri, play.artist, play.title),
        spotify_uri=play.spotify_uri,
        skipped=play.skipped or play.ms_played < SKIP_BELOW_MS,
        reason_end=play.reason_end,
        from_feed=play.from_feed,
    )


def _track_keys(listen: Listen) -> list[str]:
    """What identifies the played track: the Spotify URI when there is one, and the names."""
    names = f"n:{listen.artist.casefold()}\x1f{listen.title.casefold()}"
    return [f"u:{listen.spotify_uri}", names] if listen.spotify_uri else [names]


def _overlap_ms(a: Listen, b: Listen) -> float:
    return (min(a.ended_at, b.ended_at) - max(a.started_at, b.started_at)).total_seconds() * 1000


class FeedTwins:
    """Stored plays by track, to find the feed's record and an export's record of one play.

    The feed gives a play's end (``played_at``) and the track's duration, the export the end and
    the length listened: their keys differ. Two records are one play when they are of the same
    track, one from the feed and one not, and their time spans overlap by at least half the
    shorter one. A listener cannot play one track twice at once, and a repeat starts where the
    last play ended, so repeats are never taken for one play; the rule also holds if Spotify's
    ``played_at`` (documented only as "the date and time the track was played") is off by up
    to half a track.
    """

    def __init__(self, stored: Iterable[Listen]) -> None:
        # By kind first: an export's plays are looked up among the feed's only, and the other way
        # round, so an export over a long history never walks its own kind's repeats of a track.
        self._by_track: dict[tuple[bool, str], list[Listen]] = {}
        for listen in stored:
            for key in _track_keys(listen):
                self._by_track.setdefault((listen.from_feed, key), []).append(listen)

    def twin(self, listen: Listen) -> Listen | None:
        """The stored play of the other kind (feed or not) that is ``listen``'s play, if any."""
        best, best_overlap = None, 0.0
        for stored in self._by_track.get((not listen.from_feed, _track_keys(listen)[0]), []):
            overlap = _overlap_ms(stored, listen)
            if overlap >= 0.5 * min(stored.ms_played, listen.ms_played) and overlap > best_overlap:
                best, best_overlap = stored, overlap
        return best

    def remove(self, listen: Listen) -> None:
        for key in _track_keys(listen):
            self._by_track[(listen.from_feed, key)].remove(listen)


def _opened(paths: Sequence[Path]) -> Iterator[tuple[str, BinaryIO]]:
    """Each file, opened only when its turn comes and closed before the next."""
    for path in paths:
        with path.open("rb") as stream:
            yield str(path), stream


def import_files(
    user_id: str,
    paths: Sequence[Path],
    matcher: CatalogueMatcher,
    table: ListenTable,
    *,
    crawl: CrawlRequest | None = None,
    progress: Progress | None = None,
    progress_every: int = PROGRESS_EVERY,
) -> ImportReport:
    """Import every file in order; MalformedExportError after storing what came before the bad record."""
    with closing(_opened(paths)) as sources:
        return import_streams(user_id, sources, matcher, table, crawl=crawl, progress=progress, progress_every=progress_every)


class _Importer:
    """One import's state: the keys already stored, the batch being filled, the report."""

    def __init__(self, user_id: str, matcher: CatalogueMatcher, table: ListenTable) -> None:
        self.user_id = user_id
        self.matcher = matcher
        self.table = table
        self.report = ImportReport()
        stored = list(table.listens_of(user_id))
        self.stored = {listen.sort_key for listen in stored}
        self.twins = FeedTwins(stored)
        self.pending: list[Listen] = []
        self.replaced: list[str] = []  # keys of feed plays that an export's record replaces

    def add(self, play: ExportPlay | None) -> None:
        report = self.report
        report.records += 1
        if play is None:
            report.not_music += 1
            return
        listen = to_listen(self.user_id, play, self.matcher)
        report.plays += 1
        report.skips += listen.skipped
        if listen.track_id:
            report.matched += 1
        else:
            report.unmatched += 1
            if spotify := spotify_id_of(listen.spotify_uri):
                report.unmatched_spotify_plays[spotify] += 1
        twin = self.twins.twin(listen)
        if twin is not None and not listen.from_feed:
            # The export's record (its real length, skip and reason) replaces the feed's. A crash
            # after the write and before the delete is healed by importing the export again.
            self.twins.remove(twin)
            self.replaced.append(twin.sort_key)
            report.feed_plays_replaced += 1
        if listen.sort_key in self.stored or (twin is not None and listen.from_feed):
            report.already_imported += 1
            return
        self.stored.add(listen.sort_key)
        self.pending.append(listen)
        report.added += 1
        if len(self.pending) + len(self.replaced) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        self.table.put_all(self.pending, self.replaced, self.user_id)
        self.pending.clear()
        self.replaced.clear()

    def finish(self, crawl: CrawlRequest | None) -> ImportReport:
        if crawl is not None:
            for spotify in self.report.unmatched_by_plays():
                try:
                    crawl(spotify)
                except CrawlStoppedError as exc:
                    self.report.crawl_stopped = str(exc)
                    break
                self.report.crawl_requested += 1
        return self.report


def import_streams(
    user_id: str,
    sources: Iterable[tuple[str, BinaryIO]],
    matcher: CatalogueMatcher,
    table: ListenTable,
    *,
    crawl: CrawlRequest | None = None,
    progress: Progress | None = None,
    progress_every: int = PROGRESS_EVERY,
) -> ImportReport:
    """Import (name, seekable binary stream) exports in order, as :func:`import_files` does files
    (POST /users/{userId}/history passes its request body as one stream named "body")."""
    importer = _Importer(user_id, matcher, table)
    try:
        for name, stream in sources:
            importer.report.files += 1
            read = 0
            for _, play in iter_plays(stream, name):
                importer.add(play)
                read += 1
                if progress and read % progress_every == 0:
                    progress(name, read, importer.report)
            if progress:
                progress(name, read, importer.report)
    finally:
        importer.flush()
    return importer.finish(crawl)


def import_plays(user_id: str, plays: Iterable[ExportPlay], matcher: CatalogueMatcher, table: ListenTable) -> ImportReport:
    """Import plays that come as plays, not in a file (the recently-played feed): the same matching, keys and counts."""
    importer = _Importer(user_id, matcher, table)
    try:
        for play in plays:
            importer.add(play)
    finally:
        importer.flush()
    return importer.finish(None)
