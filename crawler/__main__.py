"""``python -m crawler PLAYLIST_OR_FOLDER...`` (make crawl), ``python -m crawler login`` (make spotify-login),
``python -m crawler listener-login USER`` (make listener-login) and ``python -m crawler feed`` (make feed)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from catalog.settings import MissingSettingError, env_str, require_env
from crawler.pipeline import Outcome, TrackResult, cli_crawler, crawl_sources
from crawler.settings import CrawlerSettings
from crawler.spotify import SpotifyConfigError, credential_store, login

_MARKS = {Outcome.NEW: "+", Outcome.KNOWN: "=", Outcome.NO_PREVIEW: "-", Outcome.FAILED: "!"}


def _progress(result: TrackResult, done: int, total: int) -> None:
    why = f" [{result.reason}]" if result.reason else ""
    print(f"[{done}/{total}] {_MARKS[result.outcome]} {result.outcome.value:<10} {result.track_id or '-'}  {result.label}{why}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler",
        description="Crawl sources into the pipeline: Spotify playlists (id, spotify:playlist: URI or "
        "open.spotify.com URL), the Spotify user's library (spotify:me:tracks|playlists|top|recent), Deezer "
        "(deezer:playlist:ID, deezer:album:ID, deezer:artist:ID, deezer:track:ID, deezer:chart, deezer.com URLs) "
        "and local folders / .m3u files; 'login' stores a Spotify refresh token; 'listener-login USER' links a "
        "listener's Spotify account for the recently-played feed; 'feed' runs that feed once; 'reextract' fetches "
        "the audio of every ready track another model embedded again, for the configured model's extractor.",
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="references of any kind above, 'login', 'listener-login USER', 'feed' or 'reextract'")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.sources == ["login"]:
            store = credential_store(env_str("SPOTIFY_SECRET_ID", "") or None)
            login(CrawlerSettings.from_env(), store, read_line=input, write=print)
            return 0
        if args.sources[0] == "listener-login" and len(args.sources) == 2:
            from crawler.listeners import ListenerStore, parameter_name

            app = credential_store(env_str("SPOTIFY_SECRET_ID", "") or None)
            login(CrawlerSettings.from_env(), ListenerStore(parameter_name(require_env("LISTENERS_PATH"), args.sources[1]), app),
                  read_line=input, write=print)
            return 0
        if args.sources == ["feed"]:
            from crawler.feed_handler import run_feed
            from history.service import NoIndexError

            try:
                feed = run_feed()
            except NoIndexError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(json.dumps(feed.to_dict(), indent=2))
            return 1 if feed.errors else 0
        if args.sources == ["reextract"]:
            from catalog.model import configured_model_id
            from crawler.reextract import reextract

            again = reextract(cli_crawler(), configured_model_id(), lambda line: print(line, file=sys.stderr, flush=True))
            print(again.format())
            return 0 if not again.unreachable else 1
        summary = crawl_sources(cli_crawler(), args.sources, _progress)
    except (SpotifyConfigError, MissingSettingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.format())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
