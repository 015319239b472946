"""Spotify as it behaves in 2026, through spotipy, against the loopback fake."""

from __future__ import annotations

import time

import pytest
from crawler_aws import read_secret
from crawler_fakes import CLIENT_ID, CLIENT_SECRET, Fakes, Reply, playlist_entry, spotify_id, spotify_track

from crawler.pipeline import Crawler
from crawler.spotify import (
    ITEMS_FIELDS,
    PlaylistUnavailableError,
    RateLimitedError,
    SpotifyCatalog,
    SpotifyError,
    auth_manager,
    parse_playlist_ref,
)

PLAYLIST = spotify_id(42, "pl")


def _tracks(n: int) -> list[dict]:
    return [spotify_track(spotify_id(1000 + i), f"Song {i}", [f"Artist {i}"], isrc=f"USRC1{i:07d}") for i in range(n)]


@pytest.mark.parametrize(
    "ref",
    [
        PLAYLIST,
        f"spotify:playlist:{PLAYLIST}",
        f"spotify:user:someone:playlist:{PLAYLIST}",
        f"https://open.spotify.com/playlist/{PLAYLIST}?si=abc123",
        f"https://open.spotify.com/intl-de/playlist/{PLAYLIST}",
        f"open.spotify.com/playlist/{PLAYLIST}",
    ],
)
def test_playlist_ids_uris_and_urls_are_accepted(ref: str) -> None:
    assert parse_playlist_ref(ref) == PLAYLIST


@pytest.mark.parametrize("ref", ["", "abc", f"spotify:track:{PLAYLIST}", f"https://example.com/playlist/{PLAYLIST}"])
def test_anything_else_is_refused_with_the_accepted_forms(ref: str) -> None:
    with pytest.raises(ValueError, match="expected a 22-character id"):
        parse_playlist_ref(ref)


