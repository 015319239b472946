"""Crawl throughput: a Spotify playlist and a Deezer playlist against the loopback fakes with
added latency per request, the default concurrency against a sequential crawl (concurrency 1)
in the same run. The Deezer runs go through the crawler's shared request pacer at its default
(DEEZER_MAX_RPS = 8): listing the playlist is paced, its previews come from the CDN.

    python bench/crawl.py [--quick] [--tracks 500] [--latency-ms 50] [--concurrency 8]

Spotify, Deezer and the CDN are the loopback fakes of tests/crawler/crawler_fakes.py;
they run in a child process (as remote servers would, they do not compete with the
crawler for this interpreter's GIL). S3 and DynamoDB are a moto server in another child
process, for the same reason (in-process moto spent more CPU per track than the whole crawl
around it). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "crawler")]

import boto3  # noqa: E402
import psutil  # noqa: E402
from crawler_fakes import (  # noqa: E402
    CLIENT_ID,
    CLIENT_SECRET,
    DeezerList,
    FakeCdn,
    FakeDeezer,
    FakeSpotify,
    playlist_entry,
    spotify_id,
    spotify_track,
)

from crawler.pipeline import build_crawler, crawl_deezer, crawl_playlist  # noqa: E402
from crawler.settings import CRAWL_CONCURRENCY_DEFAULT, CrawlerSettings  # noqa: E402
from infra.resources import template_table_params  # noqa: E402
from infra.stack import MotoServer  # noqa: E402

REGION = "us-east-1"
PLAYLIST = spotify_id(1, "pl")
DEEZER_PLAYLIST = 908622995
SECRET = "bench-spotify"
QUICK_TRACKS = 100
FULL_TRACKS = 500


def build_playlist(spotify: FakeSpotify, deezer: FakeDeezer, cdn: FakeCdn, n: int) -> None:
    """1 in 10 tracks with a Spotify preview_url, 1 in 10 found only by Deezer search, the rest by ISRC."""
    entries = []
    for i in range(n):
        isrc = f"BENCH{i:07d}"
        title, artist = f"Bench Tune {i}", f"Bench Band {i}"
        preview = cdn.preview_url(f"sp-{i}") if i % 10 == 0 else None
        if i % 10 == 5:
            deezer.add(title, artist, isrc="", media=f"search-{i}")
        elif i % 10:
            deezer.add(title, artist, isrc=isrc, media=f"isrc-{i}")
        entries.append(playlist_entry(spotify_track(spotify_id(10_000 + i), title, [artist], isrc=isrc, preview_url=preview)))
    spotify.add_playlist(PLAYLIST, "Bench", entries)
    # The Deezer playlist: its own recordings (other ISRCs), each with a signed preview.
    deezer.playlists[DEEZER_PLAYLIST] = DeezerList("Bench", [
        deezer.add(f"Deezer Tune {i}", f"Deezer Band {i}", isrc=f"DZBEN{i:07d}", media=f"dz-{i}") for i in range(n)
    ])


def serve_fakes(n: int, latency_s: float, conn: multiprocessing.connection.Connection) -> None:
    """Child process: the three fakes with the bench playlist; sends their URLs, serves until told to stop."""
    cdn = FakeCdn(latency_s)
    spotify, deezer = FakeSpotify(latency_s), FakeDeezer(cdn, latency_s)
    build_playlist(spotify, deezer, cdn, n)
    conn.send({"spotify_api": spotify.api_url, "spotify_accounts": spotify.accounts_url, "deezer": deezer.base_url,
               "refresh_token": spotify.issue_refresh_token()})
    conn.recv()
    for server in (spotify, deezer, cdn):
        server.close()


class CpuMeter:
    """CPU seconds (user + system) spent by each process of the run while a crawl runs: the
    crawler (this process), the moto server standing in for S3 and DynamoDB, and the fakes
    standing in for Spotify, Deezer and the CDN. In production the last two are other
    machines; here they share this host's cores with the crawler, which bounds any speedup."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.spent: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(p.cpu_times()[:2]) for name, p in self.processes.items()}

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self.spent = {name: end[name] - self._start[name] for name in end}


def speedup_bound(sequential_s: float, cpu_s: dict[str, float], cores: int) -> float:
    """The most any concurrency could gain here: the concurrent crawl takes at least the busiest
    process's CPU time (one interpreter, one GIL) and at least all CPU time spread over the cores."""
    return sequential_s / max(max(cpu_s.values()), sum(cpu_s.values()) / cores)


