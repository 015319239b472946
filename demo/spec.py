"""Which clips the demo catalogue holds: composers, excerpts, instruments.

The full catalogue crosses six composers with six General MIDI instruments,
two clips per (composer, instrument) pair, so each instrument and each composer
has 12 clips and the two labels are independent of each other: a similarity
that finds the instrument cannot do it by finding the composer, or the other
way round. Excerpts of one piece land on different instruments.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

SAMPLE_RATE_HZ = 22_050
CLIP_SECONDS = 30.0
FADE_OUT_SECONDS = 1.0
PEAK_LEVEL = 0.89
"""Peak sample value after normalising (about -1 dBFS), below mp3 overshoot."""
ALBUM = "soundslike demo catalogue"
GENRE = "Classical"
RENDERER_VERSION = 1
"""Bump when the rendering changes in a way the clip list does not show."""

MODES = ("full", "small")


@dataclass(frozen=True)
class Instrument:
    name: str
    gm_program: int
    """General MIDI program number, 0-based (0 = Acoustic Grand Piano)."""


PIANO = Instrument("Piano", 0)
VIBRAPHONE = Instrument("Vibraphone", 11)
CHURCH_ORGAN = Instrument("Church Organ", 19)
NYLON_GUITAR = Instrument("Nylon Guitar", 24)
STRINGS = Instrument("Strings", 48)
FLUTE = Instrument("Flute", 73)

INSTRUMENTS: tuple[Instrument, ...] = (PIANO, STRINGS, NYLON_GUITAR, CHURCH_ORGAN, FLUTE, VIBRAPHONE)


@dataclass(frozen=True)
class Composer:
    short: str
    """Used in titles and file names."""
    name: str
    """The artist tag."""


@dataclass(frozen=True)
class Excerpt:
    piece: str
    corpus_path: str
    """A music21 corpus name, as music21.corpus.parse takes it."""
    start_bar: int = 1


@dataclass(frozen=True)
class Clip:
    composer: Composer
    excerpt: Excerpt
    instrument: Instrument

    @property
    def piece(self) -> str:
        if self.excerpt.start_bar == 1:
            return self.excerpt.piece
        return f"{self.excerpt.piece}, from bar {self.excerpt.start_bar}"

    @property
    def title(self) -> str:
        return f"{self.composer.short}: {self.piece} ({self.instrument.name})"

    @property
    def file_name(self) -> str:
        return f"{self.composer.short} - {self.piece} ({self.instrument.name}).mp3"

    def spec_dict(self) -> dict[str, object]:
        return asdict(self)


BACH = Composer("Bach", "Johann Sebastian Bach")
MOZART = Composer("Mozart", "Wolfgang Amadeus Mozart")
BEETHOVEN = Composer("Beethoven", "Ludwig van Beethoven")
HAYDN = Composer("Haydn", "Joseph Haydn")
SCHUMANN = Composer("Schumann", "Robert Schumann")
MONTEVERDI = Composer("Monteverdi", "Claudio Monteverdi")

# Twelve excerpts per composer. A piece with two excerpts has them next to each
# other, which the instrument rotation in full_catalogue() sends to different
# instruments.
EXCERPTS: dict[Composer, tuple[Excerpt, ...]] = {
    BACH: (
        Excerpt("Prelude in C major BWV 846", "bach/bwv846", 1),
        Excerpt("Prelude in C major BWV 846", "bach/bwv846", 17),
        Excerpt("Chorale BWV 1.6", "bach/bwv1.6"),
        Excerpt("Chorale BWV 10.7", "bach/bwv10.7"),
        Excerpt("Chorale BWV 26.6", "bach/bwv26.6"),
        Excerpt("Chorale BWV 40.8", "bach/bwv40.8"),
        Excerpt("Chorale BWV 66.6", "bach/bwv66.6"),
        Excerpt("Chorale BWV 86.6", "bach/bwv86.6"),
        Excerpt("Chorale BWV 101.7", "bach/bwv101.7"),
        Excerpt("Chorale BWV 140.7", "bach/bwv140.7"),
        Excerpt("Chorale BWV 244.62", "bach/bwv244.62"),
        Excerpt("Christmas Oratorio BWV 248, chorale No. 9", "bach/bwv248.9-1"),
    ),
    MOZART: (
        Excerpt("String Quartet K. 80, I", "mozart/k80/movement1"),
        Excerpt("String Quartet K. 80, II", "mozart/k80/movement2"),
        Excerpt("String Quartet K. 80, IV", "mozart/k80/movement4"),
        Excerpt("String Quartet K. 155, I", "mozart/k155/movement1"),
        Excerpt("String Quartet K. 155, III", "mozart/k155/movement3"),
        Excerpt("String Quartet K. 156, I", "mozart/k156/movement1"),
        Excerpt("String Quartet K. 156, III", "mozart/k156/movement3"),
        Excerpt("String Quartet K. 458 'The Hunt', I", "mozart/k458/movement1", 1),
        Excerpt("String Quartet K. 458 'The Hunt', I", "mozart/k458/movement1", 55),
        Excerpt("String Quartet K. 458 'The Hunt', II", "mozart/k458/movement2"),
        Excerpt("String Quartet K. 458 'The Hunt', IV", "mozart/k458/movement4"),
        Excerpt("Piano Sonata K. 545, I", "mozart/k545/movement1_exposition"),
    ),
    BEETHOVEN: (
        Excerpt("String Quartet Op. 18 No. 1, I", "beethoven/opus18no1/movement1"),
        Excerpt("String Quartet Op. 18 No. 1, II", "beethoven/opus18no1/movement2"),
        Excerpt("String Quartet Op. 18 No. 1, III", "beethoven/opus18no1/movement3"),
        Excerpt("String Quartet Op. 18 No. 1, IV", "beethoven/opus18no1/movement4"),
        Excerpt("String Quartet Op. 59 No. 1, I", "beethoven/opus59no1/movement1"),
        Excerpt("String Quartet Op. 59 No. 1, III", "beethoven/opus59no1/movement3"),
        Excerpt("String Quartet Op. 59 No. 2, I", "beethoven/opus59no2/movement1"),
        Excerpt("String Quartet Op. 59 No. 2, II", "beethoven/opus59no2/movement2"),
        Excerpt("String Quartet Op. 59 No. 2, III", "beethoven/opus59no2/movement3"),
        Excerpt("String Quartet Op. 59 No. 3, I", "beethoven/opus59no3/movement1"),
        Excerpt("String Quartet Op. 59 No. 3, III", "beethoven/opus59no3/movement3"),
        Excerpt("String Quartet Op. 59 No. 3, IV", "beethoven/opus59no3/movement4"),
    ),
    HAYDN: (
        Excerpt("String Quartet Op. 1 No. 1, I", "haydn/opus1no1/movement1"),
        Excerpt("String Quartet Op. 1 No. 1, II", "haydn/opus1no1/movement2"),
        Excerpt("String Quartet Op. 1 No. 1, III", "haydn/opus1no1/movement3"),
        Excerpt("String Quartet Op. 1 No. 1, IV", "haydn/opus1no1/movement4"),
        Excerpt("String Quartet Op. 1 No. 1, V", "haydn/opus1no1/movement5"),
        Excerpt("String Quartet Op. 74 No. 1, I", "haydn/opus74no1/movement1", 1),
        Excerpt("String Quartet Op. 74 No. 1, I", "haydn/opus74no1/movement1", 61),
        Excerpt("String Quartet Op. 74 No. 1, II", "haydn/opus74no1/movement2", 1),
        Excerpt("String Quartet Op. 74 No. 1, II", "haydn/opus74no1/movement2", 61),
        Excerpt("String Quartet Op. 74 No. 1, III", "haydn/opus74no1/movement3"),
        Excerpt("String Quartet Op. 74 No. 1, IV", "haydn/opus74no1/movement4", 1),
        Excerpt("String Quartet Op. 74 No. 1, IV", "haydn/opus74no1/movement4", 101),
    ),
    SCHUMANN: (
        Excerpt("String Quartet Op. 41 No. 1, I", "schumann_robert/opus41no1/movement1", 1),
        Excerpt("String Quartet Op. 41 No. 1, I", "schumann_robert/opus41no1/movement1", 41),
        Excerpt("String Quartet Op. 41 No. 1, II", "schumann_robert/opus41no1/movement2", 1),
        Excerpt("String Quartet Op. 41 No. 1, II", "schumann_robert/opus41no1/movement2", 41),
        Excerpt("String Quartet Op. 41 No. 1, III", "schumann_robert/opus41no1/movement3", 1),
        Excerpt("String Quartet Op. 41 No. 1, III", "schumann_robert/opus41no1/movement3", 51),
        Excerpt("String Quartet Op. 41 No. 1, IV", "schumann_robert/opus41no1/movement4", 1),
        Excerpt("String Quartet Op. 41 No. 1, IV", "schumann_robert/opus41no1/movement4", 31),
        Excerpt("String Quartet Op. 41 No. 1, V", "schumann_robert/opus41no1/movement5", 1),
        Excerpt("String Quartet Op. 41 No. 1, V", "schumann_robert/opus41no1/movement5", 101),
        Excerpt("String Quartet Op. 41 No. 1, V", "schumann_robert/opus41no1/movement5", 201),
        Excerpt("Dichterliebe Op. 48, No. 2", "schumann_robert/dichterliebe_no2"),
    ),
    MONTEVERDI: (
        Excerpt("Madrigals, Book 3 No. 1", "monteverdi/madrigal.3.1"),
        Excerpt("Madrigals, Book 3 No. 2", "monteverdi/madrigal.3.2"),
        Excerpt("Madrigals, Book 3 No. 3", "monteverdi/madrigal.3.3"),
        Excerpt("Madrigals, Book 3 No. 4", "monteverdi/madrigal.3.4"),
        Excerpt("Madrigals, Book 3 No. 5", "monteverdi/madrigal.3.5"),
        Excerpt("Madrigals, Book 3 No. 6", "monteverdi/madrigal.3.6"),
        Excerpt("Madrigals, Book 4 No. 1", "monteverdi/madrigal.4.1"),
        Excerpt("Madrigals, Book 4 No. 2", "monteverdi/madrigal.4.2"),
        Excerpt("Madrigals, Book 4 No. 3", "monteverdi/madrigal.4.3"),
        Excerpt("Madrigals, Book 5 No. 1", "monteverdi/madrigal.5.1"),
        Excerpt("Madrigals, Book 5 No. 2", "monteverdi/madrigal.5.2"),
        Excerpt("Madrigals, Book 5 No. 3", "monteverdi/madrigal.5.3"),
    ),
}

SMALL_INSTRUMENTS: tuple[Instrument, ...] = (PIANO, STRINGS, NYLON_GUITAR, CHURCH_ORGAN)


def full_catalogue() -> list[Clip]:
    """72 clips: composer c's excerpt j plays on instrument (j + c) mod 6."""
    clips = []
    for c, (composer, excerpts) in enumerate(EXCERPTS.items()):
        for j, excerpt in enumerate(excerpts):
            clips.append(Clip(composer, excerpt, INSTRUMENTS[(j + c) % len(INSTRUMENTS)]))
    return clips


def small_catalogue() -> list[Clip]:
    """The full catalogue's clips on four instruments: 48 clips, 12 per instrument, 8 per composer.

    Why not fewer: a top-10 list can hold at most n - 1 clips of a class of n,
    while chance is (n - 1) / (N - 1), so precision@10 can only reach twice
    chance when N >= 21, and a test of "twice chance" needs room above that.
    With 12 clips per instrument the top 10 can be all of the same instrument.
    """
    return [clip for clip in full_catalogue() if clip.instrument in SMALL_INSTRUMENTS]


def catalogue(mode: str) -> list[Clip]:
    if mode == "full":
        return full_catalogue()
    if mode == "small":
        return small_catalogue()
    raise ValueError(f"unknown demo catalogue mode {mode!r}; expected one of {', '.join(MODES)}")


def spec_hash(payload: object) -> str:
    """A stable digest of anything JSON can hold, used to decide whether a cached build still fits."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
