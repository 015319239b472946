"""Asking for a listener's models to be trained: the TrainQueue message, written after an import, read by HistoryTrainFunction.

POST /users/{userId}/history, ``make history`` and the recently-played feed import plays
into Listens and send this message; HistoryTrainFunction (the extractor's image, for its
scientific stack) trains the listener's models from everything in Listens and stores
them in S3 under ``users/{userId}/`` (catalog.user_models). Training reads the whole
history, so two requests for one listener train the same thing twice at worst.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.listens import InvalidUserIdError, validate_user_id
from catalog.records import utc_now_iso
from catalog.storage import client


class BadTrainRequestError(ValueError):
    """A TrainQueue message that is not a training request: retrying cannot fix it."""


# Why a listener is trained: plays were imported, or the index's searched space changed under their models.
REASON_IMPORT = "import"
REASON_SPACE_CHANGED = "space_changed"
# SQS takes at most 10 messages per SendMessageBatch.
SEND_BATCH = 10


@dataclass(frozen=True)
class TrainRequest:
    user_id: str
    requested_at: str
    # The import that asked for it (history.importer.ImportReport.to_json() plus "at"): GET /users/{userId} shows it.
    last_import: dict[str, Any] = field(default_factory=dict)
    reason: str = REASON_IMPORT
    # space_changed: the searched space (catalog.bundle.Transform.space) the models are to be trained in.
    space: str = ""

    def to_body(self) -> str:
        body: dict[str, Any] = {"userId": self.user_id, "requestedAt": self.requested_at, "lastImport": self.last_import}
        if self.reason != REASON_IMPORT:
            body |= {"reason": self.reason, "space": self.space}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_body(cls, body: str) -> TrainRequest:
        try:
            raw = json.loads(body)
            last_import = raw.get("lastImport") or {}
            if not isinstance(last_import, dict):
                raise TypeError("lastImport must be an object")
            request = cls(user_id=str(raw["userId"]), requested_at=str(raw["requestedAt"]), last_import=last_import,
                          reason=str(raw.get("reason") or REASON_IMPORT), space=str(raw.get("space") or ""))
            validate_user_id(request.user_id)
        except (ValueError, KeyError, TypeError, AttributeError, InvalidUserIdError) as exc:
            raise BadTrainRequestError(f"not a training request: {exc}") from None
        return request


class TrainQueue:
    """The SQS queue of training requests (template.yaml: TrainQueue, with TrainDLQ behind it)."""

    def __init__(self, url: str, sqs: Any | None = None) -> None:
        self.url = url
        self.sqs = sqs or client("sqs")

    def send(self, user_id: str, last_import: dict[str, Any]) -> TrainRequest:
        request = TrainRequest(user_id=user_id, requested_at=utc_now_iso(), last_import=last_import)
        self.sqs.send_message(QueueUrl=self.url, MessageBody=request.to_body())
        return request

    def send_space_changed(self, user_ids: Sequence[str], space: str, attempts: int = 3) -> list[str]:
        """One request per listener to train again in ``space`` (SendMessageBatch, 10 at a time).
        Entries SQS refuses are sent again, up to ``attempts`` times; returns the listeners still refused."""
        now = utc_now_iso()
        refused: list[str] = []
        for start in range(0, len(user_ids), SEND_BATCH):
            pending = {str(i): TrainRequest(user_id, now, reason=REASON_SPACE_CHANGED, space=space)
                       for i, user_id in enumerate(user_ids[start:start + SEND_BATCH])}
            for _ in range(attempts):
                entries = [{"Id": key, "MessageBody": request.to_body()} for key, request in pending.items()]
                response = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
                pending = {failed["Id"]: pending[failed["Id"]] for failed in response.get("Failed", [])}
                if not pending:
                    break
            refused += [request.user_id for request in pending.values()]
        return refused
