"""Query by audio: an uploaded clip → the tracks in the served index that sound like it.

The clip goes through exactly the extractor's path (``extractor.audio.decode_clip``,
then ``extractor.analysis.analyse``: the same log-mel front end, model, pooling
and descriptors), then through the served index's catalogue-level transform, so
an uploaded copy of an indexed track lands on that track. The upload is never stored.

TensorFlow is imported only by the function that serves this route (built
from the extractor's image); this module itself needs librosa and soundfile
for decoding, which that image has too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from api.descriptor_filters import DescriptorFilter
from api.listing import ListPolicy, all_of
from api.recommend import track_summary
from api.served import ServedIndex
from extractor.audio import (
    DecodedClip,
    OutOfRangeAudioError,
    SilentAudioError,
    TooShortAudioError,
    UndecodableAudioError,
    decode_clip,
)
from extractor.constants import SAMPLE_RATE_HZ

# Lambda's synchronous invoke payload is 6 MB and API Gateway base64-encodes a binary
# body (4/3 larger) inside a JSON event: 4 MiB of audio is what reliably fits.
MAX_UPLOAD_BYTES_DEFAULT = 4 * 1024 * 1024
# Previews are 30 s; an upload is embedded from its first 30 s like one.
MAX_SECONDS_DEFAULT = 30.0

# Content types the route accepts; application/octet-stream is sniffed like the rest.
AUDIO_CONTENT_TYPES = frozenset(
    {
        "audio/mpeg",
        "audio/mp3",
        "audio/wav",
        "audio/wave",
        "audio/x-wav",
        "audio/vnd.wave",
        "audio/ogg",
        "audio/flac",
        "audio/x-flac",
        "application/octet-stream",
    }
)


class AudioQueryError(ValueError):
    """A query by audio that cannot be answered; each subclass is one HTTP status."""

    status = 400
    code = "bad_request"


class EmptyUploadError(AudioQueryError):
    status = 400
    code = "empty_body"


class UploadTooLargeError(AudioQueryError):
    status = 413
    code = "payload_too_large"


class NotAudioError(AudioQueryError):
    status = 415
    code = "unsupported_media_type"


class UnembeddableAudioError(AudioQueryError):
    status = 422
    code = "audio_not_embeddable"


class ModelMismatchError(AudioQueryError):
    """The function's model is not the one the served index was built from (a deployment mid-upgrade)."""

    status = 503
    code = "model_mismatch"


class ClipEmbedding(Protocol):
    """What the extractor's embedder returns for a clip (``extractor.embed.Embedding``)."""

    vector: npt.NDArray[np.float32]
    tags: dict[str, float]
    model: str


class ClipDescriptors(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class ClipAnalysis(Protocol):
    """What the extractor's analysis returns (``extractor.analysis.Analysis``)."""

    embedding: ClipEmbedding
    descriptors: ClipDescriptors


ClipAnalyser = Callable[[DecodedClip], ClipAnalysis]

@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = MAX_UPLOAD_BYTES_DEFAULT
    max_seconds: float = MAX_SECONDS_DEFAULT


def sniff_format(body: bytes) -> str | None:
    """The container a body's first bytes announce (mp3, wav, ogg, flac), or None."""
    head = body[:12]
    if head.startswith(b"ID3"):
        return "mp3"
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    # An MPEG audio frame header: 11 sync bits, then a version and layer that are not 'reserved'.
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08 and head[1] & 0x06:
        return "mp3"
    return None


def media_type(content_type: str | None) -> str:
    """'audio/mpeg' from 'Audio/MPEG; charset=…' ('' when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_upload(body: bytes, content_type: str | None, limits: UploadLimits) -> str:
    """The upload's sniffed format; raise the AudioQueryError that says why it cannot be used."""
    if not body:
        raise EmptyUploadError("the request body is empty: send the audio file itself as the body")
    if len(body) > limits.max_bytes:
        raise UploadTooLargeError(
            f"the upload is {len(body) / 2**20:.1f} MiB; at most {limits.max_bytes / 2**20:.0f} MiB is accepted "
            f"(the first {limits.max_seconds:g} s are all that is used: trim or re-encode the clip)"
        )
    declared = media_type(content_type)
    if declared not in AUDIO_CONTENT_TYPES:
        raise NotAudioError(
            "Content-Type must be audio/mpeg, audio/wav, audio/ogg, audio/flac or application/octet-stream"
        )
    found = sniff_format(body)
    if found is None:
        raise NotAudioError("the body is not audio: mp3, wav, ogg or flac expected")
    return found


def decode_upload(body: bytes, limits: UploadLimits) -> tuple[DecodedClip, float]:
    """(the clip's first ``max_seconds``, decoded as the extractor decodes; the upload's full duration in s)."""
    try:
        clip = decode_clip(body)
    except (TooShortAudioError, SilentAudioError, OutOfRangeAudioError) as exc:
        raise UnembeddableAudioError(str(exc)) from None
    except UndecodableAudioError:
        raise NotAudioError("the body could not be decoded as audio (mp3, wav, ogg or flac expected)") from None
    duration_s = clip.samples.size / SAMPLE_RATE_HZ
    head = DecodedClip(
        samples=clip.samples[: int(limits.max_seconds * SAMPLE_RATE_HZ)],
        native=clip.native[: int(limits.max_seconds * clip.native_rate_hz)],
        native_rate_hz=clip.native_rate_hz,
    )
    return head, duration_s


def analyse_upload(analyser: ClipAnalyser, clip: DecodedClip) -> ClipAnalysis:
    try:
        return analyser(clip)
    except (TooShortAudioError, SilentAudioError) as exc:
        raise UnembeddableAudioError(str(exc)) from None
    except ValueError:
        # The embedder refuses what it cannot turn into a finite, non-zero vector.
        raise UnembeddableAudioError("the audio does not give a usable embedding (is it noise or silence?)") from None


def recommendations_by_audio(
    index: ServedIndex,
    analyser: ClipAnalyser,
    body: bytes,
    content_type: str | None,
    k: int,
    *,
    limits: UploadLimits = UploadLimits(),
    policy: ListPolicy | None = None,
    filters: DescriptorFilter | None = None,
) -> dict[str, Any]:
    """The body of POST /recommendations/by-audio: the list policy and filters of GET /recommendations,
    the descriptor filters relative to the upload (which stands for no track: an artist cap starts from nobody)."""
    audio_format = check_upload(body, content_type, limits)
    clip, duration_s = decode_upload(body, limits)
    analysis = analyse_upload(analyser, clip)
    embedding = analysis.embedding
    descriptors = analysis.descriptors.to_json()
    if embedding.model != index.model:
        raise ModelMismatchError(
            f"this function embeds with {embedding.model} but the index being served holds {index.model} vectors"
        )
    vector = index.transform(np.asarray(embedding.vector, dtype=np.float32))
    query: dict[str, Any] = {
        "source": "upload",
        "format": audio_format,
        "durationMs": round(duration_s * 1000),
        "durationUsedMs": round(clip.samples.size / SAMPLE_RATE_HZ * 1000),
        "tags": embedding.tags,
        "descriptors": descriptors,
    }
    policy = policy or ListPolicy()
    accept = all_of(filters.accept(descriptors) if filters else None, policy.acceptor(index))
    neighbours = index.search(vector, k, exclude=set(policy.exclude), accept=accept)
    return {
        "indexVersion": index.version,
        "model": index.model,
        "query": query,
        "results": [{**track_summary(index.meta(n.track_id)), "similarity": n.similarity} for n in neighbours],
    }
