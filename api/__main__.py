"""``python -m api serve``: the API on a loopback HTTP server that plays API Gateway (payload format 2.0).

Settings come from the environment as in AWS (INDEX_BUCKET, TRACKS_TABLE,
AWS_ENDPOINT_URL for the local stack); ``make serve`` sets them.
"""

from __future__ import annotations

import argparse
import signal
import threading

from infra.http_gateway import serve, shutdown

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the API on 127.0.0.1 behind a local API Gateway")
    serve_cmd.add_argument("--host", default=DEFAULT_HOST)
    serve_cmd.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve_cmd.add_argument("--access-log", action="store_true", help="print one line per request")
    args = parser.parse_args(argv)

    from api.handler import lambda_handler

    server, thread = serve(lambda_handler, host=args.host, port=args.port, quiet=not args.access_log)
    host, port = server.server_address[:2]
    print(f"soundslike web page on http://{host}:{port}/ (API: GET /health, /recommendations?trackId=..., /openapi.json)",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        shutdown(server, thread)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
