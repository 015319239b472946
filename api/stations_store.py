"""The Stations table: one partition per station, every change its own item.

Items of a station (partition key ``station_id``, sort key ``item``):

* ``definition``: name, seeds, weights, artist cap, created/updated times;
* ``feedback#{time}#{nonce}``: one per feedback signal (track_id, signal);
* ``played#{cycle:06d}#{batch:08d}``: the tracks one ``next`` call handed out.

Feedback and plays are only ever added as new items, never read-modified-written,
so concurrent feedback on one station cannot lose a signal (DynamoDB writes to
distinct keys do not interfere, and moto's do not either). A played batch is a
conditional put on its sequence number: two ``next`` calls racing for the same
number leave one to retry with a fresh read, so they never hand out the same
batch twice. Reading a station is one paginated Query of its partition.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from catalog.records import utc_now_iso
from catalog.storage import error_code

DEFINITION = "definition"
FEEDBACK_PREFIX = "feedback#"
PLAYED_PREFIX = "played#"
STATION_ID_BYTES = 16  # 128 random bits: 22 URL-safe characters, not guessable
# Weights are kept to this many decimals: DynamoDB numbers cannot hold what a float can (1e-300 underflows).
WEIGHT_DECIMALS = 6


class Signal(StrEnum):
    LIKE = "like"
    DISLIKE = "dislike"
    SKIP = "skip"


class StationNotFoundError(LookupError):
    """No station has this id (never created, or deleted)."""


class BatchConflictError(RuntimeError):
    """Another ``next`` recorded this batch number first; read the station again and retry."""


def weight_number(value: float) -> Decimal:
    return Decimal(f"{value:.{WEIGHT_DECIMALS}f}")


def new_station_id() -> str:
    return secrets.token_urlsafe(STATION_ID_BYTES)


@dataclass(frozen=True)
class StationDefinition:
    name: str
    seeds: tuple[str, ...]
    style_weight: float
    like_weight: float
    dislike_weight: float
    max_per_artist: int | None
    created_at: str = ""
    updated_at: str = ""

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "name": self.name,
            "seeds": list(self.seeds),
            "style_weight": weight_number(self.style_weight),
            "like_weight": weight_number(self.like_weight),
            "dislike_weight": weight_number(self.dislike_weight),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.max_per_artist is not None:
            item["max_per_artist"] = self.max_per_artist
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StationDefinition:
        cap = item.get("max_per_artist")
        return cls(
            name=str(item["name"]),
            seeds=tuple(item["seeds"]),
            style_weight=float(item["style_weight"]),
            like_weight=float(item["like_weight"]),
            dislike_weight=float(item["dislike_weight"]),
            max_per_artist=None if cap is None else int(cap),
            created_at=str(item.get("created_at", "")),
            updated_at=str(item.get("updated_at", "")),
        )


@dataclass(frozen=True)
class Feedback:
    track_id: str
    signal: Signal
    at: str


@dataclass(frozen=True)
class PlayedBatch:
    cycle: int
    batch: int
    tracks: tuple[str, ...]


@dataclass(frozen=True)
class Station:
    station_id: str
    definition: StationDefinition
    feedback: tuple[Feedback, ...] = ()  # oldest first
    played: tuple[PlayedBatch, ...] = ()  # in order

    @property
    def cycle(self) -> int:
        return self.played[-1].cycle if self.played else 0

    @property
    def next_batch(self) -> int:
        return self.played[-1].batch + 1 if self.played else 0

    def played_this_cycle(self) -> list[str]:
        cycle = self.cycle
        return [track for batch in self.played if batch.cycle == cycle for track in batch.tracks]

    @property
    def history_length(self) -> int:
        return sum(len(batch.tracks) for batch in self.played)

    def latest_signals(self) -> dict[str, Signal]:
        """Each track's last like or dislike (a later like cancels a dislike); skips are not opinions."""
        latest: dict[str, Signal] = {}
        for event in self.feedback:
            if event.signal is not Signal.SKIP:
                latest[event.track_id] = event.signal
        return latest

    def feedback_counts(self) -> dict[str, int]:
        counts = {signal.value: 0 for signal in Signal}
        for event in self.feedback:
            counts[event.signal.value] += 1
        return counts


