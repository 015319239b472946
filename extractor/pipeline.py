"""Preview objects → Tracks updates (embedding, tags, descriptors): the extractor's domain logic, free of Lambda.

A batch goes in three steps: :meth:`Extraction.prepare` downloads and decodes each
preview (or settles it without the model), :meth:`Extraction.embed` runs every
decoded clip through the model in one pass, handing each over as soon as it is
through, and :meth:`Extraction.finish` describes and writes each (the handler does
that in a second thread while the model runs the next clips).

The item is written before the audio is deleted, so a crash in between only
means the object is processed again; a missing object means that already
happened (duplicate delivery). Audio that can never embed marks the track
failed and is deleted; every other error propagates so that the message is
retried (transient) or ends in the dead-letter queue.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from catalog.keys import parse_preview_key
from catalog.records import TrackRecord, encode_embedding
from catalog.storage import AudioStore, TrackTable
from catalog.storage import record_from_object_metadata as fallback_record
from extractor.analysis import Embedded, embed_stream
from extractor.audio import DecodedClip, UndecodableAudioError, check_size, decode_clip
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


@dataclass(frozen=True)
class Clip:
    """A preview downloaded and decoded, waiting for its embedding (the batch's model call)."""

    track_id: str
    key: str
    audio: DecodedClip
    fallback: TrackRecord


@dataclass
class Extraction:
    store: AudioStore
    table: TrackTable
    # Called only when audio decodes, so the model is never built for bad input.
    embedder: Callable[[], Embedder]

    def prepare(self, key: str, size: int | None = None) -> Clip | Outcome:
        """previews/{track_id}.{ext} decoded, or the outcome that needs no model (skipped, gone, failed).

        ``key`` is decoded (not URL-encoded). An error that will be retried is first noted
        on the pending item (as in :meth:`analyse` and :meth:`finish`), so that GET
        /tracks/{id} shows why it is still pending and the ExtractDLQ consumer can say
        what the last attempt died of.
        """
        try:
            track_id, _ = parse_preview_key(key)
        except ValueError as exc:
            logger.warning("skipping an object that is not a preview", extra={"key": key, "error": str(exc)})
            return Outcome.SKIPPED
        try:
            return self._prepare(track_id, key, size)
        except Exception as exc:
            self._note(track_id, exc)
            raise

    def _prepare(self, track_id: str, key: str, size: int | None) -> Clip | Outcome:
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
        except UndecodableAudioError as exc:
            return self._fail(track_id, key, exc, fallback)
        return Clip(track_id, key, clip, fallback)

    def embed(self, clips: Sequence[Clip]) -> Iterator[Embedded]:
        """Every clip through the model in one pass (their patches run through the network together),
        each as soon as it is through. A failed pass notes its error on every clip's pending item."""
        try:
            yield from embed_stream(self.embedder(), [clip.audio for clip in clips]) if clips else ()
        except Exception as exc:
            for clip in clips:
                self._note(clip.track_id, exc)
            raise

    def finish(self, clip: Clip, embedded: Embedded) -> Outcome:
        """Describe the clip, write the embedding and descriptors into the track's item, then delete the audio;
        or, for audio the model could not place, mark the track failed with the reason."""
        try:
            if isinstance(embedded.embedding, UndecodableAudioError):
                return self._fail(clip.track_id, clip.key, embedded.embedding, clip.fallback)
            return self._ready(clip, embedded)
        except Exception as exc:
            self._note(clip.track_id, exc)
            raise

    def _ready(self, clip: Clip, embedded: Embedded) -> Outcome:
        analysis = embedded.analysis()
        embedding = analysis.embedding
        self.table.mark_ready(
            clip.track_id,
            embedding=encode_embedding(embedding.vector),
            dim=EMBEDDING_DIM,
            model=embedding.model,
            tags=embedding.tags,
            descriptors=analysis.descriptors,
            fallback=clip.fallback,
        )
        self.store.delete(clip.key)
        logger.info(
            "track ready",
            extra={"track_id": clip.track_id, "tags": embedding.tags, "descriptors": analysis.descriptors.to_json()},
        )
        return Outcome.READY

    def _note(self, track_id: str, exc: Exception) -> None:
        self.table.note_attempt_error(track_id, f"{type(exc).__name__}: {exc}")

    def _fail(self, track_id: str, key: str, exc: UndecodableAudioError, fallback: TrackRecord) -> Outcome:
        self.table.mark_failed(track_id, f"{type(exc).__name__}: {exc}", fallback)
        self.store.delete(key)
        logger.warning("track failed: audio cannot be embedded", extra={"track_id": track_id, "error": str(exc)})
        return Outcome.FAILED

    def _metadata(self, key: str) -> dict[str, str] | None:
        head = self.store.head(key)
        return None if head is None else head.metadata
