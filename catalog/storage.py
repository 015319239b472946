"""Thin adapters over S3 and DynamoDB for the Tracks table and the audio bucket.

Endpoints come from the standard AWS_ENDPOINT_URL variable, so the same code
talks to AWS and to the local moto server without a branch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, unquote

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from catalog.descriptors import Descriptors
from catalog.keys import LOCAL_ID_PREFIX, deezer_number, listen_key, preview_key
from catalog.records import Source, Status, TrackRecord, tags_to_item, utc_now_iso

# Tracks' global secondary index on isrc (template.yaml): one catalogue entry per recording.
ISRC_INDEX = "isrc-index"

DEFAULT_MAX_ATTEMPTS = 6
logger = logging.getLogger(__name__)


def _client_config() -> Config:
    # AWS_MAX_ATTEMPTS (boto's own variable: total attempts) shortens the retries where waiting is pointless.
    attempts = int(os.environ.get("AWS_MAX_ATTEMPTS", "").strip() or DEFAULT_MAX_ATTEMPTS)
    return Config(retries={"mode": "standard", "total_max_attempts": attempts}, connect_timeout=5, read_timeout=60)


# Transient errors: the message or batch that met one is retried, not marked failed.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
        "TransactionConflictException",
    }
)


@cache
def client(service: str) -> Any:
    """One boto3 client per service and process (clients are thread-safe)."""
    return boto3.session.Session().client(service, config=_client_config())


@cache
def signing_client() -> Any:
    """An S3 client for presigned URLs: SigV4, so a URL's lifetime is its X-Amz-Expires."""
    return boto3.session.Session().client("s3", config=_client_config().merge(Config(signature_version="s3v4")))


@cache
def resource(service: str) -> Any:
    return boto3.session.Session().resource(service, config=_client_config())


def error_code(exc: BaseException) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def is_unreachable(exc: BaseException) -> bool:
    """S3 / DynamoDB could not be reached at all (refused, reset, timed out), after botocore's retries."""
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def is_transient(exc: BaseException) -> bool:
    """Throttling and 5xx answers from AWS: worth retrying later."""
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(exc) in TRANSIENT_ERROR_CODES or status >= 500


# -- S3 object metadata --------------------------------------------------------------
# S3 user metadata travels in HTTP headers, which carry ASCII only: values are
# percent-encoded UTF-8, lists are JSON.

def encode_object_metadata(record: TrackRecord, playlist: str = "") -> dict[str, str]:
    fields: dict[str, str] = {
        "track-id": record.track_id,
        "source": record.source.value,
        "title": record.title,
        "artists": json.dumps(record.artists, ensure_ascii=False),
        "album": record.album,
        "isrc": record.isrc,
        "duration-ms": "" if record.duration_ms is None else str(record.duration_ms),
        "preview-source": record.preview_source.value if record.preview_source else "",
        "playlist": playlist,
        "crawled-at": record.crawled_at,
        "spotify-id": record.spotify_id,
        "deezer-id": record.deezer_id,
    }
    return {k: quote(v, safe="") for k, v in fields.items() if v}


def decode_object_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    """Object metadata back to TrackRecord keyword arguments (what is present)."""
    raw = {k.lower(): unquote(v) for k, v in metadata.items()}
    values: dict[str, Any] = {}
    if "track-id" in raw:
        values["track_id"] = raw["track-id"]
    for name in ("source", "title", "album", "isrc"):
        if raw.get(name):
            values[name] = raw[name]
    if raw.get("artists"):
        try:
            artists = json.loads(raw["artists"])
            values["artists"] = [str(a) for a in artists] if isinstance(artists, list) else [str(artists)]
        except json.JSONDecodeError:
            values["artists"] = [raw["artists"]]
    if raw.get("duration-ms", "").isdigit():
        values["duration_ms"] = int(raw["duration-ms"])
    if raw.get("preview-source"):
        values["preview_source"] = raw["preview-source"]
    if raw.get("playlist"):
        values["playlists"] = {raw["playlist"]}
    if raw.get("crawled-at"):
        values["crawled_at"] = raw["crawled-at"]
    for name in ("spotify-id", "deezer-id"):
        if raw.get(name):
            values[name.replace("-", "_")] = raw[name]
    return values


NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def record_from_object_metadata(track_id: str, metadata: Mapping[str, str]) -> TrackRecord:
    """The track as a preview object's metadata describes it, for an item that may not exist yet."""
    guessed_source = Source.LOCAL if track_id.startswith(LOCAL_ID_PREFIX) else Source.SPOTIFY
    values = {"source": guessed_source, **decode_object_metadata(metadata), "track_id": track_id}
    try:
        return TrackRecord(**values)
    except ValueError as exc:
        logger.warning("object metadata of %s does not describe a track (%s); keeping only its id", track_id, exc)
        return TrackRecord(track_id=track_id, source=guessed_source)