@dataclass
class StationStore:
    """The Stations table (``table`` is a boto3 Table resource)."""

    table: Any
    clock: Any = field(default=time.time_ns)

    def create(self, definition: StationDefinition) -> Station:
        now = utc_now_iso()
        definition = replace(definition, created_at=now, updated_at=now)
        station_id = new_station_id()
        self.table.put_item(
            Item={"station_id": station_id, "item": DEFINITION, **definition.to_item()},
            ConditionExpression="attribute_not_exists(station_id)",
        )
        return Station(station_id, definition)

    def load(self, station_id: str) -> Station:
        definition: StationDefinition | None = None
        feedback: list[Feedback] = []
        played: list[PlayedBatch] = []
        for item in self._items(station_id):
            sort_key = item["item"]
            if sort_key == DEFINITION:
                definition = StationDefinition.from_item(item)
            elif sort_key.startswith(FEEDBACK_PREFIX):
                feedback.append(Feedback(str(item["track_id"]), Signal(item["signal"]), str(item["at"])))
            elif sort_key.startswith(PLAYED_PREFIX):
                played.append(PlayedBatch(int(item["cycle"]), int(item["batch"]), tuple(item["tracks"])))
        if definition is None:
            raise StationNotFoundError(station_id)
        return Station(station_id, definition, tuple(feedback), tuple(played))

    def update(self, station_id: str, changes: dict[str, Any]) -> None:
        """Set some definition fields (item names as in StationDefinition.to_item); None removes one."""
        sets = {name: value for name, value in changes.items() if value is not None}
        removes = [name for name, value in changes.items() if value is None]
        sets["updated_at"] = utc_now_iso()
        names = {f"#{i}": name for i, name in enumerate([*sets, *removes])}
        by_name = {name: alias for alias, name in names.items()}
        expression = "SET " + ", ".join(f"{by_name[name]} = :{by_name[name][1:]}" for name in sets)
        if removes:
            expression += " REMOVE " + ", ".join(by_name[name] for name in removes)
        values = {f":{by_name[name][1:]}": _dynamo_value(value) for name, value in sets.items()}
        try:
            self.table.update_item(
                Key={"station_id": station_id, "item": DEFINITION},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression="attribute_exists(station_id)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StationNotFoundError(station_id) from None
            raise

    def delete(self, station_id: str) -> None:
        keys = [{"station_id": station_id, "item": item["item"]} for item in self._items(station_id, keys_only=True)]
        if not any(key["item"] == DEFINITION for key in keys):
            raise StationNotFoundError(station_id)
        # The definition goes first: from then on the station is gone for every reader.
        self.table.delete_item(Key={"station_id": station_id, "item": DEFINITION})
        with self.table.batch_writer() as batch:
            for key in keys:
                if key["item"] != DEFINITION:
                    batch.delete_item(Key=key)

    def add_feedback(self, station_id: str, track_id: str, signal: Signal) -> None:
        at = utc_now_iso()
        # Nanoseconds then a nonce: items sort in arrival order and two signals never share a key.
        sort_key = f"{FEEDBACK_PREFIX}{self.clock():020d}#{secrets.token_hex(4)}"
        self.table.put_item(
            Item={"station_id": station_id, "item": sort_key, "track_id": track_id, "signal": signal.value, "at": at},
            ConditionExpression="attribute_not_exists(station_id)",
        )

    def record_batch(self, station_id: str, batch: PlayedBatch) -> None:
        try:
            self.table.put_item(
                Item={
                    "station_id": station_id,
                    "item": f"{PLAYED_PREFIX}{batch.cycle:06d}#{batch.batch:08d}",
                    "cycle": batch.cycle,
                    "batch": batch.batch,
                    "tracks": list(batch.tracks),
                    "at": utc_now_iso(),
                },
                ConditionExpression="attribute_not_exists(station_id)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise BatchConflictError(station_id) from None
            raise

    def _items(self, station_id: str, keys_only: bool = False) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("station_id").eq(station_id), "ConsistentRead": True}
        if keys_only:
            kwargs["ProjectionExpression"] = "#i"
            kwargs["ExpressionAttributeNames"] = {"#i": "item"}
        while True:
            page = self.table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return weight_number(value)
    if isinstance(value, tuple):
        return list(value)
    return value
