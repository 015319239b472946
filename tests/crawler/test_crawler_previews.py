"""Preview resolution: Spotify preview_url, then Deezer by ISRC, then a strict Deezer search."""

from __future__ import annotations

import pytest
from crawler_fakes import Fakes, Reply, spotify_id

from catalog.records import PreviewSource
from crawler.deezer import DeezerClient, DeezerError, normalise
from crawler.download import Downloader
from crawler.previews import NoPreview, PreviewFinder
from crawler.settings import CrawlerSettings
from crawler.spotify import SpotifyTrack


@pytest.fixture
def finder(crawler_env: Fakes) -> PreviewFinder:
    settings = CrawlerSettings.from_env()
    return PreviewFinder(Downloader(settings), DeezerClient(settings))


def _track(**kwargs: object) -> SpotifyTrack:
    values: dict = {"id": spotify_id(1), "title": "Harder Better", "artists": ("Daft Punk",), "isrc": "GBDUW0000059"}
    values.update(kwargs)
    return SpotifyTrack(**values)


@pytest.mark.parametrize(
    ("spotify_title", "deezer_title"),
    [
        ("Beyoncé Song", "Beyonce song"),
        ("Song (feat. Someone)", "Song"),
        ("Song - Remastered 2011", "Song (Remastered)"),
        ("Song - 2009 Remaster", "Song"),
        ("SONG", "song [feat. X]"),
    ],
)
def test_normalisation_makes_spotify_and_deezer_spellings_agree(spotify_title: str, deezer_title: str) -> None:
    assert normalise(spotify_title) == normalise(deezer_title)


def test_different_songs_stay_different() -> None:
    assert normalise("Song - Live") != normalise("Song")
    assert normalise("Song Two") != normalise("Song")


def test_spotify_preview_url_comes_first(finder: PreviewFinder, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Harder Better", "Daft Punk", "GBDUW0000059")
    preview = finder.find(_track(preview_url=crawler_env.cdn.preview_url("sp")))
    assert preview.source is PreviewSource.SPOTIFY
    assert preview.audio.data == crawler_env.cdn.audio_for("sp")
    assert crawler_env.deezer.log == []


def test_deezer_isrc_is_next(finder: PreviewFinder, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Harder Better", "Daft Punk", "GBDUW0000059", media="by-isrc")
    preview = finder.find(_track())
    assert preview.source is PreviewSource.DEEZER
    assert preview.audio.data == crawler_env.cdn.audio_for("by-isrc")
    assert [r.path for r in crawler_env.deezer.log] == ["/track/isrc:GBDUW0000059"]


def test_deezer_search_is_accepted_only_when_artist_and_title_match(finder: PreviewFinder, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Song (Live at Wembley)", "The Band", media="wrong-version")
    crawler_env.deezer.add("Song", "A Cover Band", media="wrong-artist")
    crawler_env.deezer.add("Song (Remastered 2011)", "The Band", media="right")
    preview = finder.find(_track(title="Song - Remastered 2011", artists=("The Band",), isrc="NOTONDEEZER1"))
    assert preview.audio.data == crawler_env.cdn.audio_for("right")
    assert crawler_env.deezer.log[0].path == "/track/isrc:NOTONDEEZER1"
    assert crawler_env.deezer.log[1].query["q"] == 'artist:"The Band" track:"Song - Remastered 2011"'


def test_a_search_without_a_strict_match_gives_no_preview(finder: PreviewFinder, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Song", "A Cover Band")
    with pytest.raises(NoPreview) as caught:
        finder.find(_track(title="Song", artists=("The Band",), isrc=""))
    assert caught.value.reason == "not_found"


def test_an_expired_signature_is_resolved_again_once(finder: PreviewFinder, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Harder Better", "Daft Punk", "GBDUW0000059", media="fresh")
    crawler_env.deezer.expired_signatures = 1
    preview = finder.find(_track())
    assert preview.audio.data == crawler_env.cdn.audio_for("fresh")
    assert len(crawler_env.deezer.requests_to(r"^/track/isrc:")) == 2
    assert [r.path for r in crawler_env.cdn.log] == ["/media/fresh.mp3", "/media/fresh.mp3"]


def test_signatures_that_keep_expiring_end_in_no_preview(finder: PreviewFinder, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Harder Better", "Daft Punk", "GBDUW0000059", media="stale")
    crawler_env.deezer.expired_signatures = 10
    with pytest.raises(NoPreview) as caught:
        finder.find(_track())
    assert caught.value.reason == "forbidden"


def test_a_preview_on_a_disallowed_redirect_falls_back_to_the_next_source(finder: PreviewFinder, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Harder Better", "Daft Punk", "GBDUW0000059", media="ok")
    preview = finder.find(_track(preview_url=crawler_env.cdn.base_url + "redirect/x"))
    assert preview.source is PreviewSource.DEEZER


def test_deezer_json_error_with_http_200_is_an_error(crawler_env: Fakes) -> None:
    crawler_env.deezer.fail(r"^/track/", Reply.json({"error": {"type": "OAuthException", "message": "Invalid OAuth access token.", "code": 300}}))
    with pytest.raises(DeezerError, match="300 OAuthException: Invalid OAuth access token"):
        DeezerClient(CrawlerSettings.from_env()).by_isrc("GBDUW0000059")


def test_deezer_no_data_means_not_found(crawler_env: Fakes) -> None:
    assert DeezerClient(CrawlerSettings.from_env()).by_isrc("GBDUW0000059") is None


def test_deezer_quota_errors_are_retried(crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Harder Better", "Daft Punk", "GBDUW0000059")
    crawler_env.deezer.fail(r"^/track/", Reply.json({"error": {"type": "Exception", "message": "Quota limit exceeded", "code": 4}}), times=2)
    found = DeezerClient(CrawlerSettings.from_env()).by_isrc("GBDUW0000059")
    assert found is not None and found.artist == "Daft Punk"


def test_a_deezer_error_is_recorded_and_the_search_still_tried(finder: PreviewFinder, crawler_env: Fakes) -> None:
    crawler_env.deezer.add("Harder Better", "Daft Punk", media="found-by-search")
    crawler_env.deezer.fail(r"^/track/", Reply.json({"error": {"type": "Exception", "message": "boom", "code": 100}}))
    preview = finder.find(_track())
    assert preview.audio.data == crawler_env.cdn.audio_for("found-by-search")
