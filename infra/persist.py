"""The local stack keeps its data: snapshots of template.yaml's tables, buckets, secrets and
parameters under the state dir, written periodically and on shutdown, restored on start.

moto keeps everything in memory, so without this `make down` (or a crash) would forget
the catalogue, the published index and every other table. What is kept is generic:
every AWS::DynamoDB::Table, AWS::S3::Bucket, AWS::SecretsManager::Secret and
AWS::SSM::Parameter of the template, by logical id. Queues are not kept: restoring
the audio bucket's previews re-announces them to ExtractQueue, so pending work comes
back; messages already in a dead-letter queue do not.

Layout under ``<state dir>/data``: ``tables/<LogicalId>.jsonl`` (one item per line, the
low-level DynamoDB JSON with Binary as base64), ``buckets/<LogicalId>/index.json`` and
one file per object (written only when its ETag changed, so a snapshot of a large
bucket costs a listing), ``secrets.json``, ``parameters.json`` and ``snapshot.json``
(when and how much). Every file is replaced atomically: a crash between snapshots
loses at most the last interval, never the snapshot itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.resources import LocalResources
from infra.template import resources_of_type

SNAPSHOT_INTERVAL_S = 30.0
BATCH_WRITE_MAX = 25  # DynamoDB BatchWriteItem's limit
_BINARY = "__b64__"
log = logging.getLogger("infra.persist")


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {_BINARY: base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot snapshot a {type(value).__name__}")


def _decode(value: dict[str, Any]) -> Any:
    return base64.b64decode(value[_BINARY]) if set(value) == {_BINARY} else value


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class SnapshotSummary:
    saved_at: str = ""
    items: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)
    secrets: int = 0
    parameters: int = 0


class StackData:
    """Saves the stack's data to ``directory`` and puts it back into a freshly built stack."""

    def __init__(self, template: dict[str, Any], resources: LocalResources, client: Callable[[str], Any],
                 directory: Path) -> None:
        self.template = template
        self.resources = resources
        self.client = client
        self.directory = directory

    def _ids(self, resource_type: str) -> list[str]:
        return sorted(name for name in resources_of_type(self.template, resource_type) if name in self.resources.refs)

    @property
    def summary_path(self) -> Path:
        return self.directory / "snapshot.json"

    # -- save ------------------------------------------------------------------------------

    def save(self) -> SnapshotSummary:
        summary = SnapshotSummary(saved_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        for logical_id in self._ids("AWS::DynamoDB::Table"):
            summary.items[logical_id] = self._save_table(logical_id)
        for logical_id in self._ids("AWS::S3::Bucket"):
            summary.objects[logical_id] = self._save_bucket(logical_id)
        secrets = {i: self._secret(i) for i in self._ids("AWS::SecretsManager::Secret")}
        _write_atomically(self.directory / "secrets.json", json.dumps(secrets).encode())
        ssm = self.client("ssm")
        parameters = {i: ssm.get_parameter(Name=self.resources.refs[i])["Parameter"]["Value"]
                      for i in self._ids("AWS::SSM::Parameter")}
        _write_atomically(self.directory / "parameters.json", json.dumps(parameters).encode())
        summary.secrets, summary.parameters = len(secrets), len(parameters)
        _write_atomically(self.summary_path, json.dumps(asdict(summary), indent=2).encode())
        return summary

    def _scan(self, table: str) -> Iterator[dict[str, Any]]:
        for page in self.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            yield from page.get("Items", [])

    def _save_table(self, logical_id: str) -> int:
        lines = [json.dumps(item, default=_encode, separators=(",", ":")) for item in self._scan(self.resources.refs[logical_id])]
        _write_atomically(self.directory / "tables" / f"{logical_id}.jsonl", ("\n".join(lines) + "\n" if lines else "").encode())
        return len(lines)

    def _save_bucket(self, logical_id: str) -> int:
        s3 = self.client("s3")
        bucket = self.resources.refs[logical_id]
        folder = self.directory / "buckets" / logical_id
        index_path = folder / "index.json"
        previous: dict[str, dict[str, Any]] = json.loads(index_path.read_text()) if index_path.exists() else {}
        index: dict[str, dict[str, Any]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for listed in page.get("Contents", []):
                key, etag = listed["Key"], listed["ETag"]
                if previous.get(key, {}).get("etag") == etag and (folder / previous[key]["file"]).exists():
                    index[key] = previous[key]
                    continue
                try:
                    obj = s3.get_object(Bucket=bucket, Key=key)
                except s3.exceptions.NoSuchKey:
                    continue  # deleted since the listing
                name = hashlib.sha256(key.encode()).hexdigest()
                _write_atomically(folder / "objects" / name, obj["Body"].read())
                index[key] = {"etag": etag, "file": f"objects/{name}", "metadata": obj.get("Metadata", {}),
                              "content_type": obj.get("ContentType", "binary/octet-stream")}
        _write_atomically(index_path, json.dumps(index).encode())
        kept = {entry["file"] for entry in index.values()}
        for entry in previous.values():
            if entry["file"] not in kept:
                (folder / entry["file"]).unlink(missing_ok=True)
        return len(index)

    def _secret(self, logical_id: str) -> str:
        return self.client("secretsmanager").get_secret_value(SecretId=self.resources.refs[logical_id])["SecretString"]

    # -- restore ---------------------------------------------------------------------------

    def restore(self) -> SnapshotSummary | None:
        """Put a saved snapshot back; None when there is none (a first start, or after `make clean`)."""
        if not self.summary_path.exists():
            return None
        summary = SnapshotSummary(saved_at=json.loads(self.summary_path.read_text())["saved_at"])
        for logical_id in self._ids("AWS::DynamoDB::Table"):
            summary.items[logical_id] = self._restore_table(logical_id)
        for logical_id in self._ids("AWS::S3::Bucket"):
            summary.objects[logical_id] = self._restore_bucket(logical_id)
        secrets = self._read_json("secrets.json")
        for logical_id, value in secrets.items():
            if logical_id in self.resources.refs:
                self.client("secretsmanager").put_secret_value(SecretId=self.resources.refs[logical_id], SecretString=value)
        parameters = self._read_json("parameters.json")
        for logical_id, value in parameters.items():
            if logical_id in self.resources.refs:
                self.client("ssm").put_parameter(Name=self.resources.refs[logical_id], Value=value, Overwrite=True)
        summary.secrets, summary.parameters = len(secrets), len(parameters)
        return summary

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.directory / name
        return json.loads(path.read_text()) if path.exists() else {}

    def _restore_table(self, logical_id: str) -> int:
        path = self.directory / "tables" / f"{logical_id}.jsonl"
        if not path.exists():
            return 0
        items = [json.loads(line, object_hook=_decode) for line in path.read_text().splitlines() if line]
        ddb = self.client("dynamodb")
        table = self.resources.refs[logical_id]
        for start in range(0, len(items), BATCH_WRITE_MAX):
            requests = {table: [{"PutRequest": {"Item": item}} for item in items[start:start + BATCH_WRITE_MAX]]}
            while requests:
                requests = ddb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        return len(items)

    def _restore_bucket(self, logical_id: str) -> int:
        folder = self.directory / "buckets" / logical_id
        index = json.loads((folder / "index.json").read_text()) if (folder / "index.json").exists() else {}
        s3 = self.client("s3")
        for key, entry in index.items():
            s3.put_object(Bucket=self.resources.refs[logical_id], Key=key, Body=(folder / entry["file"]).read_bytes(),
                          Metadata=entry["metadata"], ContentType=entry["content_type"])
        return len(index)


class PeriodicSnapshots:
    """Saves every ``interval_s`` in a background thread, and once more on stop."""

    def __init__(self, data: StackData, interval_s: float = SNAPSHOT_INTERVAL_S) -> None:
        self.data = data
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="stack-snapshots")
        self._lock = threading.Lock()

    def _save(self) -> None:
        with self._lock:
            try:
                self.data.save()
            except Exception:  # the next interval tries again; the last good snapshot stays in place
                log.exception("snapshot of the local stack's data failed")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._save()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._save()
