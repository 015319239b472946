"""``python -m annoy_service``: build the index from Tracks and publish it now (``make index``)."""

from __future__ import annotations

import argparse
import sys

from annoy_service.builder import SCAN_SEGMENTS
from annoy_service.publisher import Announcer, IndexStore
from annoy_service.service import Result, Settings, rebuild_and_publish
from catalog.settings import MissingSettingError
from catalog.storage import TrackTable


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m annoy_service",
        description="Build the Annoy index of every ready embedding in Tracks and publish it. "
        "Settings come from the environment (TRACKS_TABLE, INDEX_BUCKET, INDEX_TOPIC_ARN, MODEL_ID, "
        "INDEX_KEEP_VERSIONS; config/local.env for the local stack).",
    )
    parser.add_argument("--force", action="store_true", help="publish a new version even if LATEST holds the same embeddings")
    parser.add_argument("--segments", type=int, default=SCAN_SEGMENTS, help="parallel scan segments (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except MissingSettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _progress(f"reading ready embeddings of {settings.model_id} from {settings.table}")
    outcome = rebuild_and_publish(
        TrackTable(settings.table),
        IndexStore(settings.bucket),
        Announcer(settings.topic_arn),
        settings.model_id,
        settings.keep_versions,
        force=args.force,
        segments=args.segments,
        progress=_progress,
    )
    print(outcome.summary())
    return 1 if outcome.result is Result.EMPTY else 0


if __name__ == "__main__":
    sys.exit(main())
