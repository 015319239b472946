"""A real-audio dev set built from Debian game-data packages: labelled 30 s clips, two per track.

Each package in :data:`PACKAGES` is fetched with ``apt-get download`` (never
installed) into ``.local/devset/debs/``; its data tarball is streamed with
``dpkg-deb --fsys-tarfile`` and only the audio members and the licence file
(``usr/share/doc/PKG/copyright``) are read. A member is a *track* when
libsndfile can decode it (ogg, flac, wav, mp3) and it lasts at least
:data:`MIN_TRACK_S`: shorter files are sound effects and jingles. Tracker
modules (mod, xm, it, s3m) are counted and skipped: nothing in our dependencies
renders them. Byte-identical members are kept once, and the few long members
that are ambience rather than music (:data:`NOT_MUSIC`, found by listening to
the names and folders of every kept file) are left out.

Every track gives two clips of :data:`CLIP_S` seconds that do not overlap, cut
at the thirds of the spare time, so a track of exactly 60 s gives [0, 30) and
[30, 60). Clips are written as mono FLAC at 22.05 kHz (what the MFCC baseline
reads; the extractor resamples to 16 kHz itself) under ``.local/devset/clips/``,
with ``devset.json`` listing each clip's track, source (the package), offset and
licence file. The set is rebuilt only when ``devset.json`` is missing or was
made from other packages or settings, so a second run reads the cache.

Usage: ``python bench/devset.py [--root DIR]``. Prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1] / ".local" / "devset"
# The packages issue 19 names; the ones without decodable music contribute nothing.
PACKAGES = (
    "0ad-data-common", "freedroidrpg-data", "openarena-data", "xmoto-data", "neverball-data",
    "extremetuxracer-data", "frozen-bubble-data", "lincity-ng-data", "teeworlds-data", "redeclipse-data",
    "chromium-bsu-data", "flare-game", "freeorion-data", "lugaru-data", "armagetronad-common",
    "funnyboat", "ri-li-data", "pokerth-data", "blobby-data", "openclonk-data", "pioneers-data",
)  # fmt: skip
DECODABLE = (".ogg", ".oga", ".flac", ".wav", ".mp3")
TRACKER = (".mod", ".xm", ".it", ".s3m")
MIN_TRACK_S = 60.0
# Long enough to pass MIN_TRACK_S but weather or wind loops, not music.
NOT_MUSIC = (
    "flare-game:usr/share/games/flare/mods/empyrean_campaign/soundfx/environment/rain.ogg",
    "lugaru-data:usr/share/games/lugaru/Sounds/DesertAmbient.ogg",
    "lugaru-data:usr/share/games/lugaru/Sounds/Wind.ogg",
)
CLIP_S = 30.0
CLIPS_PER_TRACK = 2
CLIP_RATE_HZ = 22_050
# Bump when the way clips are cut changes: the cache is rebuilt.
DEVSET_FORMAT = 1
MANIFEST = "devset.json"


class DevsetError(RuntimeError):
    """A package could not be downloaded or read."""


@dataclass(frozen=True)
class Clip:
    file: str  # relative to the dev set root
    track: str  # "package:member path"
    source: str  # the package
    offset_s: float
    track_s: float
    licence: str  # relative to the dev set root


def deb_path(debs: Path, package: str) -> Path:
    """The package's .deb in ``debs``, downloaded with apt-get if absent."""
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        debs.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
        if done.returncode != 0:
            raise DevsetError(f"apt-get download {package} failed: {done.stderr.strip()}")
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise DevsetError(f"apt-get download {package} left no {package}_*.deb in {debs}")
    return found[-1]


def members(deb: Path, wanted: tuple[str, ...], licence: str) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the data members whose name ends with one of ``wanted``, and of ``licence``."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                if info.isfile() and (name == licence or name.lower().endswith(wanted)):
                    handle = tar.extractfile(info)
                    assert handle is not None
                    yield name, handle.read()
    if proc.returncode != 0:
        raise DevsetError(f"dpkg-deb --fsys-tarfile {deb.name} exited with {proc.returncode}")


def clip_offsets(duration_s: float) -> list[float]:
    """Start times of the track's clips: non-overlapping, spare time split evenly around them."""
    gap = (duration_s - CLIPS_PER_TRACK * CLIP_S) / (CLIPS_PER_TRACK + 1)
    return [round(gap * (i + 1) + CLIP_S * i, 3) for i in range(CLIPS_PER_TRACK)]


