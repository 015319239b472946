"""The Listens table: one item per play of one listener (ARCHITECTURE.md, "Listens").

Written by the history importer (``make history``), read back by it to train the
listener's models. Partition key ``user_id``, sort key ``played_at``: the minute the
play ended (UTC, ``YYYY-MM-DDTHH:MMZ``), ``#``, and a digest of what was played and for
how long. Both of Spotify's export formats give the end of a play to the minute at
least, so the same play read from the basic and from the extended export, or from the
same file twice, gets the same key: importing it again adds nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key

from catalog.records import _plain

USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_USER_ID_RE = re.compile(USER_ID_PATTERN)
SORT_KEY_DIGEST_CHARS = 12
# Spotify's own threshold for a stream to count: shorter plays are skips.
SKIP_BELOW_MS = 30_000


class InvalidUserIdError(ValueError):
    """A string that is not a user id (letters, digits, '_' or '-', 1 to 64 characters)."""


def validate_user_id(value: str) -> str:
    if not _USER_ID_RE.fullmatch(value):
        raise InvalidUserIdError(f"user id must match {USER_ID_PATTERN} (letters, digits, '_' or '-', 1 to 64 characters)")
    return value


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Listen:
    """One play as the listener's export recorded it, with the catalogue track it matched (or none)."""

    user_id: str
    ended_at: datetime  # UTC, when the play ended (what both export formats record)
    artist: str
    title: str
    ms_played: int
    track_id: str = ""  # "" when no catalogue track matched
    spotify_uri: str = ""
    skipped: bool = False  # under SKIP_BELOW_MS, or the extended export says so
    reason_end: str = ""
    # From the recently-played feed, which gives no play length: ms_played is the track's duration.
    # An export's record of the same play replaces it (history.importer).
    from_feed: bool = False

    @property
    def started_at(self) -> datetime:
        return self.ended_at - timedelta(milliseconds=self.ms_played)

    @property
    def sort_key(self) -> str:
        digest = hashlib.sha256(f"{self.artist.casefold()}\x1f{self.title.casefold()}\x1f{self.ms_played}".encode()).hexdigest()
        return f"{self.ended_at.astimezone(UTC):%Y-%m-%dT%H:%MZ}#{digest[:SORT_KEY_DIGEST_CHARS]}"

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "user_id": self.user_id,
            "played_at": self.sort_key,
            "ended_at": iso_utc(self.ended_at),
            "artist": self.artist,
            "title": self.title,
            "ms_played": self.ms_played,
            "skipped": self.skipped,
        }
        optional = {"track_id": self.track_id, "spotify_uri": self.spotify_uri, "reason_end": self.reason_end, "from_feed": self.from_feed}
        item.update({k: v for k, v in optional.items() if v})
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Listen:
        plain = {k: _plain(v) for k, v in item.items()}
        return cls(
            user_id=plain["user_id"],
            ended_at=datetime.fromisoformat(plain["ended_at"].replace("Z", "+00:00")),
            artist=plain.get("artist", ""),
            title=plain.get("title", ""),
            ms_played=int(plain["ms_played"]),
            track_id=plain.get("track_id", ""),
            spotify_uri=plain.get("spotify_uri", ""),
            skipped=bool(plain.get("skipped", False)),
            reason_end=plain.get("reason_end", ""),
            from_feed=bool(plain.get("from_feed", False)),
        )


class ListenTable:
    """The Listens table (template.yaml: ListensTable)."""

    def __init__(self, name: str, table: Any | None = None) -> None:
        from catalog.storage import resource

        self.name = name
        self.table = table if table is not None else resource("dynamodb").Table(name)

    def put_all(self, listens: Iterable[Listen], delete_keys: Iterable[str] = (), user_id: str = "") -> int:
        """Write plays, then delete ``user_id``'s plays under ``delete_keys``, in batches of 25
        (BatchWriteItem, unprocessed items retried by boto3); returns how many plays were written."""
        written = 0
        with self.table.batch_writer(overwrite_by_pkeys=["user_id", "played_at"]) as batch:
            for listen in listens:
                batch.put_item(Item=listen.to_item())
                written += 1
            for key in delete_keys:
                batch.delete_item(Key={"user_id": validate_user_id(user_id), "played_at": key})
        return written

    def listens_of(self, user_id: str) -> Iterator[Listen]:
        """The user's plays in time order (the sort key starts with the time)."""
        for item in self._query(user_id):
            yield Listen.from_item(item)

    def _query(self, user_id: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"KeyConditionExpression": Key("user_id").eq(user_id), **kwargs}
        while True:
            page = self.table.query(**params)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
