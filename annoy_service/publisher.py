"""Publishing an index bundle: immutable objects first, LATEST.json last, then the announcement.

A reader that follows LATEST.json always finds a complete bundle: the pointer is
written only after both bundle objects exist, and pruning never touches the
version LATEST names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from catalog.bundle import LatestPointer, Manifest
from catalog.keys import INDEX_PREFIX, LATEST_KEY, bundle_prefix
from catalog.storage import NOT_FOUND_CODES, client, error_code

EVENT_TYPE = "IndexPublished"
_DELETE_BATCH_KEYS = 1000  # S3 DeleteObjects takes at most 1000 keys a call

logger = Logger(child=True)


class IndexStore:
    """index/ objects in the index bucket."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self.s3 = s3 or client("s3")

    def read_latest(self) -> LatestPointer | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=LATEST_KEY)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return LatestPointer.from_json(body)

    def write_bundle(self, manifest: Manifest, ann_path: str | Path) -> None:
        """The .ann file, then the manifest that vouches for it (with its SHA-256)."""
        self.s3.upload_file(
            str(ann_path), self.bucket, manifest.ann_key, ExtraArgs={"ContentType": "application/octet-stream"}
        )
        self.s3.put_object(
            Bucket=self.bucket, Key=manifest.manifest_key, Body=manifest.to_json(), ContentType="application/json"
        )

    def write_latest(self, pointer: LatestPointer) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=LATEST_KEY,
            Body=pointer.to_json(),
            ContentType="application/json",
            CacheControl="no-cache",
        )

    def versions(self) -> list[str]:
        """Every version with objects under index/, oldest first (versions sort by time)."""
        found: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=INDEX_PREFIX, Delimiter="/"):
            for prefix in page.get("CommonPrefixes", []):
                found.append(prefix["Prefix"][len(INDEX_PREFIX):].rstrip("/"))
        return sorted(found)

    def delete_version(self, version: str) -> None:
        paginator = self.s3.get_paginator("list_objects_v2")
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=bundle_prefix(version))
            for obj in page.get("Contents", [])
        ]
        for start in range(0, len(keys), _DELETE_BATCH_KEYS):
            batch = keys[start:start + _DELETE_BATCH_KEYS]
            response = self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            if response.get("Errors"):
                raise RuntimeError(f"could not delete parts of index version {version}: {response['Errors'][:3]}")


class Announcer:
    """The IndexPublished announcement on the SNS topic."""

    def __init__(self, topic_arn: str, sns: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self.sns = sns or client("sns")

    def announce(self, manifest: Manifest, bucket: str) -> str:
        message = {
            "type": EVENT_TYPE,
            "version": manifest.version,
            "count": manifest.count,
            "dim": manifest.dim,
            "model": manifest.model,
            "bucket": bucket,
            "manifest_key": manifest.manifest_key,
            "ann_key": manifest.ann_key,
        }
        response = self.sns.publish(
            TopicArn=self.topic_arn,
            Message=json.dumps(message),
            MessageAttributes={"type": {"DataType": "String", "StringValue": EVENT_TYPE}},
        )
        return response["MessageId"]


@dataclass(frozen=True)
class Published:
    pointer: LatestPointer
    message_id: str
    pruned: list[str]


def prune_versions(store: IndexStore, keep: int, current: str) -> list[str]:
    """Delete all but the newest ``keep`` versions; never the one LATEST names."""
    if keep < 1:
        raise ValueError(f"must keep at least 1 index version, got {keep}")
    versions = store.versions()
    doomed = [v for v in versions[:-keep] if v != current] if len(versions) > keep else []
    for version in doomed:
        store.delete_version(version)
    return doomed


def publish(store: IndexStore, announcer: Announcer, manifest: Manifest, ann_path: str | Path, keep: int) -> Published:
    """Bundle, then LATEST.json, then the announcement, then pruning.

    Pruning comes last and its failure is only logged: it loses nothing, and the
    next publication prunes again.
    """
    manifest.validate()
    store.write_bundle(manifest, ann_path)
    pointer = LatestPointer.for_manifest(manifest)
    store.write_latest(pointer)
    message_id = announcer.announce(manifest, store.bucket)
    try:
        pruned = prune_versions(store, keep, current=manifest.version)
    except (ClientError, RuntimeError):
        logger.exception("pruning old index versions failed; the next publication tries again")
        pruned = []
    return Published(pointer=pointer, message_id=message_id, pruned=pruned)
