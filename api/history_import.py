"""POST /users/{userId}/history: one Spotify export in the request body, imported as ``make history`` imports a file.

The body is parsed by the CLI's own streaming parser (history.exports, ijson), record by
record from a stream over the body, so the parsed export is never held whole, and plays
are written to Listens in batches as they are read (history.importer). Training does not
run here: the import ends with a TrainQueue request that HistoryTrainFunction answers.

Content types: ``application/json`` (the export file as it is) or ``application/gzip``
(the file gzipped; API Gateway passes it base64-encoded). Lambda's synchronous payload
limit (6 MB, the base64 encoding of a binary body included) bounds what arrives; a gzipped
export is about a tenth of its size, and ``HISTORY_MAX_EXPORT_BYTES`` (64 MiB by default)
bounds it decompressed.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from api.errors import ApiError
from api.served import ServedIndex
from api.tracks import request_unmatched
from catalog.crawl_requests import CrawlQueue
from catalog.listens import ListenTable
from catalog.records import utc_now_iso
from catalog.storage import TrackTable
from catalog.train_requests import TrainQueue
from history.exports import MalformedExportError
from history.service import import_history

logger = Logger(child=True)

JSON_CONTENT_TYPE = "application/json"
GZIP_CONTENT_TYPE = "application/gzip"
MAX_EXPORT_BYTES_DEFAULT = 64 * 1024 * 1024
# ?crawl=true asks for at most this many unmatched tracks per request (HISTORY_MAX_CRAWL_REQUESTS):
# each costs a read, a message and a write, about 30 ms against AWS, inside the API's 29 s.
MAX_CRAWL_REQUESTS_DEFAULT = 200
BODY_NAME = "body"


@dataclass(frozen=True)
class CrawlUnmatched:
    """?crawl=true: where the import's unmatched Spotify tracks are asked for, and how many at most."""

    table: TrackTable
    queue: CrawlQueue
    stale_after_s: float
    limit: int


class ExportTooLargeError(Exception):
    """The decompressed export passed the configured limit."""


class _Capped(io.RawIOBase):
    """A readable, seekable view of ``inner`` that raises ExportTooLargeError past ``limit`` bytes."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        super().__init__()
        self._inner = inner
        self._limit = limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        if self._inner.tell() > self._limit:
            raise ExportTooLargeError
        buffer[: len(data)] = data
        return len(data)


def export_stream(body: bytes, content_type: str | None, max_bytes: int) -> BinaryIO:
    """The export as a binary stream, decompressed on the fly for application/gzip."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in (JSON_CONTENT_TYPE, GZIP_CONTENT_TYPE):
        raise ApiError(415, "unsupported_media_type", "send the export as application/json, or gzipped as application/gzip")
    if not body:
        raise ApiError(400, "empty_body", "the body must be a Spotify streaming-history export (a JSON array of plays)")
    inner: IO[bytes] = gzip.GzipFile(fileobj=io.BytesIO(body)) if media == GZIP_CONTENT_TYPE else io.BytesIO(body)
    return cast(BinaryIO, _Capped(inner, max_bytes))


def post_history(
    user_id: str, body: bytes, content_type: str | None, max_bytes: int, table: ListenTable, index: ServedIndex, queue: TrainQueue,
    crawl: CrawlUnmatched | None = None,
) -> dict[str, Any]:
    """(the 200 body) Import the export, queue crawls of its unmatched tracks when ``crawl`` says
    where, then ask HistoryTrainFunction to retrain the listener."""
    import_at = utc_now_iso()
    stream = export_stream(body, content_type, max_bytes)
    try:
        report = import_history(user_id, [(BODY_NAME, stream)], table, index)
    except MalformedExportError as exc:
        where = f"record {exc.index}" if exc.index is not None else "the body"
        raise ApiError(
            400, "malformed_export",
            f"{where}: {exc.reason}; the plays before it are stored, and posting the corrected export again adds only the rest",
        ) from None
    except ExportTooLargeError:
        raise ApiError(413, "payload_too_large", f"the export is over {max_bytes} bytes decompressed; split it or use make history") from None
    except (OSError, EOFError, zlib.error):
        # gzip's own errors (BadGzipFile is an OSError): the body said gzip and is not.
        raise ApiError(400, "malformed_export", "the body is not a complete gzip stream") from None
    except (ClientError, BotoCoreError) as exc:
        logger.exception("Listens write failed during an import")
        raise ApiError(503, "history_unavailable", "the import could not be stored; post the export again (what is stored is not added twice)") from exc
    if crawl is not None:
        report.crawl_requested = request_unmatched(crawl.table, crawl.queue, report.unmatched_by_plays(), crawl.stale_after_s, crawl.limit)
    last_import = {"at": import_at, **report.to_json()}
    try:
        request = queue.send(user_id, last_import)
    except (ClientError, BotoCoreError) as exc:
        logger.exception("could not queue a training request")
        raise ApiError(503, "training_unavailable", "the plays are imported but training could not be queued; post the export again (it adds nothing) to retry") from exc
    return {"userId": user_id, "import": report.to_json(), "training": {"status": "queued", "requestedAt": request.requested_at}}
