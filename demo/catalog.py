"""Build the demo catalogue folder: tagged mp3 clips plus catalogue.json, reused when still current.

catalogue.json is the ground truth for evaluation (composer, piece, instrument
of every file) and the cache record: each entry holds the digest of the clip's
spec and of the file written for it. A clip whose entry matches and whose file
still has that digest is not rendered again. The record is rewritten after
every clip, so an interrupted build keeps what it finished.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from mutagen.easyid3 import EasyID3
from mutagen.mp3 import MP3
from numpy.typing import NDArray
from tqdm import tqdm

from catalog.bundle import sha256_file
from demo.render import render_clip, soundfont_path
from demo.spec import (
    ALBUM,
    CLIP_SECONDS,
    GENRE,
    RENDERER_VERSION,
    SAMPLE_RATE_HZ,
    Clip,
    catalogue,
    spec_hash,
)

CATALOGUE_FILE = "catalogue.json"
CATALOGUE_FORMAT = 1
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE_DIR = REPO_ROOT / ".local" / "demo-catalog"


@dataclass(frozen=True)
class BuildResult:
    folder: Path
    rendered: int
    reused: int
    seconds: float

    @property
    def total(self) -> int:
        return self.rendered + self.reused


def default_folder(mode: str) -> Path:
    return DEFAULT_CACHE_DIR / mode


def render_settings() -> dict[str, Any]:
    """Everything besides the clip list that changes the bytes of a rendered file."""
    return {
        "renderer_version": RENDERER_VERSION,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "clip_seconds": CLIP_SECONDS,
        "soundfont_sha256": sha256_file(soundfont_path()),
        "music21": metadata.version("music21"),
        "tinysoundfont": metadata.version("tinysoundfont"),
        "libsndfile": soundfile.__libsndfile_version__,
    }


def clip_hash(clip: Clip, settings: dict[str, Any]) -> str:
    return spec_hash({"clip": clip.spec_dict(), "settings": settings})


def clip_entry(clip: Clip, clip_digest: str, file_digest: str) -> dict[str, Any]:
    return {
        "file": clip.file_name,
        "title": clip.title,
        "artist": clip.composer.name,
        "album": ALBUM,
        "composer": clip.composer.name,
        "piece": clip.piece,
        "instrument": clip.instrument.name,
        "gm_program": clip.instrument.gm_program,
        "corpus_path": clip.excerpt.corpus_path,
        "start_bar": clip.excerpt.start_bar,
        "spec_hash": clip_digest,
        "sha256": file_digest,
    }


def write_mp3(path: Path, audio: NDArray[np.float32], clip: Clip, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Write the clip's mp3 with ID3 title/artist/album tags, atomically (a crash leaves no half file)."""
    partial = path.with_name(path.name + ".part")
    soundfile.write(partial, audio, sample_rate_hz, format="MP3")
    tags = MP3(partial, ID3=EasyID3)
    tags.add_tags()
    tags["title"] = clip.title
    tags["artist"] = clip.composer.name
    tags["composer"] = clip.composer.name
    tags["album"] = ALBUM
    tags["genre"] = GENRE
    tags.save()
    os.replace(partial, path)


def render_to(path: Path, clip: Clip) -> str:
    """Render one clip to ``path`` as MP3; returns the file's SHA-256."""
    write_mp3(path, render_clip(clip), clip)
    return sha256_file(path)


