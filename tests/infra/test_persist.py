"""infra.persist: the local stack's snapshots, against moto in-process with the template's resources."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.persist import StackData
from infra.resources import LocalResources, LocalStackBuilder
from infra.template import load_template


class CountingClients:
    """boto3 clients by service, counting the S3 GetObject calls made through them."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.get_object_calls = 0

    def __call__(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name="us-east-1")
            if service == "s3":
                self.clients[service].meta.events.register("before-call.s3.GetObject", self._count)
        return self.clients[service]

    def _count(self, **_: Any) -> None:
        self.get_object_calls += 1


@pytest.fixture
def built() -> Iterator[tuple[CountingClients, LocalResources]]:
    with mock_aws():
        clients = CountingClients()
        yield clients, LocalStackBuilder(load_template(), clients).build()


def test_a_snapshot_copies_only_objects_whose_etag_changed_and_drops_deleted_ones(built, tmp_path: Path) -> None:
    clients, resources = built
    s3 = clients("s3")
    bucket = resources.refs["IndexBucket"]
    for name in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=f"index/{name}", Body=name.encode())
    data = StackData(load_template(), resources, clients, tmp_path)
    data.save()
    assert clients.get_object_calls == 3

    s3.put_object(Bucket=bucket, Key="index/b", Body=b"changed")
    s3.delete_object(Bucket=bucket, Key="index/c")
    summary = data.save()
    assert clients.get_object_calls == 4
    assert summary.objects["IndexBucket"] == 2
    assert len(list((tmp_path / "buckets" / "IndexBucket" / "objects").iterdir())) == 2


def test_restore_into_a_fresh_stack_gives_back_items_with_binary_values_and_objects(tmp_path: Path) -> None:
    with mock_aws():
        clients = CountingClients()
        resources = LocalStackBuilder(load_template(), clients).build()
        clients("dynamodb").put_item(TableName=resources.refs["TracksTable"], Item={
            "track_id": {"S": "t1"}, "embedding": {"B": b"\x00\x01\xff"}, "playlists": {"SS": ["p"]}})
        clients("s3").put_object(Bucket=resources.refs["IndexBucket"], Key="index/LATEST.json", Body=b"{}",
                                 ContentType="application/json", Metadata={"k": "v"})
        StackData(load_template(), resources, clients, tmp_path).save()

    with mock_aws():  # a new, empty moto: what `make up` starts after `make down`
        clients = CountingClients()
        fresh = LocalStackBuilder(load_template(), clients).build()
        summary = StackData(load_template(), fresh, clients, tmp_path).restore()
        assert summary is not None and summary.items["TracksTable"] == 1
        item = clients("dynamodb").get_item(TableName=fresh.refs["TracksTable"], Key={"track_id": {"S": "t1"}})["Item"]
        assert item["embedding"]["B"] == b"\x00\x01\xff" and item["playlists"]["SS"] == ["p"]
        obj = clients("s3").get_object(Bucket=fresh.refs["IndexBucket"], Key="index/LATEST.json")
        assert obj["Body"].read() == b"{}" and obj["Metadata"] == {"k": "v"}


def test_no_snapshot_restores_nothing(built, tmp_path: Path) -> None:
    clients, resources = built
    assert StackData(load_template(), resources, clients, tmp_path).restore() is None
