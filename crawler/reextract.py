"""Previews fetched again for the tracks a previous model embedded (``make reextract``).

annoy_service indexes only embeddings of the configured model (catalog.model), and
the extractor deleted each preview once it was embedded. After MODEL_ID changes,
every ready track of another model is therefore out of the index until its audio
is extracted again: this finds each one (a filtered scan of Tracks), fetches its
audio the way the crawl did and puts it under ``previews/`` with the item's
metadata, which starts the extractor as a crawl does. The item stays ready (with
the old embedding) meanwhile, and keeps its playlists and references: nothing is
rewritten but the embedding, by the extractor.

Where the audio comes from, by the item's preview source:
- Deezer: the saved Deezer track id, resolved again (signed URLs expire);
- Spotify: the crawl's own candidates (Spotify's preview_url is gone since 2024
  for most apps, so Deezer by ISRC, then by artist and title);
- a local file: the playback copy under ``listen/`` if one was kept, else the
  file at its recorded path when it still hashes to the track's id.
A track whose audio cannot be found again is counted with the reason and stays
ready under the old model (out of the index) until it can be.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.dynamodb.conditions import Attr

from catalog.keys import local_track_id
from catalog.records import PreviewSource, Source, Status, TrackRecord
from crawler.audio import NotAudioError, sniff
from crawler.deezer import DeezerError, DeezerQuotaError
from crawler.download import Audio
from crawler.pipeline import Crawler
from crawler.previews import NoPreview
from crawler.spotify import SpotifyTrack

Progress = Callable[[str], None]
PROGRESS_EVERY = 25


class AudioGone(Exception):
    """This track's audio cannot be fetched again; ``reason`` is the summary's key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class ReextractSummary:
    model: str
    queued: int = 0
    unreachable: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> one track id and why

    @property
    def examined(self) -> int:
        return self.queued + sum(self.unreachable.values())

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "examined": self.examined, "queued": self.queued,
                "unreachable": dict(self.unreachable), "examples": self.examples}

    def format(self) -> str:
        lines = [f"{self.examined} ready tracks of another model than {self.model}; {self.queued} queued for extraction"]
        for reason, count in self.unreachable.most_common():
            lines.append(f"  {count} without audio ({reason}), e.g. {self.examples[reason]}")
        return "\n".join(lines)


def stale_model_records(crawler: Crawler, model_id: str) -> Iterator[TrackRecord]:
    """Ready items whose embedding another model made, page by page."""
    condition = Attr("status").eq(Status.READY.value) & Attr("model").ne(model_id)
    for item in crawler.table.scan(FilterExpression=condition):
        yield TrackRecord.from_item(item)


def audio_again(crawler: Crawler, record: TrackRecord) -> Audio:
    """The track's audio, fetched as its crawl fetched it; AudioGone when it cannot be."""
    if record.source is Source.LOCAL:
        return _local_audio(crawler, record)
    deezer_id = record.deezer_id or (record.track_id[3:] if record.track_id.startswith("dz-") else "")
    try:
        if record.preview_source is PreviewSource.DEEZER and deezer_id.isdigit():
            found = crawler.deezer.by_id(deezer_id)
            if found is not None:
                return crawler.previews.find_deezer(found).audio
        track = SpotifyTrack(id=record.track_id, title=record.title, artists=tuple(record.artists), album=record.album,
                             isrc=record.isrc)
        return crawler.previews.find(track).audio
    except DeezerQuotaError:
        raise  # the quota is the run's to wait out, not this track's
    except NoPreview as exc:
        raise AudioGone(exc.reason, exc.detail) from None
    except DeezerError as exc:
        raise AudioGone("deezer_error", str(exc)) from None


def _local_audio(crawler: Crawler, record: TrackRecord) -> Audio:
    if record.listen_key:
        kept = crawler.store.get(record.listen_key)
        if kept is not None:
            return _sniffed(kept.data)
    path = Path(record.local_path) if record.local_path else None
    if path is None or not path.is_file():
        raise AudioGone("local_file_gone", f"no kept copy, and {record.local_path or 'no path'} is not a file here")
    data = path.read_bytes()
    if local_track_id(data) != record.track_id:
        raise AudioGone("local_file_changed", f"{path} no longer holds the audio this track was made from")
    return _sniffed(data)


def _sniffed(data: bytes) -> Audio:
    try:
        return Audio(data, sniff(data))
    except NotAudioError as exc:
        raise AudioGone("not_audio", str(exc)) from None


def reextract(crawler: Crawler, model_id: str, progress: Progress | None = None) -> ReextractSummary:
    """Queue every ready track of another model than ``model_id`` for extraction again."""
    summary = ReextractSummary(model_id)
    for record in stale_model_records(crawler, model_id):
        try:
            audio = audio_again(crawler, record)
        except AudioGone as exc:
            summary.unreachable[exc.reason] += 1
            summary.examples.setdefault(exc.reason, f"{record.track_id}: {exc}")
        else:
            # previews/{track_id}.{ext} with the item's metadata: the extractor's trigger, as after a crawl.
            crawler.store.put_preview(record, audio.format.ext, audio.data, audio.format.content_type)
            summary.queued += 1
        if progress and summary.examined % PROGRESS_EVERY == 0:
            progress(f"{summary.examined} examined, {summary.queued} queued")
    return summary
