"""``python -m history --user NAME FILE...`` (make history): import exports, then have HistoryTrainFunction train the listener's models.

Training is not done here: the import ends with a TrainQueue request, which the local
stack's pump (as Lambda on AWS) hands to HistoryTrainFunction; this command waits for the
profile it stores and prints the models' figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from catalog.ingest import IngestOutcome, UpstreamUnavailableError
from catalog.listens import InvalidUserIdError, ListenTable, iso_utc, validate_user_id
from catalog.settings import MissingSettingError, env_float, require_env
from catalog.train_requests import TrainQueue
from catalog.user_models import UserModelStore
from history.exports import MalformedExportError
from history.importer import CrawlStoppedError, ImportReport, import_files
from history.matching import matcher_for
from history.service import NoIndexError, served_index

TRAIN_WAIT_S_DEFAULT = 600.0
TRAIN_POLL_S = 1.0
CRAWL_PROGRESS_EVERY = 10


class TrainingTimeoutError(RuntimeError):
    """HistoryTrainFunction stored no profile for this import in time."""


class CrawlNow:
    """make history CRAWL=1: each unmatched Spotify track ingested now, most played first, with a
    line every ``every`` tracks. Spotify, Deezer or AWS failing (or the deployment's Spotify
    credentials missing) stops the crawls with the reason, not the import: its plays are stored and
    training is still asked for; importing again crawls the tracks still unmatched."""

    def __init__(self, ingest: Callable[[str], IngestOutcome], every: int = CRAWL_PROGRESS_EVERY, out: TextIO | None = None) -> None:
        self.ingest = ingest
        self.every = every
        self.out = out or sys.stderr
        self.outcomes: Counter[str] = Counter()

    def __call__(self, track_id: str) -> IngestOutcome:
        from crawler.spotify import SpotifyConfigError

        done = sum(self.outcomes.values())
        try:
            outcome = self.ingest(track_id)
        except (UpstreamUnavailableError, SpotifyConfigError) as exc:
            raise CrawlStoppedError(f"after {done} tracks, at {track_id}: {exc}") from exc
        self.outcomes[outcome.status.value] += 1
        if (done + 1) % self.every == 0:
            print(f"crawling unmatched tracks: {done + 1} done ({', '.join(f'{n} {s}' for s, n in sorted(self.outcomes.items()))})",
                  file=self.out, flush=True)
        return outcome


def _progress(name: str, read: int, report: ImportReport) -> None:
    print(f"{name}: {read} records read; {report.added} plays added, {report.matched} matched so far", file=sys.stderr, flush=True)


def wait_for_training(
    store: UserModelStore, user_id: str, import_at: str, timeout_s: float, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, object]:
    """The profile HistoryTrainFunction stored for the import made at ``import_at``."""
    deadline = clock() + timeout_s
    while True:
        profile = store.profile(user_id)
        if profile is not None and (profile.get("lastImport") or {}).get("at") == import_at:
            return profile
        if clock() >= deadline:
            raise TrainingTimeoutError(
                f"HistoryTrainFunction stored no models within {timeout_s:.0f} s (is the local stack running: make up?); "
                "the plays are stored and the request waits in TrainQueue"
            )
        sleep(TRAIN_POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m history", description=__doc__)
    parser.add_argument("--user", required=True, help="the listener's id (letters, digits, '_' or '-')")
    parser.add_argument("--crawl", action="store_true", help="ask the crawler to ingest unmatched Spotify tracks")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="StreamingHistory_music_*.json or Streaming_History_Audio_*.json")
    args = parser.parse_args(argv)
    try:
        user_id = validate_user_id(args.user)
        missing = [str(p) for p in args.files if not p.is_file()]
        if missing:
            print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
            return 2
        crawl = None
        if args.crawl:
            from crawler.pipeline import ingest_track

            crawl = CrawlNow(ingest_track)
        table = ListenTable(require_env("LISTENS_TABLE"))
        store = UserModelStore(require_env("INDEX_BUCKET"))
        queue = TrainQueue(require_env("TRAIN_QUEUE_URL"))
        index = served_index()
        import_at = iso_utc(datetime.now(UTC))
        report = import_files(user_id, args.files, matcher_for(index), table, crawl=crawl, progress=_progress)
        print(report.format(), flush=True)
        queue.send(user_id, {"at": import_at, **report.to_json()})
        print("training requested (TrainQueue -> HistoryTrainFunction); waiting for the models ...", file=sys.stderr, flush=True)
        profile = wait_for_training(store, user_id, import_at, env_float("HISTORY_TRAIN_WAIT_S", TRAIN_WAIT_S_DEFAULT))
    except (InvalidUserIdError, MissingSettingError, NoIndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MalformedExportError as exc:
        print(f"error: {exc}; the plays before it are stored, and importing again after fixing the file adds only the rest", file=sys.stderr)
        return 1
    except TrainingTimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    models = profile["models"]
    print(f"{profile['sessions']} sessions, {len(profile['tastes'])} tastes; affinity {models['affinity']}; continuation {models['continuation']}")  # type: ignore[index,arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