def run(settings: CrawlerSettings, table: str, bucket: str, deezer: bool = False, meter: CpuMeter | None = None) -> tuple[float, int]:
    crawler = build_crawler(table, bucket, SECRET, settings)
    started = time.perf_counter()
    with meter or contextlib.nullcontext():
        summary = crawl_deezer(crawler, f"deezer:playlist:{DEEZER_PLAYLIST}") if deezer else crawl_playlist(crawler, PLAYLIST)
    elapsed = time.perf_counter() - started
    if summary.failed or summary.no_preview or summary.errors:
        raise SystemExit(f"bench crawl was not clean: {summary.to_dict()}")
    return elapsed, summary.new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TRACKS} tracks instead of {FULL_TRACKS}")
    parser.add_argument("--tracks", type=int)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=CRAWL_CONCURRENCY_DEFAULT)
    args = parser.parse_args()
    n = args.tracks or (QUICK_TRACKS if args.quick else FULL_TRACKS)
    latency_s = args.latency_ms / 1000

    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION}.items():
        os.environ[name] = value
    moto = MotoServer().start()
    os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
    parent, child = multiprocessing.Pipe()
    fakes = multiprocessing.Process(target=serve_fakes, args=(n, latency_s, child), daemon=True)
    fakes.start()
    urls = parent.recv()
    base = CrawlerSettings(
        spotify_api_url=urls["spotify_api"],
        spotify_accounts_url=urls["spotify_accounts"],
        deezer_api_url=urls["deezer"],
        spotify_preview_hosts=("127.0.0.1",),
        deezer_preview_hosts=("127.0.0.1",),
        allow_http_loopback=True,
    )
    try:
        dynamodb, s3 = boto3.client("dynamodb", region_name=REGION), boto3.client("s3", region_name=REGION)
        for suffix in ("seq", "conc", "dz-seq", "dz-conc"):
            dynamodb.create_table(**template_table_params(f"Tracks-{suffix}"))
            s3.create_bucket(Bucket=f"audio-{suffix}")
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=SECRET,
            SecretString=json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": urls["refresh_token"]}),
        )
        print(f"crawling a {n}-track playlist, {args.latency_ms:.0f} ms added per request ...", file=sys.stderr)
        seq_s, seq_new = run(CrawlerSettings(**{**base.__dict__, "concurrency": 1}), "Tracks-seq", "audio-seq")
        print(f"sequential: {seq_s:.2f} s ({seq_new / seq_s:.1f} tracks/s)", file=sys.stderr)
        conc_s, conc_new = run(CrawlerSettings(**{**base.__dict__, "concurrency": args.concurrency}), "Tracks-conc", "audio-conc")
        print(f"concurrency {args.concurrency}: {conc_s:.2f} s ({conc_new / conc_s:.1f} tracks/s)", file=sys.stderr)
        print(f"crawling a {n}-track Deezer playlist, paced at {base.deezer_max_rps:g} requests/s ...", file=sys.stderr)
        meter = CpuMeter({"crawler": os.getpid(), "storage": moto.process.pid, "fakes": fakes.pid})
        dz_seq_s, dz_seq_new = run(CrawlerSettings(**{**base.__dict__, "concurrency": 1}), "Tracks-dz-seq", "audio-dz-seq", deezer=True, meter=meter)
        dz_cpu_ms = {name: round(1000 * spent / dz_seq_new, 1) for name, spent in meter.spent.items()}
        dz_bound = speedup_bound(dz_seq_s, meter.spent, psutil.cpu_count() or 1)
        print(f"deezer CPU per track (ms): {dz_cpu_ms}; any concurrency here gains at most {dz_bound:.2f}x", file=sys.stderr)
        print(f"deezer sequential: {dz_seq_s:.2f} s ({dz_seq_new / dz_seq_s:.1f} tracks/s)", file=sys.stderr)
        dz_conc_s, dz_conc_new = run(CrawlerSettings(**{**base.__dict__, "concurrency": args.concurrency}), "Tracks-dz-conc", "audio-dz-conc", deezer=True)
        print(f"deezer concurrency {args.concurrency}: {dz_conc_s:.2f} s ({dz_conc_new / dz_conc_s:.1f} tracks/s)", file=sys.stderr)
    finally:
        moto.stop()
    parent.send("stop")
    fakes.join(timeout=10)
    print(json.dumps({
        "tracks": n,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "tracks_per_s": round(conc_new / conc_s, 2),
        "sequential_tracks_per_s": round(seq_new / seq_s, 2),
        "speedup_vs_sequential": round(seq_s / conc_s, 2),
        "concurrent_s": round(conc_s, 2),
        "sequential_s": round(seq_s, 2),
        "deezer_tracks_per_s": round(dz_conc_new / dz_conc_s, 2),
        "deezer_sequential_tracks_per_s": round(dz_seq_new / dz_seq_s, 2),
        "deezer_speedup_vs_sequential": round(dz_seq_s / dz_conc_s, 2),
        "deezer_max_rps": base.deezer_max_rps,
        "deezer_cpu_ms_per_track": dz_cpu_ms,
        "deezer_speedup_bound": round(dz_bound, 2),
        "cores": psutil.cpu_count(),
    }))


if __name__ == "__main__":
    main()
