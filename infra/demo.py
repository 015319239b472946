"""`make demo`: the whole pipeline on the embedded local default, in one process.

Renders (or reuses) the demo catalogue, starts the local stack (moto server +
event pump), crawls the catalogue folder, drains ExtractQueue through the
extractor, lets the DynamoDB stream drive the annoy_service, publishes the
index, serves the HTTP API on 127.0.0.1 and prints example recommendations,
a radio station's first tracks and a path between two tracks.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from catalog.keys import local_track_id
from infra.cli import drain_extract_queue, read_state, sign_request, state_dir
from infra.stack import LocalStack, port_open, running_stack

EXAMPLES = 3
# A well-formed Spotify id for the signed-PUT example (with no Spotify credentials locally, its crawl fails later).
DEMO_SPOTIFY_TRACK = "4uLU6hMCjMI75M1A2tKUQC"
EXAMPLE_K = 5
STATION_TRACKS = 5
PATH_LENGTH = 6
PAGE_EXAMPLE_QUERY = "Bach"


def say(message: str) -> None:
    print(f"\n== {message}", file=sys.stderr, flush=True)


def build_catalogue(small: bool) -> Path:
    from demo.catalog import build

    result = build("small" if small else "full", None, progress=True)
    print(f"{result.total} clips in {result.folder} ({result.rendered} rendered, {result.reused} reused)",
          file=sys.stderr)
    return result.folder


def crawl(folder: Path) -> None:
    """What `make crawl PLAYLIST=<folder>` runs."""
    from crawler.__main__ import main as crawl_main

    if crawl_main([str(folder)]) != 0:
        print("some clips were not crawled; the demo goes on with the others", file=sys.stderr)


def publish_index() -> None:
    """What `make index` runs."""
    from annoy_service.__main__ import main as index_main

    if index_main([]) != 0:
        print("no index was published", file=sys.stderr)


def example_queries(folder: Path) -> list[dict[str, Any]]:
    """One query per instrument, as far as there are instruments: (track id, title, instrument)."""
    catalogue = json.loads((folder / "catalogue.json").read_text())
    chosen: dict[str, dict[str, Any]] = {}
    for clip in catalogue["clips"]:
        if clip["instrument"] not in chosen:
            track_id = local_track_id((folder / clip["file"]).read_bytes())
            chosen[clip["instrument"]] = {"trackId": track_id, "title": clip["title"]}
    return list(chosen.values())[:EXAMPLES]


def show_recommendations(api_url: str, queries: list[dict[str, Any]]) -> None:
    for query in queries:
        response = requests.get(f"{api_url}/recommendations",
                                params={"trackId": query["trackId"], "k": EXAMPLE_K}, timeout=30)
        print(f"\nTracks that sound like: {query['title']}  ({query['trackId']})")
        if response.status_code != 200:
            print(f"  HTTP {response.status_code}: {response.text}")
            continue
        for rank, result in enumerate(response.json()["results"], start=1):
            tags = ", ".join(list((result.get("tags") or {}).keys())[:3])
            print(f"  {rank}. {result['similarity']:.3f}  {result['title']}" + (f"   [{tags}]" if tags else ""))


def show_station_and_path(api_url: str, queries: list[dict[str, Any]]) -> None:
    """A station seeded with the first example, its first tracks; a path from the first example to the last."""
    seed, end = queries[0], queries[-1]
    created = requests.post(f"{api_url}/stations", json={"name": "Demo radio", "seeds": [seed["trackId"]]}, timeout=30)
    if created.status_code != 201:
        print(f"\nstation: HTTP {created.status_code}: {created.text}")
        return
    station_id = created.json()["stationId"]
    played = requests.post(f"{api_url}/stations/{station_id}/next", json={"n": STATION_TRACKS}, timeout=30)
    print(f"\nA station seeded with: {seed['title']}  (stationId {station_id})")
    for rank, track in enumerate(played.json().get("tracks", []) if played.status_code == 200 else [], start=1):
        print(f"  {rank}. {track['similarity']:.3f}  {track['title']}")
    path = requests.get(f"{api_url}/path", params={"from": seed["trackId"], "to": end["trackId"], "length": PATH_LENGTH},
                        timeout=30)
    print(f"\nA path from {seed['title']} to {end['title']}")
    if path.status_code != 200:
        print(f"  HTTP {path.status_code}: {path.text}")
        return
    for step, track in enumerate(path.json()["tracks"]):
        print(f"  {step}. {track['similarityToTo']:.3f} to the end  {track['title']}")
    print(f"\nTry it:\n  curl '{api_url}/recommendations?trackId={seed['trackId']}&k=10'\n"
          f"  curl '{api_url}/search?q=bach'\n"
          f"  curl -X POST '{api_url}/stations/{station_id}/next' -d '{{\"n\": 5}}'\n"
          f"  curl '{api_url}/health'")


def page_banner(api_url: str) -> str:
    """The first thing the demo prints once it serves: where to open the web page."""
    return (f"\nOpen the web page: {api_url}/   (try {api_url}/?q={PAGE_EXAMPLE_QUERY} and {api_url}/map)")


def run(port: int, once: bool, small: bool) -> int:
    if read_state() is not None:
        print("note: a background local stack (make up) is running; the demo starts its own.", file=sys.stderr)
    if port_open("127.0.0.1", port):
        print(f"error: 127.0.0.1:{port} is in use; pass PORT=<free port> to make demo", file=sys.stderr)
        return 2
    print(f"soundslike demo: the web page will be at http://127.0.0.1:{port}/ once the steps below are done",
          flush=True)
    say("demo catalogue")
    folder = build_catalogue(small)

    say("local stack (moto server + event pump)")
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with running_stack(log_path=directory / "demo-moto.log") as stack:
        return _run_pipeline(stack, folder, port, once)


def _run_pipeline(stack: LocalStack, folder: Path, port: int, once: bool) -> int:
    print(f"moto server at {stack.endpoint}", file=sys.stderr)
    pump = stack.pump(only={"AnnoyServiceFunction"})
    pump.start()
    gateway = None
    try:
        say(f"crawl {folder}")
        crawl(folder)

        say("extract (S3 -> SQS -> extractor -> Tracks)")
        print(drain_extract_queue(stack).format(), file=sys.stderr)

        say("index (Tracks stream -> annoy_service -> bundle in S3)")
        publish_index()

        say("API")
        from infra.http_gateway import shutdown

        gateway = stack.serve_api(host="127.0.0.1", port=port)
        api_url = f"http://127.0.0.1:{gateway[0].server_address[1]}"
        print(f"serving the HTTP API at {api_url}", file=sys.stderr)
        print(page_banner(api_url), flush=True)
        queries = example_queries(folder)
        show_recommendations(api_url, queries)
        show_station_and_path(api_url, queries)
        show_protected_write(api_url)
        if not once:
            print("\nServing until Ctrl-C.", flush=True)
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        if gateway is not None:
            shutdown(*gateway)
        pump.stop()
    return 0


def show_protected_write(api_url: str) -> None:
    """PUT /tracks/{trackId} needs a SigV4 signature: refused unsigned, accepted (202, queued) signed."""
    url = f"{api_url}/tracks/{DEMO_SPOTIFY_TRACK}"
    say("protected write: PUT /tracks/{trackId} (SigV4)")
    unsigned = requests.put(url, timeout=30)
    print(f"unsigned PUT -> {unsigned.status_code} {unsigned.text}")
    print(f"signed PUT (python -m infra sign-request PUT {url}) ->", end=" ", flush=True)
    sign_request("PUT", url, "", "")
    print(f'or: curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user testing:testing -X PUT {url}')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080, help="loopback port of the HTTP API")
    parser.add_argument("--once", action="store_true", help="print the examples and exit")
    parser.add_argument("--small", action="store_true", help="the small catalogue (quicker)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    code = run(args.port, args.once, args.small)
    print(f"demo finished in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