def mono_at(samples: NDArray[np.float32], rate: int) -> NDArray[np.float32]:
    import librosa

    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if rate != CLIP_RATE_HZ:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=CLIP_RATE_HZ, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def settings(packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    return {
        "format": DEVSET_FORMAT,
        "packages": list(packages),
        "min_track_s": MIN_TRACK_S,
        "clip_s": CLIP_S,
        "clips_per_track": CLIPS_PER_TRACK,
        "clip_rate_hz": CLIP_RATE_HZ,
        "not_music": sorted(NOT_MUSIC),
    }


def read_manifest(root: Path, packages: Sequence[str] = PACKAGES) -> dict[str, Any] | None:
    """The cached dev set's manifest, or None when it is absent, incomplete or made differently."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if not record.get("complete") or record.get("settings") != settings(packages):
        return None
    return record


def build(root: Path = ROOT, packages: Sequence[str] = PACKAGES, log: Any = sys.stderr) -> dict[str, Any]:
    """Build (or read from the cache) the dev set of ``packages`` under ``root``; returns its manifest."""
    cached = read_manifest(root, packages)
    if cached is not None:
        return cached
    started = time.monotonic()
    clips_dir, licences_dir = root / "clips", root / "licences"
    clips_dir.mkdir(parents=True, exist_ok=True)
    licences_dir.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    per_package: dict[str, dict[str, Any]] = {}
    for package in packages:
        deb = deb_path(root / "debs", package)
        licence_member = f"usr/share/doc/{package}/copyright"
        licence_file = licences_dir / f"{package}.copyright"
        seen: set[str] = set()
        stats = {"deb": deb.name, "audio_files": 0, "tracks": 0, "short": 0, "duplicates": 0, "tracker_skipped": 0,
                 "not_music": 0}
        for name, data in members(deb, DECODABLE + TRACKER, licence_member):
            if name == licence_member:
                licence_file.write_bytes(data)
                continue
            stats["audio_files"] += 1
            if name.lower().endswith(TRACKER):
                stats["tracker_skipped"] += 1
                continue
            track = f"{package}:{name}"
            if track in NOT_MUSIC:
                stats["not_music"] += 1
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                stats["duplicates"] += 1
                continue
            seen.add(digest)
            try:
                info = sf.info(io.BytesIO(data))
            except sf.LibsndfileError as exc:
                print(f"{package}: {name}: not decodable ({exc})", file=log)
                continue
            if info.duration < MIN_TRACK_S:
                stats["short"] += 1
                continue
            samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
            mono = mono_at(samples, rate)
            duration = mono.shape[0] / CLIP_RATE_HZ
            if duration < MIN_TRACK_S:  # the header overstated the length
                stats["short"] += 1
                continue
            for index, offset in enumerate(clip_offsets(duration)):
                start = int(offset * CLIP_RATE_HZ)
                piece = mono[start : start + int(CLIP_S * CLIP_RATE_HZ)]
                file = Path("clips") / f"{safe_name(package)}__{safe_name(Path(name).stem)}__{digest[:8]}_{index}.flac"
                sf.write(root / file, piece, CLIP_RATE_HZ, format="FLAC", subtype="PCM_16")
                clips.append(Clip(str(file), track, package, offset, round(duration, 2), str(licence_file.relative_to(root))))
            stats["tracks"] += 1
        if not licence_file.is_file():
            raise DevsetError(f"{deb.name} has no {licence_member}")
        per_package[package] = stats
        print(f"{package}: {stats}", file=log)
    record = {
        "settings": settings(packages),
        "packages": per_package,
        "clips": [asdict(clip) for clip in clips],
        "seconds": round(time.monotonic() - started, 1),
        "complete": True,
    }
    (root / MANIFEST).write_text(json.dumps(record, indent=1))
    return record


def summary(record: dict[str, Any]) -> dict[str, Any]:
    clips = record["clips"]
    with_music = {p: s["tracks"] for p, s in record["packages"].items() if s["tracks"]}
    return {
        "clips": len(clips),
        "tracks": len({c["track"] for c in clips}),
        "sources": len(with_music),
        "tracks_by_source": with_music,
        "tracker_skipped": sum(s["tracker_skipped"] for s in record["packages"].values()),
        "packages_without_music": sorted(p for p, s in record["packages"].items() if not s["tracks"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help=f"cache folder (default {ROOT})")
    args = parser.parse_args(argv)
    try:
        record = build(args.root)
    except DevsetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary(record)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
