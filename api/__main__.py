"""``python -m api``: serve the HTTP API locally, or ask a running one what sounds like a file.

``serve`` runs the API on a loopback HTTP server that plays API Gateway (payload
format 2.0), every route of template.yaml answered by its own function's
handler; settings come from the environment as in AWS (INDEX_BUCKET,
TRACKS_TABLE, AWS_ENDPOINT_URL for the local stack); ``make serve`` sets them.

``similar FILE`` uploads an audio file to POST /recommendations/by-audio of a
running API and prints the titles and similarities it answers.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
SIMILAR_TIMEOUT_S = 120.0

# Content-Type by file extension; the API sniffs the bytes either way.
_CONTENT_TYPES = {".mp3": "audio/mpeg", ".wav": "audio/wav", ".ogg": "audio/ogg", ".flac": "audio/flac"}


def serve_command(args: argparse.Namespace) -> int:
    from api.by_audio_handler import lambda_handler as by_audio_handler
    from api.handler import lambda_handler
    from infra.http_gateway import serve, shutdown

    server, thread = serve(
        lambda_handler,
        host=args.host,
        port=args.port,
        quiet=not args.access_log,
        also={"ByAudioFunction": by_audio_handler},
    )
    host, port = server.server_address[:2]
    print(
        f"soundslike web page on http://{host}:{port}/ (API: GET /health, /recommendations?trackId=..., "
        "POST /recommendations/by-audio, /openapi.json)",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        shutdown(server, thread)
    return 0


def format_similar(answer: dict[str, Any]) -> str:
    query = answer.get("query", {})
    lines = [f"Tracks that sound like the first {query.get('durationUsedMs', 0) / 1000:g} s of the file "
             f"(index {answer.get('indexVersion')}):"]
    for rank, result in enumerate(answer.get("results", []), start=1):
        artists = ", ".join(result.get("artists") or [])
        lines.append(f"{rank:3d}. {result['similarity']:.3f}  {result.get('title') or result['trackId']}"
                     + (f" - {artists}" if artists else ""))
    return "\n".join(lines)


def similar_command(args: argparse.Namespace) -> int:
    import requests

    path = Path(args.file)
    try:
        body = path.read_bytes()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    content_type = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    url = args.url.rstrip("/") + "/recommendations/by-audio"
    try:
        response = requests.post(
            url, params={"k": args.k}, data=body, headers={"content-type": content_type}, timeout=SIMILAR_TIMEOUT_S
        )
    except requests.RequestException as exc:
        print(f"cannot reach the API at {args.url}: {exc.__class__.__name__} (is `make serve` running?)",
              file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        print(f"the API answered {response.status_code} without JSON", file=sys.stderr)
        return 1
    if response.status_code != 200:
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        print(f"{response.status_code} {error.get('code', '')}: {error.get('message', '')}", file=sys.stderr)
        return 1
    print(json.dumps(answer) if args.json else format_similar(answer))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the API on 127.0.0.1 behind a local API Gateway")
    serve_cmd.add_argument("--host", default=DEFAULT_HOST)
    serve_cmd.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve_cmd.add_argument("--access-log", action="store_true", help="print one line per request")
    serve_cmd.set_defaults(run=serve_command)
    similar_cmd = commands.add_parser("similar", help="the catalogue's tracks that sound like an audio file")
    similar_cmd.add_argument("file", help="an mp3, wav, ogg or flac file (its first 30 s are used)")
    similar_cmd.add_argument("--k", type=int, default=10, help="how many tracks (1 to 100)")
    similar_cmd.add_argument("--url", default=DEFAULT_URL, help=f"the API's base URL (default {DEFAULT_URL})")
    similar_cmd.add_argument("--json", action="store_true", help="print the API's JSON answer")
    similar_cmd.set_defaults(run=similar_command)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
