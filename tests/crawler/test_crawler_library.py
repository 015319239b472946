"""The Spotify user's own library (spotify:me:…) and Spotify's quota, against the loopback fake."""

from __future__ import annotations

import pytest
from crawler_aws import put_secret, table_item
from crawler_fakes import (
    CLIENT_ID,
    CLIENT_SECRET,
    QUOTA_EXCEEDED_BODY,
    Fakes,
    Reply,
    playlist_entry,
    spotify_id,
    spotify_track,
)

from crawler.pipeline import Crawler, crawl_sources


def _tracks(fakes: Fakes, n: int, base: int) -> list[dict]:
    """n Spotify tracks, each with a Deezer preview found by ISRC."""
    tracks = []
    for i in range(n):
        isrc = f"USLIB{base + i:07d}"
        fakes.deezer.add(f"Lib {base + i}", f"Lib Band {base + i}", isrc=isrc)
        tracks.append(spotify_track(spotify_id(base + i), f"Lib {base + i}", [f"Lib Band {base + i}"], isrc=isrc))
    return tracks


def test_saved_tracks_are_paged_50_at_a_time(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.saved = _tracks(crawler_env, 120, 10_000)
    summary = crawl_sources(crawler, ["spotify:me:tracks"])
    assert (summary.new, summary.errors) == (120, [])
    pages = crawler_env.spotify.requests_to(r"^/v1/me/tracks$")
    assert [(p.query["offset"], p.query["limit"]) for p in pages] == [("0", "50"), ("50", "50"), ("100", "50")]
    assert table_item(spotify_id(10_000))["playlists"] == {"spotify:me:tracks"}


def test_top_tracks_are_paged_over_the_medium_term(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.top = _tracks(crawler_env, 60, 20_000)
    summary = crawl_sources(crawler, ["spotify:me:top"])
    assert summary.new == 60
    pages = crawler_env.spotify.requests_to(r"^/v1/me/top/tracks$")
    assert [p.query["offset"] for p in pages] == ["0", "50"] and {p.query["time_range"] for p in pages} == {"medium_term"}


def test_recently_played_reaches_the_last_50_plays(crawler: Crawler, crawler_env: Fakes) -> None:
    played = _tracks(crawler_env, 70, 30_000)
    crawler_env.spotify.recent = played[:30] + played[:5] + played[30:]  # five tracks played twice
    summary = crawl_sources(crawler, ["spotify:me:recent"])
    pages = crawler_env.spotify.requests_to(r"^/v1/me/player/recently-played$")
    assert [p.query["limit"] for p in pages] == ["50"], "one page of 50: Spotify keeps no older plays, next is null"
    # 50 plays kept by Spotify, five of them repeats: 45 distinct tracks.
    assert (summary.new, summary.skipped["duplicate_entry"]) == (45, 5)


def test_my_playlists_crawls_each_one_owned_or_collaborated_and_says_what_it_left(crawler: Crawler, crawler_env: Fakes) -> None:
    spotify = crawler_env.spotify
    owned, shared, followed = spotify_id(1, "pl"), spotify_id(2, "pl"), spotify_id(3, "pl")
    spotify.add_playlist(owned, "Mine", [playlist_entry(t) for t in _tracks(crawler_env, 3, 40_000)])
    spotify.add_playlist(shared, "Ours", [playlist_entry(t) for t in _tracks(crawler_env, 2, 41_000)], owner="friend", collaborative=True)
    spotify.add_playlist(followed, "Theirs", [playlist_entry(t) for t in _tracks(crawler_env, 2, 42_000)], owner="label", metadata_only=True)
    spotify.followed = [owned, shared, followed]
    summary = crawl_sources(crawler, ["spotify:me:playlists"])
    assert (summary.new, summary.errors) == (5, [])
    assert summary.skipped["playlist_not_owned"] == 1
    assert spotify.requests_to(rf"^/v1/playlists/{followed}") == [], "a playlist whose items Spotify withholds is not asked for"
    assert table_item(spotify_id(41_000))["playlists"] == {shared}


def test_library_references_need_a_login(aws: None, crawler_env: Fakes) -> None:
    from crawler_aws import BUCKET, SECRET, TABLE

    from crawler.pipeline import build_crawler
    from crawler.settings import CrawlerSettings

    put_secret({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    crawler = build_crawler(TABLE, BUCKET, SECRET, CrawlerSettings.from_env())
    summary = crawl_sources(crawler, ["spotify:me:tracks"])
    assert summary.new == 0 and summary.errors == ["spotify:me:tracks: spotify:me:tracks is a logged-in user's library: run make spotify-login first"]


def test_a_login_from_before_the_library_scopes_is_asked_to_log_in_again(aws: None, crawler_env: Fakes) -> None:
    from crawler_aws import BUCKET, SECRET, TABLE

    from crawler.pipeline import build_crawler
    from crawler.settings import CrawlerSettings

    refresh = crawler_env.spotify.issue_refresh_token()
    old_scope = "playlist-read-private playlist-read-collaborative"
    put_secret({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": refresh,
                "token_info": {"access_token": "x", "token_type": "Bearer", "expires_at": 0, "scope": old_scope, "refresh_token": refresh}})
    crawler_env.spotify.granted_scope = old_scope
    crawler = build_crawler(TABLE, BUCKET, SECRET, CrawlerSettings.from_env())
    summary = crawl_sources(crawler, ["spotify:me:top"])
    assert "needs the user-top-read scope" in summary.errors[0] and "make spotify-login again" in summary.errors[0]


def test_quota_exceeded_stops_the_run_at_once_with_that_message(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.saved = _tracks(crawler_env, 3, 50_000)
    crawler_env.spotify.top = _tracks(crawler_env, 3, 51_000)
    crawler_env.spotify.fail(r"^/v1/me/tracks$", Reply.json(QUOTA_EXCEEDED_BODY, 429, {"Retry-After": "1"}))
    slept: list[float] = []
    crawler.spotify.sleep = slept.append
    summary = crawl_sources(crawler, ["spotify:me:tracks", "spotify:me:top"])
    assert summary.stopped and summary.new == 0
    assert len(summary.errors) == 1 and "QUOTA_EXCEEDED" in summary.errors[0]
    assert slept == [], "no wait: waiting does not bring the quota back"
    assert len(crawler_env.spotify.requests_to(r"^/v1/me/tracks$")) == 1, "not retried"
    assert crawler_env.spotify.requests_to(r"^/v1/me/top") == [], "the next source is not crawled"


def test_a_plain_429_is_still_waited_out(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.saved = _tracks(crawler_env, 2, 52_000)
    crawler_env.spotify.fail(r"^/v1/me/tracks$", Reply.json({"error": {"status": 429, "message": "API rate limit exceeded"}}, 429, {"Retry-After": "2"}))
    slept: list[float] = []
    crawler.spotify.sleep = slept.append
    summary = crawl_sources(crawler, ["spotify:me:tracks"])
    assert (summary.new, slept) == (2, [2.0])


@pytest.mark.parametrize("ref", ["spotify:me:albums", "spotify:me:"])
def test_unknown_library_kinds_are_refused_with_the_forms(crawler: Crawler, ref: str) -> None:
    summary = crawl_sources(crawler, [ref])
    assert "spotify:me:tracks, spotify:me:playlists, spotify:me:top or spotify:me:recent" in summary.errors[0]