@dataclass(frozen=True)
class AudioHead:
    size: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class AudioObject:
    key: str
    data: bytes
    metadata: dict[str, str]
    content_type: str


class AudioStore:
    """previews/{track_id}.{ext} (and opt-in listen/{track_id}.{ext}) objects in the audio bucket."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self.s3 = s3 or client("s3")

    def put_preview(
        self, record: TrackRecord, ext: str, data: bytes, content_type: str, playlist: str = ""
    ) -> str:
        key = preview_key(record.track_id, ext)
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            Metadata=encode_object_metadata(record, playlist),
        )
        return key

    def put_listen_copy(self, track_id: str, ext: str, data: bytes, content_type: str) -> str:
        """listen/{track_id}.{ext}: a local file's audio kept for playback (KEEP_LOCAL_PREVIEWS)."""
        key = listen_key(track_id, ext)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return key

    def head(self, key: str) -> AudioHead | None:
        """Size and metadata without downloading the object; None when it does not exist."""
        try:
            response = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return AudioHead(size=int(response["ContentLength"]), metadata=dict(response.get("Metadata", {})))


    def get(self, key: str) -> AudioObject | None:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return AudioObject(
            key=key,
            data=response["Body"].read(),
            metadata=dict(response.get("Metadata", {})),
            content_type=response.get("ContentType", ""),
        )

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)


