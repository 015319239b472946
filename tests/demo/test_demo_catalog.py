from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile
from music21 import corpus
from mutagen.easyid3 import EasyID3
from mutagen.mp3 import MP3

import demo.catalog
from demo.__main__ import main
from demo.catalog import CATALOGUE_FILE, BuildResult, build, read_catalogue
from demo.render import RenderError, render_clip, soundfont_path
from demo.spec import (
    ALBUM,
    BACH,
    CLIP_SECONDS,
    FLUTE,
    SAMPLE_RATE_HZ,
    Clip,
    Excerpt,
    catalogue,
    full_catalogue,
    small_catalogue,
)

CLIP_SAMPLES = int(CLIP_SECONDS * SAMPLE_RATE_HZ)
QUIET_RMS = 0.01  # -40 dBFS


def test_soundfont_comes_from_the_pretty_midi_package() -> None:
    path = soundfont_path()
    assert path.name == "TimGM6mb.sf2" and path.parent.name == "pretty_midi"
    assert path.stat().st_size > 1_000_000


def test_each_clip_is_30_s_of_mono_audio_at_the_catalogue_rate_and_never_goes_quiet(built: BuildResult) -> None:
    for path in sorted(built.folder.glob("*.mp3")):
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE_HZ, 1, CLIP_SAMPLES), path.name
        samples, _ = soundfile.read(path, dtype="float32")
        # The last second fades out; everything before it must be sounding music.
        body = samples[:-SAMPLE_RATE_HZ]
        one_second_rms = np.sqrt(
            (body[: len(body) // SAMPLE_RATE_HZ * SAMPLE_RATE_HZ].reshape(-1, SAMPLE_RATE_HZ) ** 2).mean(axis=1)
        )
        assert one_second_rms.min() > QUIET_RMS, f"{path.name} has a quiet second ({one_second_rms.min():.4f} RMS)"
        assert 0.5 < np.abs(samples).max() <= 1.0


def test_rendering_the_same_clip_twice_gives_the_same_samples(three_clips: list[Clip]) -> None:
    first = render_clip(three_clips[0])
    demo.render._parse.cache_clear()
    second = render_clip(three_clips[0])
    assert first.dtype == np.float32 and first.shape == (CLIP_SAMPLES,)
    np.testing.assert_array_equal(first, second)


def test_two_builds_into_different_folders_write_byte_identical_files(
    built: BuildResult, three_clips: list[Clip], tmp_path: Path
) -> None:
    again = build("test", tmp_path, clips=three_clips[:1], progress=False)
    name = three_clips[0].file_name
    assert again.rendered == 1
    assert (tmp_path / name).read_bytes() == (built.folder / name).read_bytes()


def test_different_instruments_playing_the_same_notes_have_different_spectral_centroids(
    built: BuildResult, three_clips: list[Clip]
) -> None:
    centroids = {}
    for clip in three_clips:
        samples, rate = soundfile.read(built.folder / clip.file_name, dtype="float32")
        centroids[clip.instrument.name] = float(librosa.feature.spectral_centroid(y=samples, sr=rate).mean())
    names = sorted(centroids)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            low, high = sorted((centroids[a], centroids[b]))
            assert high > 1.2 * low, f"{a} and {b} sound alike: centroids {centroids}"


def test_tags_and_catalogue_json_name_composer_piece_and_instrument(
    built: BuildResult, three_clips: list[Clip]
) -> None:
    record = read_catalogue(built.folder)
    assert record is not None and record["complete"]
    entries = {entry["file"]: entry for entry in record["clips"]}
    assert list(entries) == [clip.file_name for clip in three_clips]
    for clip in three_clips:
        assert clip.file_name == f"Bach - Chorale BWV 66.6 ({clip.instrument.name}).mp3"
        tags = MP3(built.folder / clip.file_name, ID3=EasyID3)
        assert tags["title"] == [f"Bach: Chorale BWV 66.6 ({clip.instrument.name})"]
        assert tags["artist"] == ["Johann Sebastian Bach"]
        assert tags["album"] == [ALBUM]
        entry = entries[clip.file_name]
        assert (entry["composer"], entry["piece"], entry["instrument"]) == (
            "Johann Sebastian Bach",
            "Chorale BWV 66.6",
            clip.instrument.name,
        )
        assert entry["title"] == tags["title"][0]


def test_second_build_reuses_every_file_without_rendering(
    tmp_path: Path, three_clips: list[Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build("test", tmp_path, clips=three_clips[:2], progress=False)
    assert (first.rendered, first.reused) == (2, 0)
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    def no_rendering(clip: Clip) -> None:
        raise AssertionError(f"{clip.title} was rendered again")

    monkeypatch.setattr(demo.catalog, "render_clip", no_rendering)
    second = build("test", tmp_path, clips=three_clips[:2], progress=False)
    assert (second.rendered, second.reused) == (0, 2)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes


def test_a_damaged_or_missing_file_is_rendered_again(tmp_path: Path, three_clips: list[Clip]) -> None:
    clips = three_clips[:2]
    build("test", tmp_path, clips=clips, progress=False)
    good = (tmp_path / clips[0].file_name).read_bytes()
    (tmp_path / clips[0].file_name).write_bytes(good[: len(good) // 2])
    (tmp_path / clips[1].file_name).unlink()
    again = build("test", tmp_path, clips=clips, progress=False)
    assert (again.rendered, again.reused) == (2, 0)
    assert (tmp_path / clips[0].file_name).read_bytes() == good


def test_a_clip_whose_spec_changed_is_rendered_again(tmp_path: Path, three_clips: list[Clip]) -> None:
    build("test", tmp_path, clips=three_clips[:1], progress=False)
    before = (tmp_path / three_clips[0].file_name).read_bytes()
    # Same composer, piece label and instrument (so the same file name), other notes.
    changed = Clip(BACH, Excerpt("Chorale BWV 66.6", "bach/bwv26.6"), three_clips[0].instrument)
    assert changed.file_name == three_clips[0].file_name
    result = build("test", tmp_path, clips=[changed], progress=False)
    assert (result.rendered, result.reused) == (1, 0)
    assert (tmp_path / changed.file_name).read_bytes() != before


def test_files_dropped_from_the_catalogue_are_removed_and_others_left_alone(
    tmp_path: Path, three_clips: list[Clip]
) -> None:
    build("test", tmp_path, clips=three_clips[:2], progress=False)
    (tmp_path / "my own notes.txt").write_text("keep me")
    build("test", tmp_path, clips=three_clips[:1], progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [three_clips[0].file_name, CATALOGUE_FILE, "my own notes.txt"]
    )


def test_a_failing_clip_keeps_the_finished_ones_for_the_next_build(tmp_path: Path, three_clips: list[Clip]) -> None:
    broken = Clip(BACH, Excerpt("No such chorale", "bach/bwv0.0"), FLUTE)
    with pytest.raises(RenderError, match="bach/bwv0.0"):
        build("test", tmp_path, clips=[three_clips[0], broken], progress=False)
    record = json.loads((tmp_path / CATALOGUE_FILE).read_text())
    assert not record["complete"] and [e["file"] for e in record["clips"]] == [three_clips[0].file_name]
    assert not list(tmp_path.glob("*.part"))
    resumed = build("test", tmp_path, clips=three_clips[:1], progress=False)
    assert (resumed.rendered, resumed.reused) == (0, 1)


def test_a_start_bar_past_the_end_of_the_piece_is_refused_with_the_bar_range() -> None:
    with pytest.raises(RenderError, match="bars up to 9, not 99"):
        render_clip(Clip(BACH, Excerpt("Chorale BWV 66.6", "bach/bwv66.6", 99), FLUTE))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown demo catalogue mode 'huge'"):
        catalogue("huge")


def test_full_catalogue_has_60_plus_distinct_clips_balanced_over_instruments_and_composers() -> None:
    clips = full_catalogue()
    assert len(clips) >= 60
    assert len({clip.file_name for clip in clips}) == len(clips)
    by_instrument = Counter(clip.instrument.name for clip in clips)
    by_composer = Counter(clip.composer.name for clip in clips)
    assert len(by_instrument) >= 4 and len(set(by_instrument.values())) == 1
    assert len(by_composer) >= 5 and len(set(by_composer.values())) == 1
    # Each (composer, instrument) pair is equally common, so neither label predicts the other.
    assert len(set(Counter((c.composer, c.instrument) for c in clips).values())) == 1


def test_every_excerpt_names_a_piece_in_the_bundled_music21_corpus() -> None:
    for excerpt in {clip.excerpt for clip in full_catalogue()}:
        assert corpus.getWork(excerpt.corpus_path), excerpt.corpus_path


def test_small_catalogue_lets_a_top_10_reach_twice_chance_for_every_instrument() -> None:
    clips = small_catalogue()
    assert set(clips) <= set(full_catalogue())
    counts = Counter(clip.instrument for clip in clips)
    n = len(clips)
    for same in counts.values():
        chance = (same - 1) / (n - 1)
        best_possible = min(10, same - 1) / 10
        assert best_possible >= 3 * chance


def test_cli_builds_and_prints_the_folder_last(
    tmp_path: Path, three_clips: list[Clip], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = []

    def two_clips(mode: str) -> list[Clip]:
        asked.append(mode)
        return three_clips[:2]

    monkeypatch.setattr(demo.catalog, "catalogue", two_clips)
    out = tmp_path / "catalogue"
    assert main(["build", "--small", "--out", str(out), "--quiet"]) == 0
    assert asked == ["small"]
    printed = capsys.readouterr()
    assert printed.out.strip().splitlines()[-1] == str(out.resolve())
    assert "2 clips, 2 rendered, 0 reused" in printed.err
    assert len(list(out.glob("*.mp3"))) == 2


def test_cli_reports_a_render_failure_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo.catalog, "catalogue", lambda mode: [Clip(BACH, Excerpt("Nothing", "bach/bwv0.0"), FLUTE)])
    assert main(["build", "--out", str(tmp_path), "--quiet"]) == 1
    assert "demo build failed" in capsys.readouterr().err


def test_default_folder_is_under_the_repo_local_cache() -> None:
    folder = demo.catalog.default_folder("small")
    assert folder.parts[-3:] == (".local", "demo-catalog", "small")
    assert Path(os.path.commonpath([folder, Path(demo.__file__).resolve().parents[1]])) == folder.parents[2]


def test_a_file_name_with_a_path_separator_is_refused(tmp_path: Path) -> None:
    sneaky = Clip(BACH, Excerpt("Chorale 1/2", "bach/bwv66.6"), FLUTE)
    with pytest.raises(ValueError, match="path separator"):
        build("test", tmp_path, clips=[sneaky], progress=False)
