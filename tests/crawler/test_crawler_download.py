"""Safe downloads of previews from the loopback CDN."""

from __future__ import annotations

import dataclasses

import pytest
from crawler_fakes import Fakes, mp3_bytes

from crawler.audio import NotAudioError, sniff
from crawler.download import Downloader, DownloadRejected
from crawler.settings import CrawlerSettings, InsecureEndpointError, check_url, host_allowed


@pytest.fixture
def settings(crawler_env: Fakes) -> CrawlerSettings:
    return CrawlerSettings.from_env()


def test_a_signed_preview_downloads_as_mp3(settings: CrawlerSettings, crawler_env: Fakes) -> None:
    audio = Downloader(settings).fetch(crawler_env.cdn.signed_url("song"), "deezer")
    assert audio.data == crawler_env.cdn.audio_for("song")
    assert (audio.format.ext, audio.format.content_type) == ("mp3", "audio/mpeg")


def test_an_expired_signature_is_refused_as_forbidden(settings: CrawlerSettings, crawler_env: Fakes) -> None:
    with pytest.raises(DownloadRejected) as caught:
        Downloader(settings).fetch(crawler_env.cdn.signed_url("song", ttl_s=-5), "deezer")
    assert (caught.value.reason, caught.value.status) == ("forbidden", 403)


def test_a_redirect_to_a_host_outside_the_allow_list_is_not_followed(settings: CrawlerSettings, crawler_env: Fakes) -> None:
    with pytest.raises(DownloadRejected) as caught:
        Downloader(settings).fetch(crawler_env.cdn.base_url + "redirect/song", "deezer")
    assert caught.value.reason == "host_not_allowed"
    assert "cdn.evil.example" in caught.value.detail


def test_a_redirect_within_the_allow_list_is_followed(settings: CrawlerSettings, crawler_env: Fakes) -> None:
    crawler_env.cdn.redirect_target = crawler_env.cdn.preview_url("moved")
    audio = Downloader(settings).fetch(crawler_env.cdn.base_url + "redirect/song", "spotify")
    assert audio.data == crawler_env.cdn.audio_for("moved")


@pytest.mark.parametrize("length", ["declared", "none"])
def test_a_body_over_the_size_cap_is_refused(settings: CrawlerSettings, crawler_env: Fakes, length: str) -> None:
    with pytest.raises(DownloadRejected) as caught:
        Downloader(settings).fetch(crawler_env.cdn.base_url + f"big/song?length={length}", "deezer")
    assert caught.value.reason == "too_large"


def test_a_body_that_is_not_audio_is_refused_whatever_its_content_type(settings: CrawlerSettings, crawler_env: Fakes) -> None:
    with pytest.raises(DownloadRejected) as caught:
        Downloader(settings).fetch(crawler_env.cdn.base_url + "html/song", "deezer")
    assert caught.value.reason == "not_audio"


def test_a_host_outside_the_sources_allow_list_is_never_contacted(settings: CrawlerSettings, crawler_env: Fakes) -> None:
    narrow = dataclasses.replace(settings, deezer_preview_hosts=("*.dzcdn.net",))
    with pytest.raises(DownloadRejected) as caught:
        Downloader(narrow).fetch(crawler_env.cdn.signed_url("song"), "deezer")
    assert caught.value.reason == "host_not_allowed"
    assert crawler_env.cdn.log == []


def test_plain_http_is_refused_without_the_loopback_allowance(settings: CrawlerSettings, crawler_env: Fakes) -> None:
    strict = dataclasses.replace(settings, allow_http_loopback=False, spotify_api_url="https://api.spotify.com/v1/",
                                 spotify_accounts_url="https://accounts.spotify.com/", deezer_api_url="https://api.deezer.com/")
    with pytest.raises(DownloadRejected) as caught:
        Downloader(strict).fetch(crawler_env.cdn.preview_url("song"), "spotify")
    assert caught.value.reason == "insecure_url"


def test_the_loopback_allowance_covers_127_0_0_1_only() -> None:
    assert check_url("http://127.0.0.1:8080/x", allow_http_loopback=True)
    for url in ("http://example.com/x", "http://10.0.0.1/x", "ftp://127.0.0.1/x"):
        with pytest.raises(InsecureEndpointError):
            check_url(url, allow_http_loopback=True)
    with pytest.raises(InsecureEndpointError):
        CrawlerSettings(spotify_api_url="http://api.spotify.com/v1/")


def test_allow_list_entries_match_exact_hosts_and_star_subdomains() -> None:
    hosts = ("p.scdn.co", "*.dzcdn.net")
    assert host_allowed("p.scdn.co", hosts)
    assert host_allowed("cdnt-preview.dzcdn.net", hosts)
    assert not host_allowed("dzcdn.net.evil.example", hosts)
    assert not host_allowed("evildzcdn.net", hosts)
    assert not host_allowed("x.p.scdn.co", hosts)


def test_sniff_names_the_format_from_the_bytes() -> None:
    assert sniff(mp3_bytes(3)).ext == "mp3"
    with pytest.raises(NotAudioError):
        sniff(b"ID3" + b"\x00" * 100)
    with pytest.raises(NotAudioError):
        sniff(b"%PDF-1.7 not audio at all" * 50)
