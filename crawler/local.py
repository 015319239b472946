"""Local music: a folder (searched recursively) or an .m3u / .m3u8 playlist of files.

track_id = local- + SHA-256 of the bytes (catalog.keys.local_track_id), so the same file
keeps its id wherever it lies. Title and artists come from the tags, else from the file
name "Artist - Title.ext". An entry that cannot be a file (a symlink loop, a dangling link,
a remote URL, a missing or unsearchable path) is counted under its reason and skipped.
"""

from __future__ import annotations

import errno
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import mutagen

from catalog.keys import AUDIO_EXTENSIONS

PLAYLIST_SUFFIXES = (".m3u", ".m3u8")


@dataclass
class LocalListing:
    name: str
    files: list[Path]
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class LocalTags:
    title: str
    artists: tuple[str, ...]
    album: str = ""


def is_local_source(ref: str) -> bool:
    return Path(ref).expanduser().exists()


def _is_audio_name(path: Path) -> bool:
    return path.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS


def _unusable(path: Path) -> str:
    """Why ``path`` is no file to read: "symlink_loop", "missing_file", "unreadable", or ""."""
    try:
        path.resolve(strict=True)
        return "" if path.is_file() else "missing_file"
    except RuntimeError:  # Python < 3.13 reports a symlink loop so
        return "symlink_loop"
    except FileNotFoundError:
        return "missing_file"
    except OSError as exc:
        return "symlink_loop" if exc.errno == errno.ELOOP else "unreadable"


def _list_folder(path: Path) -> LocalListing:
    listing = LocalListing(name=path.name, files=[])
    for candidate in sorted(path.rglob("*")):
        if candidate.name.startswith(".") or not _is_audio_name(candidate) or candidate.is_dir():
            continue
        reason = _unusable(candidate)
        if reason:
            listing.skipped[reason] += 1
        else:
            listing.files.append(candidate)
    return listing


def list_source(ref: str) -> LocalListing:
    """The audio files of a folder or of an .m3u playlist, in a stable order."""
    path = Path(ref).expanduser().resolve()
    if path.is_dir():
        return _list_folder(path)
    if path.suffix.lower() in PLAYLIST_SUFFIXES:
        return _list_m3u(path)
    if path.is_file() and _is_audio_name(path):
        return LocalListing(name=path.parent.name, files=[path])
    raise ValueError(f"{ref} is neither a folder, an .m3u playlist nor an audio file ({', '.join(AUDIO_EXTENSIONS)})")


def _list_m3u(path: Path) -> LocalListing:
    listing = LocalListing(name=path.stem, files=[])
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if "://" in entry:
            listing.skipped["remote_entry"] += 1
            continue
        file = (path.parent / entry).expanduser()
        reason = _unusable(file)
        if reason:
            listing.skipped[reason] += 1
        elif not _is_audio_name(file):
            listing.skipped["not_audio"] += 1
        else:
            # The entry's own name, not a link target's: titles fall back to "Artist - Title.ext".
            listing.files.append(file.absolute())
    return listing


def _first(tags: object, key: str) -> str:
    try:
        values = tags[key]  # type: ignore[index]
    except (KeyError, ValueError, TypeError):
        return ""
    if isinstance(values, (list, tuple)):
        return str(values[0]).strip() if values else ""
    return str(values).strip()


def _all(tags: object, key: str) -> tuple[str, ...]:
    try:
        values = tags[key]  # type: ignore[index]
    except (KeyError, ValueError, TypeError):
        return ()
    values = values if isinstance(values, (list, tuple)) else [values]
    return tuple(str(v).strip() for v in values if str(v).strip())


def read_tags(data: bytes, path: Path) -> LocalTags:
    """Tags where the file has them; the file name for what is missing."""
    title, artists, album = "", (), ""
    try:
        tagged = mutagen.File(io.BytesIO(data), easy=True)
    except mutagen.MutagenError:
        tagged = None
    if tagged is not None and tagged.tags is not None:
        title, artists, album = _first(tagged.tags, "title"), _all(tagged.tags, "artist"), _first(tagged.tags, "album")
    name_artist, sep, name_title = path.stem.partition(" - ")
    if not title:
        title = name_title.strip() if sep else path.stem.strip()
    if not artists and sep and name_artist.strip():
        artists = (name_artist.strip(),)
    return LocalTags(title=title, artists=artists, album=album)