class TrackTable:
    """The Tracks table. Writes are conditional or field-wise so that retries are harmless."""

    def __init__(self, name: str, table: Any | None = None) -> None:
        self.name = name
        self.table = table or resource("dynamodb").Table(name)

    def get(self, track_id: str, consistent: bool = False) -> TrackRecord | None:
        item = self.table.get_item(Key={"track_id": track_id}, ConsistentRead=consistent).get("Item")
        return TrackRecord.from_item(item) if item else None

    def put_pending(self, record: TrackRecord, stale_before: str = "") -> bool:
        """Create the item as pending unless it exists as pending or ready.

        Returns False (and writes nothing) when the track is already known; a
        failed track may be crawled again, and so may a pending one crawled before
        ``stale_before`` (ISO 8601 UTC): its crawl or extraction died on the way.
        """
        item = record.to_item()
        item["status"] = Status.PENDING.value
        item.setdefault("crawled_at", utc_now_iso())
        condition = (
            Attr("track_id").not_exists()
            | Attr("status").eq(Status.FAILED.value)
            # Requested through the API and not crawled yet: this is the crawl it asked for.
            | (Attr("status").eq(Status.PENDING.value) & Attr("crawled_at").not_exists())
        )
        if stale_before:
            condition = condition | (Attr("status").eq(Status.PENDING.value) & Attr("crawled_at").lt(stale_before))
        try:
            self.table.put_item(Item=item, ConditionExpression=condition)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_requested(self, track_id: str, requested_at: str, stale_before: str) -> bool:
        """Record that the API asked for a track: pending, never crawled, ``requested_at``.

        Only a track that is unknown, failed, or pending since before ``stale_before``
        (its crawl died on the way) is requested again; returns False when it is not.
        """
        source = Source.DEEZER if deezer_number(track_id) is not None else Source.SPOTIFY
        record = TrackRecord(track_id=track_id, source=source, requested_at=requested_at)
        condition = (
            Attr("track_id").not_exists()
            | Attr("status").eq(Status.FAILED.value)
            | (Attr("status").eq(Status.PENDING.value) & Attr("crawled_at").lt(stale_before))
            | (Attr("status").eq(Status.PENDING.value) & Attr("crawled_at").not_exists()
               & Attr("requested_at").lt(stale_before))
        )
        try:
            self.table.put_item(Item=record.to_item(), ConditionExpression=condition)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def find_by_isrc(self, isrc: str) -> list[str]:
        """Ids of the entries holding this recording (ISRC), oldest id first; the index is
        eventually consistent, so an entry written a moment ago may not be listed yet."""
        if not isrc:
            return []
        ids: list[str] = []
        params: dict[str, Any] = {"IndexName": ISRC_INDEX, "KeyConditionExpression": Key("isrc").eq(isrc)}
        while True:
            page = self.table.query(**params)
            ids += [str(item["track_id"]) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(ids)
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def link(self, track_id: str, playlists: set[str], refs: Mapping[str, str]) -> None:
        """The entry gains ``playlists`` and, where it has none yet, the service ids in
        ``refs`` (record attribute -> value, e.g. {"deezer_id": "3135556"})."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets: list[str] = []
        for i, (name, value) in enumerate(sorted((k, v) for k, v in refs.items() if v)):
            names[f"#r{i}"] = name
            values[f":r{i}"] = value
            sets.append(f"#r{i} = if_not_exists(#r{i}, :r{i})")
        expression = ("SET " + ", ".join(sets)) if sets else ""
        if playlists:
            values[":p"] = set(playlists)
            expression += " ADD playlists :p"
        if not expression:
            return
        self.table.update_item(
            Key={"track_id": track_id},
            UpdateExpression=expression.strip(),
            ConditionExpression=Attr("track_id").exists(),
            **({"ExpressionAttributeNames": names} if names else {}),
            ExpressionAttributeValues=values,
        )

    def put_failed(self, record: TrackRecord) -> bool:
        """Record a track the crawl refused (status failed, ``record.error`` says why), never over
        a pending or ready item; False when such an item exists."""
        item = record.to_item()
        item["status"] = Status.FAILED.value
        item.setdefault("crawled_at", utc_now_iso())
        try:
            self.table.put_item(Item=item, ConditionExpression=Attr("track_id").not_exists() | Attr("status").eq(Status.FAILED.value))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def add_playlists(self, track_id: str, playlists: set[str]) -> None:
        if not playlists:
            return
        self.table.update_item(
            Key={"track_id": track_id},
            UpdateExpression="ADD playlists :p",
            ConditionExpression=Attr("track_id").exists(),
            ExpressionAttributeValues={":p": set(playlists)},
        )

    def _update(self, track_id: str, always: Mapping[str, Any], if_absent: Mapping[str, Any], remove: tuple[str, ...] = (),
                playlists: set[str] | frozenset[str] = frozenset()) -> None:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets: list[str] = []
        for i, (name, value) in enumerate(always.items()):
            names[f"#a{i}"] = name
            values[f":a{i}"] = value
            sets.append(f"#a{i} = :a{i}")
        for i, (name, value) in enumerate(if_absent.items()):
            if value in (None, "", [], set(), {}):
                continue
            names[f"#b{i}"] = name
            values[f":b{i}"] = value
            sets.append(f"#b{i} = if_not_exists(#b{i}, :b{i})")
        expression = "SET " + ", ".join(sets)
        if playlists:
            # Membership is a set to add to, in the same write: one stream record, not two.
            names["#p"] = "playlists"
            values[":p"] = set(playlists)
            expression += " ADD #p :p"
        if remove:
            for i, name in enumerate(remove):
                names[f"#r{i}"] = name
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        self.table.update_item(
            Key={"track_id": track_id},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    @staticmethod
    def _metadata_defaults(record: TrackRecord | None) -> dict[str, Any]:
        if record is None:
            return {}
        item = record.to_item()
        return {k: item[k] for k in ("source", "title", "artists", "album", "isrc", "duration_ms", "preview_source", "crawled_at", "spotify_id", "deezer_id") if k in item}

    def mark_ready(
        self,
        track_id: str,
        *,
        embedding: bytes,
        dim: int,
        model: str,
        tags: Mapping[str, float],
        descriptors: Descriptors | None = None,
        fallback: TrackRecord | None = None,
    ) -> None:
        """Store the embedding (and descriptors); metadata from ``fallback`` fills only what the item lacks,
        and its playlists are added to the item's, in the same write."""
        always: dict[str, Any] = {
            "status": Status.READY.value,
            "embedding": embedding,
            "dim": dim,
            "model": model,
            "tags": tags_to_item(tags),
            "extracted_at": utc_now_iso(),
        }
        if descriptors is not None:
            always["descriptors"] = descriptors.to_item()
        self._update(
            track_id,
            always=always,
            if_absent=self._metadata_defaults(fallback),
            remove=("error",),
            playlists=fallback.playlists if fallback is not None else frozenset(),
        )

    def mark_failed(self, track_id: str, error: str, fallback: TrackRecord | None = None) -> None:
        """Mark the track failed with the reason; ``fallback`` as for :meth:`mark_ready`."""
        self._update(
            track_id,
            always={"status": Status.FAILED.value, "error": error[:1000], "extracted_at": utc_now_iso()},
            if_absent=self._metadata_defaults(fallback),
            playlists=fallback.playlists if fallback is not None else frozenset(),
        )

    def note_attempt_error(self, track_id: str, error: str) -> None:
        """Record why an attempt on a pending track failed (it will be retried); best effort.

        Never overwrites a settled (ready or failed) item, and never raises: the original
        error is what the caller reports.
        """
        try:
            self.table.update_item(
                Key={"track_id": track_id},
                UpdateExpression="SET #e = :e",
                ConditionExpression=Attr("status").eq(Status.PENDING.value),
                ExpressionAttributeNames={"#e": "error"},
                ExpressionAttributeValues={":e": error[:1000]},
            )
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                logger.warning("could not note the attempt's error on %s: %s", track_id, type(exc).__name__)

    def scan(self, segment: int = 0, total_segments: int = 1, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of one parallel-scan segment, page by page."""
        params: dict[str, Any] = dict(kwargs)
        if total_segments > 1:
            params.update(Segment=segment, TotalSegments=total_segments)
        while True:
            page = self.table.scan(**params)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
