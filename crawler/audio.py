"""What kind of audio some bytes are, by parsing them (mutagen), never by trusting a name or header."""

from __future__ import annotations

import io
from dataclasses import dataclass

import mutagen
from mutagen.flac import FLAC
from mutagen.mp3 import MP3, HeaderNotFoundError
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

# mutagen type -> (extension of previews/{id}.{ext}, Content-Type)
_FORMATS: dict[type, tuple[str, str]] = {
    MP3: ("mp3", "audio/mpeg"),
    OggVorbis: ("ogg", "audio/ogg"),
    OggOpus: ("ogg", "audio/ogg"),
    FLAC: ("flac", "audio/flac"),
    WAVE: ("wav", "audio/wav"),
    MP4: ("m4a", "audio/mp4"),
}


class NotAudioError(ValueError):
    """Bytes that are not audio in a format the pipeline takes."""


@dataclass(frozen=True)
class AudioFormat:
    ext: str
    content_type: str
    duration_s: float


def sniff(data: bytes) -> AudioFormat:
    """The format of ``data``; raises NotAudioError when it is not mp3/ogg/flac/wav/m4a audio."""
    try:
        parsed = mutagen.File(io.BytesIO(data))
    except mutagen.MutagenError:
        parsed = None
    if parsed is None:
        # An MP3 without an ID3 tag has no magic number mutagen.File scores; MP3 syncs to frames instead.
        try:
            parsed = MP3(io.BytesIO(data))
        except (HeaderNotFoundError, mutagen.MutagenError):
            raise NotAudioError("the bytes are not audio (no mp3, ogg, flac, wav or m4a stream found)") from None
    fmt = next((v for t, v in _FORMATS.items() if isinstance(parsed, t)), None)
    if fmt is None:
        raise NotAudioError(f"unsupported audio format {type(parsed).__name__}; expected mp3, ogg, flac, wav or m4a")
    length = float(getattr(parsed.info, "length", 0.0) or 0.0)
    if length <= 0:
        raise NotAudioError(f"{fmt[0]} stream has no playable length")
    return AudioFormat(ext=fmt[0], content_type=fmt[1], duration_s=length)
