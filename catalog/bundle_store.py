"""The index bundle in S3: uploads and downloads of :mod:`catalog.bundle` files, and LATEST.json.

Bundle objects are immutable and written before the pointer that names them.
LATEST.json is written with a conditional put on the ETag read before the work
began (If-None-Match: * for the first write), so two writers racing can never
move it backwards: the slower one gets :class:`LatestMovedError` and starts again
from what the faster one published.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from catalog.bundle import (
    BaseManifest,
    BundleError,
    Delta,
    FileSum,
    LatestPointer,
    validate_version,
    verify_files,
)
from catalog.keys import INDEX_PREFIX, LATEST_KEY, MANIFEST_FILENAME, bundle_prefix, deltas_prefix
from catalog.storage import NOT_FOUND_CODES, client, error_code

# Answers to a conditional write that lost: the object changed (412) or another write was in flight (409).
_CONDITION_FAILED_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_DELETE_BATCH_KEYS = 1000  # S3 DeleteObjects takes at most 1000 keys a call


class LatestMovedError(RuntimeError):
    """LATEST.json changed since it was read: the conditional write was refused."""


@dataclass(frozen=True)
class LatestRead:
    """What index/LATEST.json held when read: the pointer, or why it is unusable, and its ETag."""

    pointer: LatestPointer | None
    etag: str | None  # None: the object does not exist
    error: str = ""  # set when the object exists but is not a usable pointer

    @property
    def exists(self) -> bool:
        return self.etag is not None


class BundleStore:
    """index/ objects in the index bucket."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self.s3 = s3 or client("s3")

    # -- LATEST.json -------------------------------------------------------------------

    def read_latest(self) -> LatestRead:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=LATEST_KEY)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return LatestRead(None, None)
            raise
        etag = response["ETag"]
        try:
            return LatestRead(LatestPointer.from_json(response["Body"].read()), etag)
        except BundleError as exc:
            return LatestRead(None, etag, str(exc))

    def write_latest(self, pointer: LatestPointer, etag: str | None) -> str:
        """Replace LATEST.json only if it still has ``etag`` (or, with None, does not exist yet)."""
        pointer.validate()
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            response = self.s3.put_object(
                Bucket=self.bucket,
                Key=LATEST_KEY,
                Body=pointer.to_json(),
                ContentType="application/json",
                CacheControl="no-cache",
                **condition,
            )
        except ClientError as exc:
            if error_code(exc) in _CONDITION_FAILED_CODES:
                raise LatestMovedError(f"LATEST.json changed while publishing {pointer.version}") from exc
            raise
        return str(response["ETag"])

    # -- bases -------------------------------------------------------------------------

    def upload_base(self, directory: Path, manifest: BaseManifest) -> str:
        """Every base file, then the manifest that vouches for them; returns the manifest's SHA-256."""
        prefix = bundle_prefix(manifest.version)
        for name in manifest.base_files:
            self.s3.upload_file(
                str(directory / name), self.bucket, prefix + name, ExtraArgs={"ContentType": "application/octet-stream"}
            )
        body = manifest.to_json()
        self.s3.put_object(Bucket=self.bucket, Key=manifest.manifest_key, Body=body, ContentType="application/json")
        return hashlib.sha256(body).hexdigest()

    def publish_base(self, directory: Path, manifest: BaseManifest, now_iso: str, etag: str | None = None) -> LatestPointer:
        """Upload a base and point LATEST.json at it with no delta (``etag``: the pointer it replaces, None if none)."""
        pointer = LatestPointer.for_base(manifest, self.upload_base(directory, manifest), now_iso)
        self.write_latest(pointer, etag)
        return pointer

    def read_manifest(self, version: str, expected_sha256: str | None = None) -> BaseManifest:
        validate_version(version)
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=bundle_prefix(version) + MANIFEST_FILENAME)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                raise BundleError(f"base {version} has no manifest.json") from exc
            raise
        if expected_sha256 is not None and hashlib.sha256(body).hexdigest() != expected_sha256:
            raise BundleError(f"manifest.json of {version} is not the one LATEST.json names")
        manifest = BaseManifest.from_json(body)
        if manifest.version != version:
            raise BundleError(f"manifest.json under {version} says version {manifest.version}")
        return manifest

    def check_base_objects(self, manifest: BaseManifest) -> None:
        """Every base file exists with the manifest's size (HEAD only: a cheap check for every publish)."""
        prefix = bundle_prefix(manifest.version)
        for name in manifest.base_files:
            try:
                size = int(self.s3.head_object(Bucket=self.bucket, Key=prefix + name)["ContentLength"])
            except ClientError as exc:
                if error_code(exc) in NOT_FOUND_CODES:
                    raise BundleError(f"base {manifest.version} has no {name}") from exc
                raise
            if size != manifest.files[name].bytes:
                raise BundleError(f"{name} of {manifest.version} has {size} bytes, manifest says {manifest.files[name].bytes}")

    def download_base(self, manifest: BaseManifest, directory: Path, names: tuple[str, ...]) -> None:
        """Download the named base files into ``directory`` and verify them against the manifest."""
        directory.mkdir(parents=True, exist_ok=True)
        prefix = bundle_prefix(manifest.version)
        for name in names:
            try:
                self.s3.download_file(self.bucket, prefix + name, str(directory / name))
            except ClientError as exc:
                if error_code(exc) in NOT_FOUND_CODES:
                    raise BundleError(f"base {manifest.version} has no {name}") from exc
                raise
        verify_files(directory, manifest, names)
        (directory / MANIFEST_FILENAME).write_bytes(manifest.to_json())

    # -- deltas ------------------------------------------------------------------------

    def upload_delta(self, delta: Delta, path: Path) -> FileSum:
        file = delta.write(path)
        self.s3.upload_file(str(path), self.bucket, delta.key, ExtraArgs={"ContentType": "application/octet-stream"})
        return file

    def download_delta(self, key: str, path: Path, expected_sha256: str, base_version: str) -> Delta:
        """The delta at ``key``, refused unless it has the named checksum and extends ``base_version``."""
        try:
            self.s3.download_file(self.bucket, key, str(path))
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                raise BundleError(f"delta {key} does not exist") from exc
            raise
        if FileSum.of(path).sha256 != expected_sha256:
            raise BundleError(f"delta {key} does not have the SHA-256 LATEST.json names")
        delta = Delta.read(path)
        if delta.base_version != base_version:
            raise BundleError(f"delta {key} extends base {delta.base_version}, not {base_version}")
        return delta

    def delta_keys(self, base_version: str) -> list[str]:
        """Keys of every delta of a base, oldest first (sequence numbers are zero-padded)."""
        return sorted(self._keys(deltas_prefix(base_version)))

    def read_delta_unchecked(self, key: str, path: Path, base_version: str) -> Delta:
        """A delta found by listing, not named by LATEST: its own consistency is all there is to check."""
        self.s3.download_file(self.bucket, key, str(path))
        delta = Delta.read(path)
        if delta.base_version != base_version or delta.key != key:
            raise BundleError(f"delta {key} is not a delta of base {base_version}")
        return delta

    # -- listing and pruning -----------------------------------------------------------

    def base_versions(self) -> list[str]:
        """Every version with objects under index/, oldest first (versions sort by time)."""
        found: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=INDEX_PREFIX, Delimiter="/"):
            for prefix in page.get("CommonPrefixes", []):
                found.append(prefix["Prefix"][len(INDEX_PREFIX):].rstrip("/"))
        return sorted(found)

    def _keys(self, prefix: str) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        return [obj["Key"] for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix) for obj in page.get("Contents", [])]

    def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH_KEYS):
            batch = keys[start:start + _DELETE_BATCH_KEYS]
            response = self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            if response.get("Errors"):
                raise RuntimeError(f"could not delete index objects: {response['Errors'][:3]}")

    def delete_version(self, version: str) -> None:
        self.delete_keys(self._keys(bundle_prefix(version)))
