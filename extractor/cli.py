"""``python -m extractor FILE...``: one JSON line per file on stdout.

``{"file", "model", "embedding": [...200 floats], "tags": {...}, "descriptors":
{"tempoBpm", ...}}`` for a file that embeds (descriptors named as in the API), ``{"file", "error": {"type", "message"}}`` for one that does not;
the exit status is 1 when any file failed. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from functools import cache


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m extractor", description="musicnn embeddings, tags and descriptors of audio files"
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="mp3, ogg, wav or flac files")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)

    # TensorFlow's C++ start-up chatter would bury the progress lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from extractor.analysis import analyse_file
    from extractor.audio import UndecodableAudioError
    from extractor.embed import Embedder

    embedder = cache(Embedder)  # built on the first file that decodes: bad files alone need no model
    failed = 0
    for number, path in enumerate(args.files, start=1):
        try:
            line = {"file": path, **analyse_file(embedder, path).to_json()}
            status = "ok"
        except (UndecodableAudioError, OSError) as exc:
            line = {"file": path, "error": {"type": type(exc).__name__, "message": str(exc)}}
            status = f"error: {exc}"
            failed += 1
        print(json.dumps(line, ensure_ascii=False), flush=True)
        if not args.quiet:
            print(f"[{number}/{len(args.files)}] {path}: {status}", file=sys.stderr, flush=True)
    return 1 if failed else 0
