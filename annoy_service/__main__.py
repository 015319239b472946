"""``python -m annoy_service`` (``make index``): make the published index whole and current now.

Without options: heal an unusable LATEST (from the newest bundle that verifies, else
from the table), build from the table on a fresh bucket, else compact the delta.
``--full`` (``make index FULL=1``): rebuild from a full table scan and report the
drift between the table and what was published.
"""

from __future__ import annotations

import argparse
import sys

from annoy_service.builder import SCAN_SEGMENTS
from annoy_service.service import Result, Settings, build_indexer
from catalog.settings import MissingSettingError


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m annoy_service",
        description=__doc__.split("\n\n")[0] + " Settings come from the environment (TRACKS_TABLE, INDEX_BUCKET, "
        "INDEX_TOPIC_ARN, MODEL_ID, INDEX_KEEP_VERSIONS, TRAIN_QUEUE_URL; config/local.env for the local stack).",
    )
    parser.add_argument("--full", action="store_true", help="rebuild from a full table scan and report drift")
    parser.add_argument("--force", action="store_true", help="with --full: publish even if the table matches the index")
    parser.add_argument("--segments", type=int, default=SCAN_SEGMENTS, help="parallel scan segments (default %(default)s)")
    args = parser.parse_args(argv)
    if args.force and not args.full:
        parser.error("--force goes with --full")
    try:
        settings = Settings.from_env()
    except MissingSettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    indexer = build_indexer(settings, progress=_progress)
    outcome = indexer.rebuild_full(force=args.force, segments=args.segments) if args.full else indexer.ensure(segments=args.segments)
    print(outcome.summary())
    return 1 if outcome.result is Result.EMPTY else 0


if __name__ == "__main__":
    sys.exit(main())