def test_items_are_paged_50_at_a_time_with_a_fields_filter_following_next(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Mine", [playlist_entry(t) for t in _tracks(120)])
    listing = crawler.spotify.playlist(PLAYLIST)
    assert [t.id for t in listing.tracks] == [spotify_id(1000 + i) for i in range(120)]
    pages = crawler_env.spotify.requests_to(r"/items$")
    assert [p.query["offset"] for p in pages] == ["0", "50", "100"]
    assert all(p.query["limit"] == "50" for p in pages)
    assert pages[0].query["fields"] == ITEMS_FIELDS
    first = listing.tracks[0]
    assert (first.title, first.artists, first.isrc, first.album) == ("Song 0", ("Artist 0",), "USRC10000000", "Album")


def test_entries_read_item_then_track_and_skip_local_files_episodes_and_unavailable(crawler: Crawler, crawler_env: Fakes) -> None:
    tracks = _tracks(3)
    episode = {"type": "episode", "id": spotify_id(5, "ep"), "name": "A podcast"}
    unplayable = {**spotify_track(spotify_id(6), "Gone", ["X"]), "is_playable": False}
    local = {**spotify_track(spotify_id(7), "Mine.mp3", ["Me"]), "id": None, "is_local": True}
    entries = [
        playlist_entry(tracks[0]),
        playlist_entry(tracks[1], legacy=True),
        {"added_at": "2026-01-01T00:00:00Z", "is_local": False, "item": tracks[2], "track": None},
        playlist_entry(local, is_local=True),
        playlist_entry(episode),
        playlist_entry(None),
        playlist_entry(unplayable),
    ]
    crawler_env.spotify.add_playlist(PLAYLIST, "Mixed", entries)
    listing = crawler.spotify.playlist(PLAYLIST)
    assert [t.id for t in listing.tracks] == [t["id"] for t in tracks]
    assert dict(listing.skipped) == {"local_file": 1, "episode": 1, "unavailable": 2}


def test_metadata_without_items_is_an_error_naming_the_february_2026_rule(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Someone else's", [playlist_entry(t) for t in _tracks(5)], owner="other", metadata_only=True)
    with pytest.raises(PlaylistUnavailableError, match="metadata but no items.*February 2026.*owned or collaborated"):
        crawler.spotify.playlist(PLAYLIST)


def test_items_endpoint_403_is_the_same_clear_error(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Mine", [playlist_entry(t) for t in _tracks(5)])
    crawler_env.spotify.fail(r"/items$", Reply.json({"error": {"status": 403, "message": "Forbidden"}}, 403))
    with pytest.raises(PlaylistUnavailableError, match="February 2026"):
        crawler.spotify.playlist(PLAYLIST)


def test_unknown_playlist_is_reported_as_not_found(crawler: Crawler) -> None:
    with pytest.raises(PlaylistUnavailableError, match="not found"):
        crawler.spotify.playlist(PLAYLIST)


def test_empty_playlist_is_an_empty_success(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Empty", [])
    assert crawler.spotify.playlist(PLAYLIST).tracks == []


def test_short_retry_after_is_honoured(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Mine", [playlist_entry(t) for t in _tracks(3)])
    crawler_env.spotify.fail(r"/items$", Reply.json({"error": {"status": 429, "message": "API rate limit exceeded"}}, 429, {"Retry-After": "1"}))
    started = time.monotonic()
    assert len(crawler.spotify.playlist(PLAYLIST).tracks) == 3
    assert time.monotonic() - started >= 1.0
    assert len(crawler_env.spotify.requests_to(r"/items$")) == 2


def test_retry_after_beyond_the_cap_stops_the_run_at_once(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Mine", [playlist_entry(t) for t in _tracks(3)])
    crawler_env.spotify.fail(r"/items$", Reply.json({"error": {"status": 429, "message": "API rate limit exceeded"}}, 429, {"Retry-After": "7200"}))
    started = time.monotonic()
    with pytest.raises(RateLimitedError, match="wait 7200 s.*RATE_LIMIT_MAX_WAIT_S=60"):
        crawler.spotify.playlist(PLAYLIST)
    assert time.monotonic() - started < 5


def test_server_errors_are_retried_with_backoff(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Mine", [playlist_entry(t) for t in _tracks(3)])
    crawler_env.spotify.fail(r"/items$", Reply.json({"error": {"status": 502, "message": "Bad gateway"}}, 502), times=2)
    assert len(crawler.spotify.playlist(PLAYLIST).tracks) == 3


def test_persistent_server_errors_end_in_a_spotify_error(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Mine", [playlist_entry(t) for t in _tracks(3)])
    crawler_env.spotify.fail(r"/items$", Reply.json({"error": {"status": 503, "message": "Service unavailable"}}, 503), times=100)
    with pytest.raises(SpotifyError, match="503"):
        crawler.spotify.playlist(PLAYLIST)


def test_a_401_refreshes_the_token_once_and_stores_it_in_the_secret(crawler: Crawler, crawler_env: Fakes, user_secret: str) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Mine", [playlist_entry(t) for t in _tracks(60)])
    catalog = crawler.spotify
    catalog.playlist(PLAYLIST)
    first_token = read_secret()["token_info"]["access_token"]
    crawler_env.spotify.expire_access_tokens()
    assert len(catalog.playlist(PLAYLIST).tracks) == 60
    stored = read_secret()
    assert stored["token_info"]["access_token"] != first_token
    assert stored["refresh_token"] == user_secret
    assert stored["client_id"] == CLIENT_ID
    grants = [r.body.decode() for r in crawler_env.spotify.requests_to(r"^/api/token$")]
    assert len(grants) == 2 and all("grant_type=refresh_token" in g for g in grants)


def test_a_revoked_refresh_token_asks_for_a_new_login(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.spotify.add_playlist(PLAYLIST, "Mine", [])
    crawler_env.spotify.refresh_tokens.clear()
    with pytest.raises(SpotifyError, match="make spotify-login"):
        crawler.spotify.playlist(PLAYLIST)


def test_client_credentials_are_used_without_a_refresh_token(aws: None, crawler_env: Fakes) -> None:
    from crawler_aws import SECRET, put_secret

    from crawler.settings import CrawlerSettings
    from crawler.spotify import AppAuth, SecretsManagerStore

    put_secret({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    settings = CrawlerSettings.from_env()
    auth = auth_manager(settings, SecretsManagerStore(SECRET))
    assert isinstance(auth, AppAuth)
    track = spotify_track(spotify_id(99), "Lookup", ["Someone"])
    crawler_env.spotify.tracks[track["id"]] = track
    catalog = SpotifyCatalog(settings, auth)
    assert catalog.track(track["id"]).title == "Lookup"
    assert "grant_type=client_credentials" in crawler_env.spotify.requests_to(r"^/api/token$")[0].body.decode()
    crawler_env.spotify.add_playlist(PLAYLIST, "Not mine", [], metadata_only=True)
    with pytest.raises(PlaylistUnavailableError, match="no refresh token is stored"):
        catalog.playlist(PLAYLIST)
