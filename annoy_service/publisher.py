"""After LATEST.json moves: the IndexPublished announcement, then pruning of old bundles.

A reader that follows LATEST.json always finds a complete bundle: its objects are
written before the pointer, and pruning never touches the base LATEST names nor
its newest deltas.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from catalog.bundle import LatestPointer
from catalog.bundle_store import BundleStore
from catalog.storage import client

EVENT_TYPE = "IndexPublished"
# Deltas of the current base kept besides the newest: a reader that read LATEST a moment
# ago may still be downloading the previous one.
KEEP_OLDER_DELTAS = 2

logger = Logger(child=True)


class Announcer:
    """The IndexPublished announcement on the SNS topic."""

    def __init__(self, topic_arn: str, sns: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self.sns = sns or client("sns")

    def announce(self, pointer: LatestPointer, bucket: str) -> str:
        message = {
            "type": EVENT_TYPE,
            "version": pointer.version,
            "base_version": pointer.base_version,
            "delta_sequence": pointer.delta_sequence,
            "count": pointer.count,
            "dim": pointer.dim,
            "model": pointer.model,
            "bucket": bucket,
            "manifest_key": pointer.manifest_key,
            "delta_key": pointer.delta_key,
        }
        response = self.sns.publish(
            TopicArn=self.topic_arn,
            Message=json.dumps(message),
            MessageAttributes={"type": {"DataType": "String", "StringValue": EVENT_TYPE}},
        )
        return response["MessageId"]


def prune_versions(store: BundleStore, keep: int, current: str) -> list[str]:
    """Delete all but the newest ``keep`` bases; never the one LATEST names."""
    if keep < 1:
        raise ValueError(f"must keep at least 1 index version, got {keep}")
    versions = store.base_versions()
    doomed = [v for v in versions[:-keep] if v != current] if len(versions) > keep else []
    for version in doomed:
        store.delete_version(version)
    return doomed


def prune_deltas(store: BundleStore, pointer: LatestPointer) -> list[str]:
    """Deltas of the current base older than the newest few (deltas are cumulative: only the newest is needed)."""
    keys = [key for key in store.delta_keys(pointer.base_version) if key != pointer.delta_key]
    doomed = keys[:-KEEP_OLDER_DELTAS] if len(keys) > KEEP_OLDER_DELTAS else []
    store.delete_keys(doomed)
    return doomed


def announce_and_prune(store: BundleStore, announcer: Announcer, pointer: LatestPointer, keep: int) -> list[str]:
    """Announce what LATEST now names, then prune; pruning's failure is only logged (the next publication prunes again)."""
    announcer.announce(pointer, store.bucket)
    try:
        return prune_versions(store, keep, current=pointer.base_version) + prune_deltas(store, pointer)
    except (ClientError, RuntimeError):
        logger.exception("pruning old index objects failed; the next publication tries again")
        return []
