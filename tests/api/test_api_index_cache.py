"""IndexCache: verified load, atomic swap, re-check interval, bad bundles never replace a good one."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from api.index_cache import IndexCache
from catalog.bundle import SERVING_FILES
from catalog.keys import LATEST_KEY

BUCKET = "soundslike-test-index"


class CountingS3:
    """The real (moto) client, counting the calls that reach S3."""

    def __init__(self) -> None:
        self.client = boto3.client("s3")
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def get_object(self, **kwargs: Any) -> Any:
        with self.lock:
            self.calls.append(f"get_object {kwargs['Key']}")
        return self.client.get_object(**kwargs)

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        with self.lock:
            self.calls.append(f"download_file {key}")
        self.client.download_file(bucket, key, filename)


@pytest.fixture
def s3(aws: None) -> CountingS3:
    return CountingS3()


@pytest.fixture
def cache(s3: CountingS3, tmp_path: Path, clock: Any) -> IndexCache:
    return IndexCache(BUCKET, s3=s3, directory=tmp_path / "index", recheck_s=60.0, clock=clock)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_no_index_before_latest_exists_and_the_first_bundle_loads_after_the_interval(cache, publish, clock) -> None:
    assert cache.current() is None
    bundle = publish(n=20)
    clock.advance(59.0)
    assert cache.current() is None
    clock.advance(1.0)
    loaded = cache.current()
    assert loaded is not None and loaded.version == bundle.manifest.version
    assert loaded.count == 20 and sorted(loaded.track_ids()) == sorted(bundle.track_ids)
    assert loaded.meta(bundle.track_ids[7]).title == "Song 7"


def test_latest_is_read_at_most_once_per_interval_and_a_new_version_is_swapped_in(cache, publish, clock, s3) -> None:
    first = publish(n=20, seed=1)
    assert cache.current().version == first.manifest.version
    latest_reads = lambda: s3.calls.count(f"get_object {LATEST_KEY}")  # noqa: E731
    assert latest_reads() == 1
    second = publish(n=30, seed=2)
    for _ in range(100):
        clock.advance(0.5)
        assert cache.current().version == first.manifest.version
    assert latest_reads() == 1
    clock.advance(10.0)
    swapped = cache.current()
    assert swapped.version == second.manifest.version and swapped.count == 30
    assert latest_reads() == 2
    # An unchanged LATEST downloads nothing.
    downloads = sum(c.startswith("download_file") for c in s3.calls)
    clock.advance(60.0)
    assert cache.current().version == second.manifest.version
    assert sum(c.startswith("download_file") for c in s3.calls) == downloads


def test_old_bundle_files_are_removed_after_a_swap(cache, publish, clock, tmp_path) -> None:
    first = publish(n=20, seed=1)
    cache.current()
    second = publish(n=20, seed=2)
    clock.advance(60.0)
    cache.current()
    versions = sorted(p.name for p in (tmp_path / "index").iterdir())
    assert versions == [second.manifest.version]
    assert first.manifest.version not in versions


@pytest.mark.parametrize("tamper", ["checksum", "dim"])
def test_bad_bundle_keeps_the_previous_index_and_logs_an_error(cache, publish, clock, s3, caplog, tamper, tmp_path) -> None:
    good = publish(n=20, seed=1)
    assert cache.current().version == good.manifest.version
    bad = publish(n=20, seed=2, tamper=tamper)
    clock.advance(60.0)
    served = cache.current()
    assert served.version == good.manifest.version
    first = good.track_ids[0]
    assert len(served.search(served.vector(first), 3)) == 3  # the previous index still answers
    errors = errors_logged(caplog)
    assert errors and errors[-1].version == bad.manifest.version
    assert errors[-1].serving == good.manifest.version
    assert not (tmp_path / "index" / bad.manifest.version).exists()
    # The rejected version is not downloaded again at every check.
    downloads = sum(c.startswith("download_file") for c in s3.calls)
    clock.advance(60.0)
    assert cache.current().version == good.manifest.version
    assert sum(c.startswith("download_file") for c in s3.calls) == downloads
    # A good bundle published later is taken.
    fixed = publish(n=25, seed=3)
    clock.advance(60.0)
    assert cache.current().version == fixed.manifest.version


def test_bad_first_bundle_leaves_no_index(cache, publish) -> None:
    publish(n=20, tamper="checksum")
    assert cache.current() is None


def test_unreadable_latest_is_logged_and_changes_nothing(cache, publish, clock, caplog) -> None:
    good = publish(n=20)
    cache.current()
    boto3.client("s3").put_object(Bucket=BUCKET, Key=LATEST_KEY, Body=b"{not json")
    clock.advance(60.0)
    assert cache.current().version == good.manifest.version
    assert any("LATEST" in record.getMessage() for record in errors_logged(caplog))


def test_manifest_that_disagrees_with_latest_is_rejected(cache, publish, clock) -> None:
    good = publish(n=20, seed=1)
    cache.current()
    other = publish(n=20, seed=2)
    pointer = json.loads(other.pointer.to_json())
    pointer["base_manifest_sha256"] = good.pointer.base_manifest_sha256
    boto3.client("s3").put_object(Bucket=BUCKET, Key=LATEST_KEY, Body=json.dumps(pointer).encode())
    clock.advance(60.0)
    assert cache.current().version == good.manifest.version


def test_concurrent_first_requests_all_get_the_index_from_one_download(cache, publish, s3) -> None:
    bundle = publish(n=40)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(cache.current())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 8
    assert {r.version for r in results} == {bundle.manifest.version}
    assert sum(c.startswith("download_file") for c in s3.calls) == len(SERVING_FILES)


def test_prefault_load_answers_the_same(publish, s3, tmp_path, clock) -> None:
    bundle = publish(n=30)
    plain = IndexCache(BUCKET, s3=s3, directory=tmp_path / "a", prefault=False, clock=clock).current()
    prefaulted = IndexCache(BUCKET, s3=s3, directory=tmp_path / "b", prefault=True, clock=clock).current()
    assert plain.version == prefaulted.version == bundle.manifest.version
    query = plain.vector(bundle.track_ids[5])
    assert plain.search(query, 10) == prefaulted.search(query, 10)


def test_a_version_that_is_not_a_plain_directory_name_is_rejected(cache, publish, clock, tmp_path) -> None:
    good = publish(n=20)
    cache.current()
    pointer = json.loads(good.pointer.to_json())
    pointer["base_version"] = "../../escape"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=LATEST_KEY, Body=json.dumps(pointer).encode())
    clock.advance(60.0)
    assert cache.current().version == good.manifest.version
    assert not (tmp_path / "escape").exists()
