"""Deezer as a source: every reference kind against the loopback fake, paged, paced, merged by ISRC."""

from __future__ import annotations

import pytest
from crawler_aws import s3_keys, table_item
from crawler_fakes import DEEZER_QUOTA_ERROR, DeezerList, Fakes, Reply, playlist_entry, spotify_id, spotify_track

from catalog.keys import deezer_track_id
from crawler.deezer import parse_deezer_ref
from crawler.pacing import RequestPacer
from crawler.pipeline import Crawler, crawl_sources
from crawler.settings import DEEZER_MAX_RPS_DEFAULT

PLAYLIST_ID, ALBUM_ID, ARTIST_ID = 908622995, 302127, 27


class Recorder:
    """An injected clock that stands still and a sleep that only records: pacing without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def paced(crawler: Crawler) -> list[float]:
    """Every Deezer request's slot, on an injected clock, from the crawl's one pacer."""
    recorder = Recorder()
    slots: list[float] = []
    pacer = RequestPacer(DEEZER_MAX_RPS_DEFAULT, clock=recorder.clock, sleep=recorder.sleep)
    acquire = pacer.acquire

    def recording_acquire() -> float:
        slot = acquire()
        slots.append(slot)
        return slot

    pacer.acquire = recording_acquire  # type: ignore[method-assign]
    crawler.deezer.pacer = pacer
    return slots


@pytest.mark.parametrize(
    ("ref", "label"),
    [
        ("deezer:playlist:908622995", "deezer:playlist:908622995"),
        ("https://www.deezer.com/en/playlist/908622995", "deezer:playlist:908622995"),
        ("deezer:album:302127", "deezer:album:302127"),
        ("https://www.deezer.com/album/302127?utm_source=x", "deezer:album:302127"),
        ("deezer:artist:27", "deezer:artist:27"),
        ("deezer.com/fr/artist/27", "deezer:artist:27"),
        ("deezer:track:3135556", "deezer:track:3135556"),
        ("https://www.deezer.com/track/3135556", "deezer:track:3135556"),
        ("deezer:chart", "deezer:chart"),
    ],
)
def test_references_and_urls_of_each_kind_parse(ref: str, label: str) -> None:
    assert parse_deezer_ref(ref).label == label


@pytest.mark.parametrize("ref", ["deezer:playlist:abc", "deezer:podcast:1", "https://www.deezer.com/show/1", "deezer:playlist:0"])
def test_anything_else_is_refused_with_the_accepted_forms(ref: str) -> None:
    with pytest.raises(ValueError, match="deezer:playlist:ID"):
        parse_deezer_ref(ref)


def _lists(fakes: Fakes, n: int) -> None:
    entries = fakes.deezer.add_many(n)
    fakes.deezer.playlists[PLAYLIST_ID] = DeezerList("Bain moussant", entries)
    fakes.deezer.albums[ALBUM_ID] = DeezerList("Discovery", entries)
    fakes.deezer.artists[ARTIST_ID] = DeezerList("Daft Punk", entries)
    fakes.deezer.chart = entries
    fakes.deezer.max_limit = 10  # three pages for 23 tracks


@pytest.mark.parametrize(
    ("ref", "list_path", "isrc_in_list"),
    [
        (f"deezer:playlist:{PLAYLIST_ID}", f"/playlist/{PLAYLIST_ID}/tracks", True),
        (f"deezer:album:{ALBUM_ID}", f"/album/{ALBUM_ID}/tracks", True),
        (f"deezer:artist:{ARTIST_ID}", f"/artist/{ARTIST_ID}/top", False),
        ("deezer:chart", "/chart/0/tracks", False),
    ],
)
def test_each_deezer_kind_is_crawled_across_pages_under_pacing(
    crawler: Crawler, crawler_env: Fakes, paced: list[float], ref: str, list_path: str, isrc_in_list: bool
) -> None:
    _lists(crawler_env, 23)
    summary = crawl_sources(crawler, [ref])

    assert (summary.new, summary.known, summary.errors, dict(summary.no_preview)) == (23, 0, [], {})
    pages = crawler_env.deezer.requests_to(f"^{list_path}$")
    assert [p.query.get("index", "0") for p in pages] == ["0", "10", "20"], "every page, following next"
    lookups = crawler_env.deezer.requests_to(r"^/track/\d+$")
    assert len(lookups) == (0 if isrc_in_list else 23), "the ISRC comes from /track/{id} only when the list leaves it out"
    label = parse_deezer_ref(ref).label
    first = crawler_env.deezer.entries[0]
    item = table_item(deezer_track_id(first.id))
    assert item is not None
    assert (item["source"], item["preview_source"], item["status"]) == ("deezer", "deezer", "pending")
    assert (item["deezer_id"], item["isrc"], item["title"], item["artists"]) == (str(first.id), first.isrc, first.title, [first.artist])
    assert item["playlists"] == {label}
    assert len(s3_keys()) == 23
    # One pacer for all 8 workers: each of Deezer's requests had its own slot, 1/8 s apart.
    assert len(paced) == len(crawler_env.deezer.log)
    assert sorted(paced) == [i / DEEZER_MAX_RPS_DEFAULT for i in range(len(paced))]


def test_a_single_deezer_track_and_its_id(crawler: Crawler, crawler_env: Fakes) -> None:
    entry = crawler_env.deezer.add("One More Time", "Daft Punk", isrc="GBDUW0000053")
    summary = crawl_sources(crawler, [f"deezer:track:{entry.id}"])
    assert summary.new == 1
    item = table_item(f"dz-{entry.id}")
    assert item is not None and item["deezer_id"] == str(entry.id) and "playlists" not in item


def test_a_private_playlist_and_unknown_ids_say_why(crawler: Crawler, crawler_env: Fakes) -> None:
    crawler_env.deezer.playlists[1] = DeezerList("Secret", crawler_env.deezer.add_many(2), public=False)
    summary = crawl_sources(crawler, ["deezer:playlist:1", "deezer:playlist:2", "deezer:album:3", "deezer:artist:4", "deezer:track:5"])
    assert summary.new == 0 and not summary.stopped
    assert len(summary.errors) == 5
    assert "deezer:playlist:1 is private" in summary.errors[0] and "public playlists" in summary.errors[0]
    for error, kind in zip(summary.errors[1:], ["playlist", "album", "artist", "track"], strict=True):
        assert f"not found: Deezer has no {kind} with id" in error


def test_an_expired_signature_in_a_list_is_signed_again_through_the_saved_deezer_id(crawler: Crawler, crawler_env: Fakes) -> None:
    entries = crawler_env.deezer.add_many(1)
    crawler_env.deezer.playlists[PLAYLIST_ID] = DeezerList("P", entries)
    crawler_env.deezer.expired_signatures = 1  # the list's URL is already expired
    summary = crawl_sources(crawler, [f"deezer:playlist:{PLAYLIST_ID}"])
    assert summary.new == 1
    assert len(crawler_env.deezer.requests_to(rf"^/track/{entries[0].id}$")) == 1
    assert [r.path.startswith("/media/") for r in crawler_env.cdn.log] == [True, True]


def test_the_same_recording_twice_in_one_list_is_crawled_once(crawler: Crawler, crawler_env: Fakes) -> None:
    single = crawler_env.deezer.add("Song", "Band", isrc="GBAAA2600001")
    album_cut = crawler_env.deezer.add("Song", "Band", isrc="GBAAA2600001", album="The Album")
    crawler_env.deezer.playlists[PLAYLIST_ID] = DeezerList("P", [single, album_cut, single])
    summary = crawl_sources(crawler, [f"deezer:playlist:{PLAYLIST_ID}"])
    assert (summary.new, summary.skipped["duplicate_entry"]) == (1, 2)


# -- one recording, one track --------------------------------------------------------------


def test_spotify_first_then_deezer_links_the_entry_without_a_second_track_or_extraction(crawler: Crawler, crawler_env: Fakes) -> None:
    entry = crawler_env.deezer.add("Shared Song", "Shared Band", isrc="USXYZ2600001")
    track = spotify_track(spotify_id(77), "Shared Song", ["Shared Band"], isrc="USXYZ2600001")
    sp_playlist = spotify_id(70, "pl")
    crawler_env.spotify.add_playlist(sp_playlist, "Mine", [playlist_entry(track)])
    crawler_env.deezer.playlists[PLAYLIST_ID] = DeezerList("Theirs", [entry])

    first = crawl_sources(crawler, [sp_playlist])
    cdn_after_first = len(crawler_env.cdn.log)
    second = crawl_sources(crawler, [f"deezer:playlist:{PLAYLIST_ID}"])

    assert (first.new, second.new, second.known) == (1, 0, 1)
    assert len(crawler_env.cdn.log) == cdn_after_first, "no second download"
    assert s3_keys() == [f"previews/{track['id']}.mp3"], "one preview, so one extraction"
    assert table_item(deezer_track_id(entry.id)) is None, "no second track"
    item = table_item(track["id"])
    assert (item["spotify_id"], item["deezer_id"]) == (track["id"], str(entry.id))
    assert item["playlists"] == {sp_playlist, f"deezer:playlist:{PLAYLIST_ID}"}


def test_deezer_first_then_spotify_links_the_entry_without_a_second_track_or_extraction(crawler: Crawler, crawler_env: Fakes) -> None:
    entry = crawler_env.deezer.add("Shared Song", "Shared Band", isrc="USXYZ2600002")
    track = spotify_track(spotify_id(78), "Shared Song", ["Shared Band"], isrc="USXYZ2600002")
    sp_playlist = spotify_id(71, "pl")
    crawler_env.spotify.add_playlist(sp_playlist, "Mine", [playlist_entry(track)])
    crawler_env.deezer.albums[ALBUM_ID] = DeezerList("Album", [entry])

    first = crawl_sources(crawler, [f"https://www.deezer.com/album/{ALBUM_ID}"])
    deezer_requests, cdn_requests = len(crawler_env.deezer.log), len(crawler_env.cdn.log)
    second = crawl_sources(crawler, [f"spotify:playlist:{sp_playlist}"])
    again = crawl_sources(crawler, [f"spotify:playlist:{sp_playlist}"])

    assert (first.new, second.new, second.known, again.known) == (1, 0, 1, 1)
    assert len(crawler_env.deezer.log) == deezer_requests and len(crawler_env.cdn.log) == cdn_requests
    dz = deezer_track_id(entry.id)
    assert s3_keys() == [f"previews/{dz}.mp3"] and table_item(track["id"]) is None
    item = table_item(dz)
    assert (item["source"], item["spotify_id"], item["deezer_id"]) == ("deezer", track["id"], str(entry.id))
    assert item["playlists"] == {f"deezer:album:{ALBUM_ID}", sp_playlist}


# -- courtesy ------------------------------------------------------------------------------


def test_deezers_quota_error_inside_http_200_pauses_every_worker_then_goes_on(crawler: Crawler, crawler_env: Fakes, paced: list[float]) -> None:
    entries = crawler_env.deezer.add_many(4)
    crawler_env.deezer.chart = entries
    crawler_env.deezer.fail(r"^/track/\d+$", Reply.json(DEEZER_QUOTA_ERROR), times=2)
    summary = crawl_sources(crawler, ["deezer:chart"])
    assert (summary.new, dict(summary.no_preview), dict(summary.failed)) == (4, {}, {}), "backed off, not 'no preview'"
    # The pauses pushed the later slots back by the cooldown (5 s, then 10 s on the second in a row, or 5 s twice).
    assert max(paced) >= crawler.settings.deezer_quota_cooldown_s


def test_a_quota_that_does_not_lift_stops_the_run_without_marking_tracks(crawler: Crawler, crawler_env: Fakes, paced: list[float]) -> None:
    crawler_env.deezer.chart = crawler_env.deezer.add_many(3)
    crawler_env.deezer.playlists[PLAYLIST_ID] = DeezerList("Next", crawler_env.deezer.add_many(2))
    crawler_env.deezer.fail(r"^/track/\d+$", Reply.json(DEEZER_QUOTA_ERROR), times=1000)
    summary = crawl_sources(crawler, ["deezer:chart", f"deezer:playlist:{PLAYLIST_ID}"])
    assert summary.stopped and summary.new == 0
    assert dict(summary.no_preview) == {} and dict(summary.failed) == {}
    assert "quota error (code 4)" in summary.errors[0] and len(summary.errors) == 1
    assert crawler_env.deezer.requests_to(f"^/playlist/{PLAYLIST_ID}") == [], "the run stopped before the next source"


def test_the_pacer_gives_each_request_its_own_slot_and_a_hold_delays_them_all() -> None:
    recorder = Recorder()
    pacer = RequestPacer(8.0, clock=recorder.clock, sleep=recorder.sleep)
    assert [pacer.acquire() for _ in range(3)] == [0.0, 0.125, 0.25]
    assert recorder.sleeps == [0.125, 0.25]
    pacer.hold(5.0)
    assert pacer.acquire() == 5.0
    recorder.now = 10.0
    assert pacer.acquire() == 10.0 and recorder.sleeps[-1] == 5.0


def test_the_request_rate_is_configurable(crawler_env: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.deezer import DeezerClient
    from crawler.settings import CrawlerSettings

    monkeypatch.setenv("DEEZER_MAX_RPS", "2.5")
    assert DeezerClient(CrawlerSettings.from_env()).pacer.interval_s == pytest.approx(0.4)
    monkeypatch.setenv("DEEZER_MAX_RPS", "0")
    with pytest.raises(ValueError, match="DEEZER_MAX_RPS"):
        CrawlerSettings.from_env()

