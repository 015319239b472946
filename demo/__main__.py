"""``python -m demo build [--small] [--out DIR]``: render the demo catalogue and print its folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo.catalog import build, default_folder
from demo.render import RenderError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser(
        "build",
        help="render the demo catalogue (cached: a later build reuses the files that still match)",
    )
    build_cmd.add_argument("--small", action="store_true", help="the small catalogue used by the end-to-end test")
    build_cmd.add_argument(
        "--out",
        type=Path,
        help=f"folder to build into (default {default_folder('full')} or {default_folder('small')})",
    )
    build_cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    mode = "small" if args.small else "full"
    try:
        result = build(mode, args.out, progress=not args.quiet)
    except (RenderError, ValueError, OSError) as exc:
        print(f"demo build failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"demo catalogue ({mode}): {result.total} clips, {result.rendered} rendered, {result.reused} reused "
        f"in {result.seconds:.1f} s",
        file=sys.stderr,
    )
    print(result.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
