"""Spotify's data exports, read as a stream of plays (a 100k-play file is never held whole).

Two formats, told apart per record by their keys:

* basic, ``StreamingHistory_music_*.json``: ``endTime`` ("2024-03-01 21:04", UTC, to the
  minute), ``artistName``, ``trackName``, ``msPlayed``;
* extended, ``Streaming_History_Audio_*.json``: ``ts`` ("2024-03-01T21:04:33Z", when the
  play ended), ``ms_played``, ``spotify_track_uri``, ``master_metadata_track_name``,
  ``master_metadata_album_artist_name``, ``skipped``, ``reason_end`` and more. Podcast
  episodes and audiobooks come in the same files with no track name or track URI; they
  are counted and left out.

ijson parses the top-level array item by item (its C backend, yajl2_c, when built).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import ijson

SPOTIFY_TRACK_URI_PREFIX = "spotify:track:"


class MalformedExportError(ValueError):
    """A file that is not a Spotify streaming-history export, or one record of it that is not a play.

    ``index`` is the 0-based position of the record in the file's array (None when the
    file itself cannot be parsed before any record). ``reason`` is ours alone; ``detail`` is
    the JSON parser's own message, which quotes the input (the CLI shows it, the API does not).
    """

    def __init__(self, path: str, index: int | None, reason: str, detail: str = "") -> None:
        where = f"{path}: record {index}" if index is not None else path
        super().__init__(f"{where}: {reason}" + (f" ({detail})" if detail else ""))
        self.path = path
        self.index = index
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ExportPlay:
    ended_at: datetime
    artist: str
    title: str
    ms_played: int
    spotify_uri: str = ""
    skipped: bool = False
    reason_end: str = ""
    from_feed: bool = False  # the recently-played feed's: ms_played is the track's duration


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value.strip()


def _ms(record: dict[str, Any], key: str) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key} must be a non-negative number of milliseconds")
    return int(value)


def _basic(record: dict[str, Any]) -> ExportPlay:
    try:
        ended = datetime.strptime(_text(record, "endTime"), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError('endTime must look like "2024-03-01 21:04"') from None
    artist, title = _text(record, "artistName"), _text(record, "trackName")
    if not artist or not title:
        raise ValueError("artistName and trackName must not be empty")
    return ExportPlay(ended, artist, title, _ms(record, "msPlayed"))


def _extended(record: dict[str, Any]) -> ExportPlay | None:
    try:
        ended = datetime.fromisoformat(_text(record, "ts").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError('ts must be an ISO 8601 time such as "2024-03-01T21:04:33Z"') from None
    if ended.tzinfo is None:
        raise ValueError("ts must carry its time zone (Spotify writes Z)")
    uri, title = _text(record, "spotify_track_uri"), _text(record, "master_metadata_track_name")
    if not uri and not title:
        return None  # a podcast episode or an audiobook chapter
    if uri and not uri.startswith(SPOTIFY_TRACK_URI_PREFIX):
        raise ValueError(f"spotify_track_uri must start with {SPOTIFY_TRACK_URI_PREFIX}")
    skipped = record.get("skipped")
    return ExportPlay(
        ended.astimezone(UTC),
        _text(record, "master_metadata_album_artist_name"),
        title,
        _ms(record, "ms_played"),
        spotify_uri=uri,
        skipped=skipped is True,
        reason_end=_text(record, "reason_end"),
    )


def parse_record(record: object) -> ExportPlay | None:
    """One array element as a play; None for a non-music entry; ValueError saying what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("each record must be a JSON object")
    if "ts" in record:
        return _extended(record)
    if "endTime" in record:
        return _basic(record)
    raise ValueError("neither a basic (endTime, artistName, trackName, msPlayed) nor an extended (ts, ms_played, ...) record")


def iter_plays(stream: BinaryIO, name: str) -> Iterator[tuple[int, ExportPlay | None]]:
    """(record index, play or None for a non-music entry) for each element of the export's array."""
    _require_array(stream, name)
    index = -1
    try:
        # use_float: numbers as float/int rather than Decimal (ms values are integers anyway).
        for index, record in enumerate(ijson.items(stream, "item", use_float=True)):
            try:
                yield index, parse_record(record)
            except ValueError as exc:
                raise MalformedExportError(name, index, str(exc)) from None
    except ijson.JSONError as exc:
        raise MalformedExportError(name, index + 1, "not valid JSON", str(exc)) from None


def _require_array(stream: BinaryIO, name: str) -> None:
    """An export is a JSON array; an empty one is fine, anything else (an object, a number) is not."""
    stream.seek(0)
    try:
        first = next(ijson.parse(stream), None)
    except ijson.JSONError as exc:
        raise MalformedExportError(name, None, "not valid JSON", str(exc)) from None
    if first is None or first[1] != "start_array":
        raise MalformedExportError(name, None, "a streaming-history export is a JSON array of plays")
    stream.seek(0)
