"""The recently-played feed (ListenerFeedFunction) against the loopback Spotify: linked listeners, cursors, token refresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from crawler_aws import REGION, put_secret
from crawler_fakes import CLIENT_ID, CLIENT_SECRET, QUOTA_EXCEEDED_BODY, Fakes, Reply, spotify_id, spotify_track

from catalog.bundle import BaseRows, TrackMeta, write_base
from catalog.bundle_store import BundleStore
from catalog.keys import new_index_version
from catalog.listens import ListenTable
from catalog.model import MODEL_ID
from catalog.records import utc_now_iso
from catalog.train_requests import TrainRequest
from infra.context import LocalLambdaContext
from infra.resources import LOCAL_STACK_NAME, template_table_params

INDEX_BUCKET = "feed-index"
LISTENS = "feed-listens"
# What the template gives the function for the local stack's name (the IAM check resolves it the same way).
LISTENERS_PATH = f"/{LOCAL_STACK_NAME}/listeners"
T0_MS = 1_780_000_000_000
TRACKS = 12


def catalogue_track(i: int) -> dict[str, Any]:
    return spotify_track(spotify_id(100 + i), f"Song {i}", [f"Artist {i}"], duration_ms=180_000 + i)


@pytest.fixture
def feed_env(aws: None, crawler_env: Fakes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Fakes:
    """An index of TRACKS catalogue tracks (Spotify ids of catalogue_track), Listens, TrainQueue, the app's secret."""
    put_secret({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=INDEX_BUCKET)
    ids = [catalogue_track(i)["id"] for i in range(TRACKS)]
    metas = [TrackMeta(track_id=t, title=f"Song {i}", artists=(f"Artist {i}",), source="spotify").to_json() for i, t in enumerate(ids)]
    vectors = np.random.default_rng(0).normal(size=(TRACKS, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    manifest = write_base(tmp_path / "base", [BaseRows(ids, metas, vectors)], version=new_index_version(),
                          created_at=utc_now_iso(), model=MODEL_ID, n_trees=4, search_k=1000)
    store = BundleStore(INDEX_BUCKET)
    store.publish_base(tmp_path / "base", manifest, utc_now_iso(), store.read_latest().etag)
    boto3.client("dynamodb", region_name=REGION).create_table(**template_table_params(LISTENS, "ListensTable"))
    queue = boto3.client("sqs", region_name=REGION).create_queue(QueueName="feed-train")["QueueUrl"]
    for name, value in {"INDEX_BUCKET": INDEX_BUCKET, "LISTENS_TABLE": LISTENS, "TRAIN_QUEUE_URL": queue,
                        "LISTENERS_PATH": LISTENERS_PATH, "SOUNDSLIKE_STATE_DIR": str(tmp_path / "state")}.items():
        monkeypatch.setenv(name, value)
    return crawler_env


def link(fakes: Fakes, user: str, plays: list[tuple[int, int]], **extra: Any) -> str:
    """A listener as make listener-login leaves them: a refresh token in their SecureString parameter.
    ``plays``: (minutes after T0, catalogue track index)."""
    token = fakes.spotify.issue_refresh_token()
    fakes.spotify.listener_plays[token] = [(T0_MS + 60_000 * m, catalogue_track(i)) for m, i in plays]
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=f"{LISTENERS_PATH}/{user}", Type="SecureString", Value=json.dumps({"refresh_token": token, **extra}))
    return token


def parameter(user: str) -> dict[str, Any]:
    raw = boto3.client("ssm", region_name=REGION).get_parameter(Name=f"{LISTENERS_PATH}/{user}", WithDecryption=True)
    return json.loads(raw["Parameter"]["Value"])


def run() -> dict[str, Any]:
    from crawler.feed_handler import lambda_handler

    return lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
                          LocalLambdaContext(function_name="ListenerFeedFunction"))


def train_requests() -> list[TrainRequest]:
    import os

    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=os.environ["TRAIN_QUEUE_URL"], MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=os.environ["TRAIN_QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])
    return [TrainRequest.from_body(m["Body"]) for m in messages]


def stored(user: str) -> list[Any]:
    return list(ListenTable(LISTENS).listens_of(user))


def test_new_plays_are_imported_once_and_the_cursor_remembers_where_it_stopped(feed_env: Fakes) -> None:
    spotify = feed_env.spotify
    token = link(feed_env, "ana", [(4 * m, m % TRACKS) for m in range(30)])  # 30 plays, 4 minutes apart
    first = run()
    assert first["listeners"] == 1 and first["errors"] == {}
    assert first["imported"]["ana"]["added"] == 30 and first["imported"]["ana"]["matched"] == 30
    rows = stored("ana")
    assert [r.track_id for r in rows] == [catalogue_track(m % TRACKS)["id"] for m in range(30)]
    assert rows[0].ms_played == 180_000 and not rows[0].skipped
    # Marked as the feed's, whose length is the track's duration: an export's record replaces it.
    assert all(r.from_feed for r in rows)
    assert parameter("ana")["after_ms"] == T0_MS + 60_000 * 4 * 29
    assert parameter("ana")["refresh_token"] == token and parameter("ana")["token_info"]["access_token"]
    (request,) = train_requests()
    assert request.user_id == "ana" and request.last_import["added"] == 30
    # Pages of 50 at most; the first asked with no cursor, the spotipy call it was.
    (call,) = spotify.requests_to(r"^/v1/me/player/recently-played$")
    assert call.query == {"limit": "50"}

    # Three more plays; the next run asks after the cursor and imports those alone.
    spotify.listener_plays[token] += [(T0_MS + 60_000 * (200 + m), catalogue_track(m)) for m in range(3)]
    second = run()
    assert second["imported"]["ana"]["added"] == 3 and second["imported"]["ana"]["alreadyImported"] == 0
    assert spotify.requests_to(r"^/v1/me/player/recently-played$")[-1].query == {"limit": "50", "after": str(T0_MS + 60_000 * 116)}
    assert len(stored("ana")) == 33
    assert [r.last_import["added"] for r in train_requests()] == [3]

    # Nothing new: nothing imported, the cursor stays, no training asked for.
    third = run()
    assert third["imported"]["ana"]["plays"] == 0
    assert parameter("ana")["after_ms"] == T0_MS + 60_000 * 202
    assert train_requests() == []


def test_a_lost_cursor_reimports_nothing_twice(feed_env: Fakes) -> None:
    link(feed_env, "ana", [(m, m % TRACKS) for m in range(10)])
    run()
    train_requests()
    ssm = boto3.client("ssm", region_name=REGION)
    # As if the run had died after storing the plays and before moving the cursor.
    values = parameter("ana")
    del values["after_ms"]
    ssm.put_parameter(Name=f"{LISTENERS_PATH}/ana", Type="SecureString", Value=json.dumps(values), Overwrite=True)
    again = run()
    assert (again["imported"]["ana"]["added"], again["imported"]["ana"]["alreadyImported"]) == (0, 10)
    assert len(stored("ana")) == 10 and train_requests() == []


def test_before_pages_are_followed_down_to_the_cursor(feed_env: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler import spotify as spotify_module

    monkeypatch.setattr(spotify_module, "PAGE_LIMIT", 4)
    link(feed_env, "ana", [(m, m % TRACKS) for m in range(10)], after_ms=T0_MS + 60_000 * 2)
    result = run()
    assert result["imported"]["ana"]["added"] == 7  # minutes 3..9
    queries = [r.query for r in feed_env.spotify.requests_to(r"^/v1/me/player/recently-played$")]
    assert queries[0] == {"limit": "4", "after": str(T0_MS + 120_000)}
    assert queries[1:] == [{"limit": "4", "before": str(T0_MS + 60_000 * 6)}]  # 5, 4, 3 new; 2 is the cursor: done


def test_an_expired_access_token_is_refreshed_with_the_listeners_refresh_token(feed_env: Fakes) -> None:
    link(feed_env, "ana", [(0, 1)])
    run()
    feed_env.spotify.expire_access_tokens()
    feed_env.spotify.listener_plays[parameter("ana")["refresh_token"]].append((T0_MS + 60_000 * 9, catalogue_track(2)))
    result = run()
    assert result["imported"]["ana"]["added"] == 1
    grants = [r.body.decode() for r in feed_env.spotify.requests_to(r"^/api/token$")]
    assert sum("grant_type=refresh_token" in g for g in grants) >= 2


def test_one_broken_link_is_reported_and_the_others_are_fed(feed_env: Fakes) -> None:
    link(feed_env, "ana", [(0, 1), (5, 2)])
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=f"{LISTENERS_PATH}/bo", Type="SecureString", Value=json.dumps({"refresh_token": "revoked"}))
    result = run()
    assert result["listeners"] == 2
    assert result["imported"]["ana"]["added"] == 2 and "bo" not in result["imported"]
    assert result["errors"]["bo"] == (
        "Spotify refused the credentials (error: invalid_grant, error_description: Invalid refresh token); "
        "run make spotify-login again [for this listener: make listener-login USER=bo]"
    )
    assert stored("bo") == []


def test_spotifys_quota_error_stops_the_run_at_once(feed_env: Fakes) -> None:
    link(feed_env, "ana", [(0, 1)])
    link(feed_env, "bo", [(0, 2)])
    feed_env.spotify.fail(r"^/v1/me/player/recently-played$", Reply.json(QUOTA_EXCEEDED_BODY, 429, {"Retry-After": "1"}))
    result = run()
    assert result["listeners"] == 1 and result["imported"] == {}
    assert "QUOTA_EXCEEDED" in result["stopped"] and result["errors"] == {"ana": result["stopped"]}
    assert len(feed_env.spotify.requests_to(r"^/v1/me/player/recently-played$")) == 1
    assert "after_ms" not in parameter("ana")


def test_nobody_linked_reads_no_index(feed_env: Fakes) -> None:
    boto3.client("s3", region_name=REGION).delete_object(Bucket=INDEX_BUCKET, Key="index/LATEST.json")
    assert run() == {"listeners": 0, "imported": {}, "errors": {}, "stopped": ""}


def test_listener_login_links_an_account_that_the_feed_then_reads(feed_env: Fakes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """make listener-login USER=ana: the browser login stores the refresh token in ana's SecureString parameter alone."""
    from test_crawler_cli import _browser

    from crawler.__main__ import main

    monkeypatch.setattr("builtins.input", _browser(capsys))
    assert main(["listener-login", "ana"]) == 0
    raw = boto3.client("ssm", region_name=REGION).get_parameter(Name=f"{LISTENERS_PATH}/ana", WithDecryption=True)["Parameter"]
    assert raw["Type"] == "SecureString"
    values = json.loads(raw["Value"])
    assert values["refresh_token"] in feed_env.spotify.refresh_tokens
    assert "client_secret" not in values and "client_id" not in values
    assert f"Refresh token stored in SSM parameter {LISTENERS_PATH}/ana." in capsys.readouterr().out
    feed_env.spotify.listener_plays[values["refresh_token"]] = [(T0_MS, catalogue_track(3))]
    assert main(["feed"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"]["ana"]["added"] == 1
