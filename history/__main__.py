"""``python -m history --user NAME FILE...`` (make history): import exports, then train the listener's models."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from catalog.listens import InvalidUserIdError, ListenTable, validate_user_id
from catalog.settings import MissingSettingError, require_env
from catalog.user_models import UserModelStore
from history.exports import MalformedExportError
from history.importer import ImportReport
from history.service import NoIndexError, import_and_train


def _progress(name: str, read: int, report: ImportReport) -> None:
    print(f"{name}: {read} records read; {report.added} plays added, {report.matched} matched so far", file=sys.stderr, flush=True)


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

            crawl = ingest_track
        table = ListenTable(require_env("LISTENS_TABLE"))
        store = UserModelStore(require_env("INDEX_BUCKET"))
        report, profile = import_and_train(user_id, args.files, table, store, datetime.now(UTC), crawl=crawl, progress=_progress)
    except (InvalidUserIdError, MissingSettingError, NoIndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MalformedExportError as exc:
        print(f"error: {exc}; the plays before it are stored, and importing again after fixing the file adds only the rest", file=sys.stderr)
        return 1
    print(report.format())
    models = profile["models"]
    print(f"{profile['sessions']} sessions, {len(profile['tastes'])} tastes; affinity {models['affinity']}; continuation {models['continuation']}")  # type: ignore[index]
    return 0


if __name__ == "__main__":
    sys.exit(main())
