"""bench/devset.py on a .deb built here with dpkg-deb: only long decodable audio becomes clips."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from bench import devset

PACKAGE = "fake-game-data"
RATE = 8_000


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def make_deb(folder: Path) -> Path:
    tree = folder / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
    music = tree / "usr/share/games/fake/music"
    music.mkdir(parents=True)
    sf.write(music / "theme.ogg", tone(75.0, 440.0), RATE, format="OGG")
    sf.write(music / "theme-copy.ogg", tone(75.0, 440.0), RATE, format="OGG")
    (music / "copy.ogg").write_bytes((music / "theme.ogg").read_bytes())
    sf.write(music / "jingle.wav", tone(5.0, 660.0), RATE)
    (music / "song.xm").write_bytes(b"Extended Module: not decodable here")
    doc = tree / f"usr/share/doc/{PACKAGE}"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("License: CC-BY-SA-3.0\n")
    debs = folder / "root" / "debs"
    debs.mkdir(parents=True)
    deb = debs / f"{PACKAGE}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(deb)], check=True, capture_output=True)
    return folder / "root"


def test_long_audio_becomes_two_disjoint_clips_with_the_licence_and_the_rest_is_counted(tmp_path: Path) -> None:
    root = make_deb(tmp_path)
    record = devset.build(root, packages=(PACKAGE,))
    stats = record["packages"][PACKAGE]
    # theme.ogg and theme-copy.ogg encode alike but are separate files; copy.ogg is byte-identical to theme.ogg.
    assert stats | {"deb": None} == {
        "deb": None, "audio_files": 5, "tracks": 2, "short": 1, "duplicates": 1, "tracker_skipped": 1, "not_music": 0,
    }  # fmt: skip
    clips = record["clips"]
    assert len(clips) == 4
    # Of two identical files the one the archive lists first is kept.
    listing = subprocess.run(["dpkg-deb", "-c", str(next((root / "debs").glob("*.deb")))], capture_output=True, text=True)
    kept = next(name for name in ("theme.ogg", "copy.ogg") if listing.stdout.index(f"/{name}") == min(
        listing.stdout.index(f"/{n}") for n in ("theme.ogg", "copy.ogg")))  # fmt: skip
    music = f"{PACKAGE}:usr/share/games/fake/music"
    assert {c["track"] for c in clips} == {f"{music}/{kept}", f"{music}/theme-copy.ogg"}
    first = sorted((c for c in clips if c["track"] == f"{music}/{kept}"), key=lambda c: c["offset_s"])
    assert [c["offset_s"] for c in first] == [5.0, 40.0]  # 75 s: 5 s spare before, between and after
    for clip in clips:
        samples, rate = sf.read(root / clip["file"])
        assert rate == devset.CLIP_RATE_HZ and abs(len(samples) / rate - devset.CLIP_S) < 0.01
        assert (root / clip["licence"]).read_text() == "License: CC-BY-SA-3.0\n"
    # A second build reads the cache: the manifest on disk is returned as it is.
    assert devset.build(root, packages=(PACKAGE,)) == json.loads((root / devset.MANIFEST).read_text())


def test_clip_offsets_split_the_spare_time_evenly() -> None:
    assert devset.clip_offsets(60.0) == [0.0, 30.0]
    assert devset.clip_offsets(90.0) == [10.0, 50.0]
