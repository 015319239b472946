"""One preview object → one Tracks update (embedding, tags, descriptors): the extractor's domain logic, free of Lambda.

The item is written before the audio is deleted, so a crash in between only
means the object is processed again; a missing object means that already
happened (duplicate delivery). Audio that can never embed marks the track
failed and is deleted; every other error propagates so that the message is
retried (transient) or ends in the dead-letter queue.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from catalog.keys import parse_preview_key
from catalog.records import TrackRecord, encode_embedding
from catalog.storage import AudioStore, TrackTable
from catalog.storage import record_from_object_metadata as fallback_record
from extractor.analysis import analyse
from extractor.audio import UndecodableAudioError, check_size, decode_clip
from extractor.constants import EMBEDDING_DIM
from extractor.embed import Embedder

logger = Logger(child=True)


class Outcome(enum.StrEnum):
    READY = "ready"
    FAILED = "failed"
    # The object is gone: a duplicate delivery of work already done.
    GONE = "gone"
    # Not a preview key this pipeline understands; retrying cannot change that.
    SKIPPED = "skipped"


@dataclass
class Extraction:
    store: AudioStore
    table: TrackTable
    # Called only when audio decodes, so the model is never built for bad input.
    embedder: Callable[[], Embedder]

    def process(self, key: str, size: int | None = None) -> Outcome:
        """Embed previews/{track_id}.{ext} into its Tracks item. ``key`` is decoded (not URL-encoded).

        An error that will be retried is first noted on the pending item, so that GET
        /tracks/{id} shows why it is still pending and the ExtractDLQ consumer can say
        what the last attempt died of.
        """
        try:
            track_id, _ = parse_preview_key(key)
        except ValueError as exc:
            logger.warning("skipping an object that is not a preview", extra={"key": key, "error": str(exc)})
            return Outcome.SKIPPED
        try:
            return self._process(track_id, key, size)
        except Exception as exc:
            self.table.note_attempt_error(track_id, f"{type(exc).__name__}: {exc}")
            raise

    def _process(self, track_id: str, key: str, size: int | None) -> Outcome:
        if size is not None:
            # Refuse oversize audio from the event's size, before downloading it.
            try:
                check_size(size)
            except UndecodableAudioError as exc:
                metadata = self._metadata(key)
                if metadata is None:
                    return Outcome.GONE
                return self._fail(track_id, key, exc, fallback_record(track_id, metadata))

        audio = self.store.get(key)
        if audio is None:
            logger.info("preview already processed (duplicate delivery)", extra={"key": key})
            return Outcome.GONE
        fallback = fallback_record(track_id, audio.metadata)
        try:
            clip = decode_clip(audio.data)
            # analyse raises UndecodableAudioError too, when the model cannot place the audio.
            analysis = analyse(self.embedder(), clip)
        except UndecodableAudioError as exc:
            return self._fail(track_id, key, exc, fallback)
        embedding = analysis.embedding

        self.table.mark_ready(
            track_id,
            embedding=encode_embedding(embedding.vector),
            dim=EMBEDDING_DIM,
            model=embedding.model,
            tags=embedding.tags,
            descriptors=analysis.descriptors,
            fallback=fallback,
        )
        # mark_ready fills metadata only; playlist membership is a set to add to.
        self.table.add_playlists(track_id, fallback.playlists)
        self.store.delete(key)
        logger.info(
            "track ready",
            extra={"track_id": track_id, "tags": embedding.tags, "descriptors": analysis.descriptors.to_json()},
        )
        return Outcome.READY

    def _fail(self, track_id: str, key: str, exc: UndecodableAudioError, fallback: TrackRecord) -> Outcome:
        self.table.mark_failed(track_id, f"{type(exc).__name__}: {exc}", fallback)
        self.table.add_playlists(track_id, fallback.playlists)
        self.store.delete(key)
        logger.warning("track failed: audio cannot be embedded", extra={"track_id": track_id, "error": str(exc)})
        return Outcome.FAILED

    def _metadata(self, key: str) -> dict[str, str] | None:
        head = self.store.head(key)
        return None if head is None else head.metadata