def _pool(workers: int) -> Executor:
    """Processes (the synthesiser holds the GIL), started fresh rather than forked: a caller may have
    TensorFlow's threads running, and a forked copy of them can deadlock. One clip renders in-process."""
    if workers <= 1:
        return ThreadPoolExecutor(max_workers=1)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def read_catalogue(folder: Path) -> dict[str, Any] | None:
    """The folder's catalogue.json, or None when there is none or it is unreadable."""
    try:
        record = json.loads((folder / CATALOGUE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == CATALOGUE_FORMAT else None


def _write_catalogue(folder: Path, record: dict[str, Any]) -> None:
    partial = folder / (CATALOGUE_FILE + ".part")
    partial.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    os.replace(partial, folder / CATALOGUE_FILE)


def _reusable(entry: dict[str, Any], folder: Path, clip_digest: str) -> bool:
    if entry.get("spec_hash") != clip_digest:
        return False
    path = folder / entry["file"]
    return path.is_file() and sha256_file(path) == entry.get("sha256")


def build(
    mode: str = "small",
    folder: Path | None = None,
    clips: list[Clip] | None = None,
    progress: bool = True,
) -> BuildResult:
    """Render the catalogue of ``mode`` into ``folder`` (default .local/demo-catalog/<mode>/), reusing what fits.

    ``clips`` replaces the mode's clip list (tests render a few clips).
    Files a previous catalogue.json listed that the new one does not are removed;
    nothing else in the folder is touched.
    """
    started = time.monotonic()
    clips = catalogue(mode) if clips is None else clips
    if not clips:
        raise ValueError("a demo catalogue needs at least one clip")
    names = [clip.file_name for clip in clips]
    if len(set(names)) != len(names):
        raise ValueError("two demo clips would share a file name")
    if any(Path(name).name != name for name in names):
        raise ValueError("a demo clip's file name must not contain a path separator")
    folder = (folder or default_folder(mode)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    settings = render_settings()
    digests = [clip_hash(clip, settings) for clip in clips]
    catalogue_digest = spec_hash({"mode": mode, "clips": digests})

    previous = read_catalogue(folder) or {}
    previous_entries = {e.get("file"): e for e in previous.get("clips", []) if isinstance(e, dict)}
    for stale in set(previous_entries) - set(names):
        # Only plain names: a hand-edited record must not reach outside the folder.
        if isinstance(stale, str) and Path(stale).name == stale:
            (folder / stale).unlink(missing_ok=True)

    # Entries not yet checked stay in the record, so a crash mid-build does not
    # forget files that a later build can still verify and reuse.
    entries = {name: previous_entries[name] for name in names if name in previous_entries}
    record: dict[str, Any] = {
        "format": CATALOGUE_FORMAT,
        "mode": mode,
        "spec_hash": catalogue_digest,
        "settings": settings,
        "complete": False,
        "clips": [],
    }
    bar = tqdm(total=len(clips), desc=f"demo catalogue ({mode})", unit="clip", disable=not progress, file=sys.stderr)
    todo = []
    for clip, digest in zip(clips, digests, strict=True):
        old = previous_entries.get(clip.file_name)
        if old is None or not _reusable(old, folder, digest):
            todo.append((clip, digest))
        else:
            bar.update(1)
    # Each clip renders on its own (same bytes in any process): one worker per core.
    workers = min(len(todo), os.cpu_count() or 1)
    with _pool(workers) as pool:
        futures = {pool.submit(render_to, folder / clip.file_name, clip): (clip, digest) for clip, digest in todo}
        failed: BaseException | None = None
        for future in as_completed(futures):
            clip, digest = futures[future]
            if future.exception() is not None:
                # The clips still rendering are kept for the next build; the first failure is raised after them.
                failed = failed or future.exception()
                continue
            entries[clip.file_name] = clip_entry(clip, digest, future.result())
            record["clips"] = list(entries.values())
            _write_catalogue(folder, record)
            bar.set_postfix_str(clip.title, refresh=False)
            bar.update(1)
    bar.close()
    if failed is not None:
        raise failed
    rendered = len(todo)
    record["clips"] = [entries[name] for name in names]
    record["complete"] = True
    if rendered or record != previous:
        _write_catalogue(folder, record)
    return BuildResult(
        folder=folder, rendered=rendered, reused=len(clips) - rendered, seconds=time.monotonic() - started
    )
