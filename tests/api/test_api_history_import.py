"""Importing Spotify exports into the Listens table: both formats, twice, malformed files, skips, crawl requests."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from api_testkit import spotify_like_id

from api.index_cache import IndexCache
from api.served import ServedIndex
from catalog.listens import Listen, ListenTable
from history.exports import ExportPlay, MalformedExportError
from history.importer import import_files, import_plays
from history.matching import CatalogueMatcher, matcher_for
from history.training import sessions_of
from infra.resources import template_table_params

LISTENS_TABLE = "soundslike-test-listens"
START = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)


@pytest.fixture
def listens(aws: None) -> ListenTable:
    boto3.client("dynamodb").create_table(**template_table_params(LISTENS_TABLE, "ListensTable"))
    return ListenTable(LISTENS_TABLE)


@pytest.fixture
def index(publish: Any, tmp_path: Path) -> ServedIndex:
    """The served index of 40 tracks: "Song i" by "Artist i", Spotify id spotify_like_id(i)."""
    publish(n=40)
    served = IndexCache(os.environ["INDEX_BUCKET"], directory=tmp_path / "index").current()
    assert served is not None
    return served


@pytest.fixture
def matcher(index: ServedIndex) -> CatalogueMatcher:
    return matcher_for(index)


def basic_record(i: int, minutes: int, ms: int = 180_000) -> dict[str, Any]:
    return {"endTime": f"{START + timedelta(minutes=minutes):%Y-%m-%d %H:%M}", "artistName": f"Artist {i}", "trackName": f"Song {i}", "msPlayed": ms}


def extended_record(i: int, minutes: int, ms: int = 180_000, uri: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "ts": f"{START + timedelta(minutes=minutes):%Y-%m-%dT%H:%M:%SZ}",
        "platform": "linux",
        "ms_played": ms,
        "conn_country": "NZ",
        "master_metadata_track_name": f"Song {i}",
        "master_metadata_album_artist_name": f"Artist {i}",
        "master_metadata_album_album_name": f"Album {i // 3}",
        "spotify_track_uri": f"spotify:track:{spotify_like_id(i)}" if uri else None,
        "episode_name": None,
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        **extra,
    }


def podcast_record(minutes: int) -> dict[str, Any]:
    return {"ts": f"{START + timedelta(minutes=minutes):%Y-%m-%dT%H:%M:%SZ}", "ms_played": 600_000,
            "master_metadata_track_name": None, "spotify_track_uri": None, "episode_name": "An episode",
            "spotify_episode_uri": "spotify:episode:0000000000000000000000"}


def write(path: Path, records: list[Any]) -> Path:
    path.write_text(json.dumps(records))
    return path


def stored(table: ListenTable, user: str) -> list[Listen]:
    return list(table.listens_of(user))


def test_both_formats_import_twice_without_duplicates(listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path) -> None:
    basic = write(tmp_path / "StreamingHistory_music_0.json", [basic_record(i, 10 * i) for i in range(12)])
    # Plays 0-3 again as the extended export records them (same minute, same length): the same plays.
    extended = write(
        tmp_path / "Streaming_History_Audio_2026.json",
        [extended_record(i, 10 * i) for i in range(4)]
        + [extended_record(i, 500 + 10 * i) for i in range(20, 30)]
        + [podcast_record(900), extended_record(31, 910, ms=12_000, skipped=True)],
    )
    first = import_files("ana", [basic, extended], matcher, listens)
    assert (first.records, first.plays, first.not_music) == (28, 27, 1)
    assert (first.added, first.already_imported) == (23, 4)
    assert (first.matched, first.unmatched, first.skips) == (27, 0, 1)
    rows = stored(listens, "ana")
    assert len(rows) == 23 and len({r.sort_key for r in rows}) == 23
    assert {r.track_id for r in rows} == {spotify_like_id(i) for i in [*range(12), *range(20, 30), 31]}

    second = import_files("ana", [extended, basic], matcher, listens)
    assert (second.added, second.already_imported) == (0, 27)
    assert [r.sort_key for r in stored(listens, "ana")] == [r.sort_key for r in rows]
    assert stored(listens, "bo") == []


def test_plays_are_matched_by_uri_first_then_by_normalised_names(listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path) -> None:
    records = [
        # The URI wins over a name that would match another track.
        extended_record(3, 0) | {"master_metadata_track_name": "Song 4", "master_metadata_album_artist_name": "Artist 4"},
        extended_record(5, 10, uri=False) | {"master_metadata_track_name": "SONG 5 - Remastered 2011"},
        extended_record(6, 20, uri=False) | {"master_metadata_track_name": "Song 6 (feat. Someone)"},
        extended_record(7, 30) | {"spotify_track_uri": "spotify:track:" + "Z" * 22, "master_metadata_track_name": "Unknown"},
    ]
    import_files("ana", [write(tmp_path / "e.json", records)], matcher, listens)
    assert [r.track_id for r in stored(listens, "ana")] == [spotify_like_id(3), spotify_like_id(5), spotify_like_id(6), ""]


def test_plays_under_thirty_seconds_are_skips(listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path) -> None:
    path = write(tmp_path / "b.json", [basic_record(1, 0, ms=29_999), basic_record(2, 5, ms=30_000)])
    report = import_files("ana", [path], matcher, listens)
    assert report.skips == 1
    assert [r.skipped for r in stored(listens, "ana")] == [True, False]


def test_a_malformed_record_is_named_and_what_came_before_is_kept(listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path) -> None:
    good = [basic_record(i, 10 * i) for i in range(7)]
    bad = {k: v for k, v in basic_record(7, 70).items() if k != "msPlayed"}
    path = write(tmp_path / "StreamingHistory_music_1.json", [*good, bad, basic_record(8, 80)])
    with pytest.raises(MalformedExportError) as caught:
        import_files("ana", [path], matcher, listens)
    assert str(caught.value) == f"{path}: record 7: msPlayed must be a non-negative number of milliseconds"
    assert (caught.value.path, caught.value.index) == (str(path), 7)
    assert len(stored(listens, "ana")) == 7

    write(path, [*good, basic_record(7, 70), basic_record(8, 80)])
    again = import_files("ana", [path], matcher, listens)
    assert (again.added, again.already_imported) == (2, 7)
    assert len(stored(listens, "ana")) == 9


def test_broken_json_and_a_non_array_are_named(listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps([basic_record(i, i) for i in range(3)])[:-40])
    with pytest.raises(MalformedExportError, match=r"truncated\.json: record 2: not valid JSON"):
        import_files("ana", [truncated], matcher, listens)
    assert len(stored(listens, "ana")) == 2
    obj = write(tmp_path / "object.json", {"item": basic_record(1, 1)})  # type: ignore[arg-type]
    with pytest.raises(MalformedExportError, match=r"object\.json: a streaming-history export is a JSON array"):
        import_files("ana", [obj], matcher, listens)


def test_unmatched_spotify_tracks_are_counted_and_queued_once_each_most_played_first(
    listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path,
) -> None:
    unknown = ["A" * 22, "B" * 22]
    # B is played three times, A twice: B is asked for first although A sorts first.
    records = [
        extended_record(100 + i, 10 * i) | {"spotify_track_uri": f"spotify:track:{unknown[(i + 1) % 2]}"} for i in range(5)
    ] + [extended_record(200, 90, uri=False), extended_record(1, 100)]
    requested: list[str] = []
    report = import_files("ana", [write(tmp_path / "e.json", records)], matcher, listens, crawl=requested.append)
    assert (report.matched, report.unmatched, report.crawl_requested) == (1, 6, 2)
    assert requested == ["B" * 22, "A" * 22]
    assert report.unmatched_spotify_plays == {"B" * 22: 3, "A" * 22: 2}


def test_progress_is_reported_while_a_file_is_read(listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path) -> None:
    path = write(tmp_path / "b.json", [basic_record(i % 40, i) for i in range(25)])
    seen: list[tuple[str, int]] = []
    import_files("ana", [path], matcher, listens, progress=lambda name, read, _: seen.append((name, read)), progress_every=10)
    assert seen == [(str(path), 10), (str(path), 20), (str(path), 25)]


def test_sessions_split_at_the_configured_gap() -> None:
    def play(start_s: float, length_s: float = 60) -> Listen:
        return Listen("ana", START + timedelta(seconds=start_s + length_s), "a", "t", int(length_s * 1000))

    plays = [play(0), play(60 + 3599), play(60 + 3599 + 60 + 3600)]
    assert [len(s) for s in sessions_of(plays, 3600)] == [2, 1]
    assert [len(s) for s in sessions_of(plays, 3599)] == [1, 1, 1]


def test_the_served_affinity_model_is_scikit_learns_nearest_neighbour_regressor() -> None:
    from sklearn.neighbors import KNeighborsRegressor

    from catalog.user_models import AFFINITY_NEIGHBOURS, neighbour_mean

    rng = np.random.default_rng(4)
    examples = rng.normal(size=(40, 19)).astype(np.float32)
    targets = rng.gamma(1.0, 1.0, size=40).astype(np.float32)
    queries = np.concatenate([rng.normal(size=(10, 19)), examples[:2]]).astype(np.float32)
    reference = KNeighborsRegressor(AFFINITY_NEIGHBOURS, weights="distance", metric="cosine").fit(examples, targets)
    ours = [neighbour_mean(examples, targets, q) for q in queries]
    np.testing.assert_allclose(ours, reference.predict(queries), rtol=1e-4)


@pytest.fixture
def train_queue(listens: ListenTable, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    from history import train_handler

    monkeypatch.setenv("LISTENS_TABLE", LISTENS_TABLE)
    monkeypatch.setenv("SOUNDSLIKE_STATE_DIR", str(tmp_path / "state"))
    train_handler._index_cache.cache_clear()
    url = boto3.client("sqs").create_queue(QueueName="soundslike-test-train")["QueueUrl"]
    monkeypatch.setenv("TRAIN_QUEUE_URL", url)
    return url


def test_the_cli_imports_has_the_trainer_train_and_names_a_bad_record(
    train_queue: str, listens: ListenTable, index: ServedIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """make history: the import, then HistoryTrainFunction (its real handler, fed by the pump's SQS poller) trains."""
    from catalog.user_models import UserModelStore
    from history import train_handler
    from history.__main__ import main
    from infra.pump import EventPump, Invoker, SqsMapping, SqsPoller

    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=train_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = SqsMapping("HistoryTrainFunction", train_queue, arn, batch_size=1, report_failures=True)
    poller = SqsPoller(mapping, sqs, Invoker({"HistoryTrainFunction": train_handler.lambda_handler}, {}))
    pump = EventPump([poller], idle_sleep_s=0.05)
    pump.start()
    try:
        good = write(tmp_path / "Streaming_History_Audio_0.json", [extended_record(i % 20, 10 * i) for i in range(60)])
        assert main(["--user", "ana", str(good)]) == 0
        out = capsys.readouterr()
        assert "60 plays (0 skips under 30 s), 60 added, 0 already imported" in out.out
        assert "affinity {'spearman'" in out.out
        assert f"{good}: 60 records read" in out.err
        profile = UserModelStore(os.environ["INDEX_BUCKET"]).profile("ana")
        assert profile is not None and profile["plays"] == 60 and profile["lastImport"]["added"] == 60
        assert poller.stats.succeeded == 1

        bad = write(tmp_path / "StreamingHistory_music_0.json", [basic_record(1, 2000), {"endTime": "yesterday"}])
        assert main(["--user", "ana", str(bad)]) == 1
        assert f"error: {bad}: record 1: endTime must look like" in capsys.readouterr().err
        assert len(stored(listens, "ana")) == 61
        assert main(["--user", "not a name", str(good)]) == 2
    finally:
        pump.stop()
    assert poller.stats.succeeded == 1  # the malformed import asked for no training


def test_waiting_for_the_trainer_gives_up_at_its_deadline(train_queue: str, index: ServedIndex) -> None:
    from catalog.user_models import UserModelStore
    from history.__main__ import TRAIN_POLL_S, TrainingTimeoutError, wait_for_training

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(TrainingTimeoutError, match="within 5 s"):
        wait_for_training(UserModelStore(os.environ["INDEX_BUCKET"]), "ana", "2026-03-01T00:00:00Z", 5.0, clock=lambda: now[0], sleep=sleep)
    assert slept == [TRAIN_POLL_S] * 5


def feed_play(i: int, ended: datetime, duration_ms: int = 200_000) -> ExportPlay:
    """Catalogue track i as crawler.feed.export_play makes it: the end, and the track's duration for its length."""
    return ExportPlay(ended, f"Artist {i}", f"Song {i}", duration_ms, f"spotify:track:{spotify_like_id(i)}", from_feed=True)


def test_an_export_replaces_the_feeds_record_of_the_same_play_and_the_feed_never_adds_it_twice(
    listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path,
) -> None:
    # The feed stored track 1 (ending at minute 0) and track 2 (ending at minute 10), each with its duration.
    fed = import_plays("ana", [feed_play(1, START), feed_play(2, START + timedelta(minutes=10))], matcher, listens)
    assert (fed.added, fed.feed_plays_replaced) == (2, 0)
    # The export holds the same play of track 1 (2 s later, 195 s listened: another key), a repeat of
    # track 1 straight after it, and track 3, which the feed never saw.
    ended = START + timedelta(seconds=2)
    export = write(tmp_path / "Streaming_History_Audio_2026.json", [
        extended_record(1, 0, ms=195_000) | {"ts": f"{ended:%Y-%m-%dT%H:%M:%SZ}"},
        extended_record(1, 0, ms=195_000) | {"ts": f"{ended + timedelta(seconds=195):%Y-%m-%dT%H:%M:%SZ}"},
        extended_record(3, 30),
    ])
    first = import_files("ana", [export], matcher, listens)
    assert (first.added, first.already_imported, first.feed_plays_replaced) == (3, 0, 1)
    rows = stored(listens, "ana")
    assert [(r.title, r.ms_played, r.from_feed) for r in rows] == [
        ("Song 1", 195_000, False), ("Song 1", 195_000, False), ("Song 2", 200_000, True), ("Song 3", 180_000, False),
    ]
    # The feed reads the same play again (a lost cursor): the export's record holds it already.
    again = import_plays("ana", [feed_play(1, START)], matcher, listens)
    assert (again.added, again.already_imported) == (0, 1)
    assert (import_files("ana", [export], matcher, listens).added, len(stored(listens, "ana"))) == (0, 4)


def test_importing_the_export_again_removes_a_feed_record_a_crash_left_behind(
    listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path,
) -> None:
    import_plays("ana", [feed_play(1, START)], matcher, listens)
    export = write(tmp_path / "e.json", [extended_record(1, 0, ms=199_000)])
    # A crash after the export's play was written and before the feed's was deleted: both stored.
    listens.put_all([Listen("ana", START, "Artist 1", "Song 1", 199_000, spotify_uri=f"spotify:track:{spotify_like_id(1)}")])
    assert len(stored(listens, "ana")) == 2
    healed = import_files("ana", [export], matcher, listens)
    assert (healed.added, healed.already_imported, healed.feed_plays_replaced) == (0, 1, 1)
    assert [(r.ms_played, r.from_feed) for r in stored(listens, "ana")] == [(199_000, False)]


def test_make_history_crawl_shows_progress_and_an_upstream_failure_stops_the_crawls_not_the_import(
    listens: ListenTable, matcher: CatalogueMatcher, tmp_path: Path,
) -> None:
    from catalog.ingest import IngestOutcome, IngestStatus, UpstreamUnavailableError
    from history.__main__ import CrawlNow

    unknown = [spotify_like_id(700 + i) for i in range(5)]
    asked: list[str] = []

    def ingest(track_id: str) -> IngestOutcome:
        asked.append(track_id)
        if len(asked) == 4:
            raise UpstreamUnavailableError("Deezer answered 503")
        return IngestOutcome(track_id, IngestStatus.QUEUED if len(asked) != 2 else IngestStatus.NO_PREVIEW, None, "")

    lines = io.StringIO()
    records = [extended_record(700, 10 * i) | {"spotify_track_uri": f"spotify:track:{t}"} for i, t in enumerate(unknown)]
    report = import_files("ana", [write(tmp_path / "e.json", records)], matcher, listens, crawl=CrawlNow(ingest, every=2, out=lines))
    assert asked == sorted(unknown)[:4]  # one play each: by id; the fourth failed and the fifth was not asked for
    assert report.crawl_requested == 3
    assert report.crawl_stopped == f"after 3 tracks, at {sorted(unknown)[3]}: Deezer answered 503"
    assert "crawling stopped: after 3 tracks" in report.format()
    assert lines.getvalue() == "crawling unmatched tracks: 2 done (1 no_preview, 1 queued)\n"
    assert (report.added, len(stored(listens, "ana"))) == (5, 5), "the plays are stored whatever the crawls did"
