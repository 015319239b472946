"""Fixtures for the crawler: moto for AWS, loopback fakes for Spotify, Deezer and the CDN."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from crawler_aws import BUCKET, REGION, SECRET, TABLE, put_secret
from crawler_fakes import CLIENT_ID, CLIENT_SECRET, FakeCdn, FakeDeezer, Fakes, FakeSpotify
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from crawler.pipeline import Crawler, build_crawler, default_crawler
from crawler.settings import CrawlerSettings
from infra.resources import template_table_params


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    cdn = FakeCdn()
    servers = Fakes(FakeSpotify(), FakeDeezer(cdn), cdn)
    yield servers
    for server in (servers.spotify, servers.deezer, servers.cdn):
        server.close()


@pytest.fixture
def crawler_env(monkeypatch: pytest.MonkeyPatch, fakes: Fakes) -> Fakes:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "TRACKS_TABLE": TABLE,
        "AUDIO_BUCKET": BUCKET,
        "SPOTIFY_SECRET_ID": SECRET,
        "SPOTIFY_API_URL": fakes.spotify.api_url,
        "SPOTIFY_ACCOUNTS_URL": fakes.spotify.accounts_url,
        "DEEZER_API_URL": fakes.deezer.base_url,
        "SPOTIFY_PREVIEW_HOSTS": "127.0.0.1",
        "DEEZER_PREVIEW_HOSTS": "127.0.0.1",
        "CRAWLER_ALLOW_HTTP_LOOPBACK": "1",
        "HTTP_BACKOFF_S": "0.01",
        "POWERTOOLS_METRICS_NAMESPACE": "soundslike-test",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("SPOTIFY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIFY_CLIENT_SECRET", raising=False)
    return fakes


# moto's in-process DynamoDB is not thread-safe: a GSI Query walks the table's items while another
# crawl worker's put changes them ("dictionary changed size during iteration"). DynamoDB itself serves
# concurrent calls, so the crawler's workers stay concurrent and only the emulator's calls take turns.
DYNAMODB_OPERATIONS = ("query", "scan", "get_item", "batch_get_item", "put_item", "update_item", "delete_item",
                       "batch_write_item", "transact_write_items")


def _one_call_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.RLock()
    for name in DYNAMODB_OPERATIONS:
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def aws(crawler_env: Fakes, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _one_call_at_a_time(monkeypatch)
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(**template_table_params(TABLE))
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        default_crawler.cache_clear()
        yield
        default_crawler.cache_clear()


@pytest.fixture
def user_secret(aws: None, crawler_env: Fakes) -> str:
    """The secret as make spotify-login leaves it: app credentials and the user's refresh token."""
    refresh_token = crawler_env.spotify.issue_refresh_token()
    put_secret({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": refresh_token})
    return refresh_token


@pytest.fixture
def crawler(aws: None, user_secret: str) -> Crawler:
    return build_crawler(TABLE, BUCKET, SECRET, CrawlerSettings.from_env())
