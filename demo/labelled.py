"""Clips with known tempo, key and level, for pinning and measuring the descriptors.

Each clip is written with pretty_midi (chords, bass, melody and, for some, a GM
drum kit, all on the beat grid of a known tempo in a known key) and played by
tinysoundfont on pretty_midi's General MIDI soundfont, every channel with its own
program, channel 10 as drums. Audio is stereo at 44.1 kHz, as a preview would be.
Nothing is normalised after rendering except by an explicit gain, so the level of
a copy is known: its reference loudness is the source's BS.1770 loudness plus the
gain in dB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pretty_midi
import tinysoundfont
import tinysoundfont.midi
from numpy.typing import NDArray

from demo.render import MIDI_CHANNELS, STEREO_CHANNELS, _generate_into, _soundfont_bytes

RATE_HZ = 44_100
DRUM_CHANNEL = 9
DRUM_BANK = 128
BEATS_PER_BAR = 4
# Peak of a rendered clip before any gain: room for +6 dB copies without clipping.
PEAK_LEVEL = 0.4

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor: its V chord has the leading tone
# Chords as scale degrees (0-based) per bar, four bars a cycle.
MAJOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3))
MINOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4))
# General MIDI programs (0-based): piano, electric piano, nylon guitar, organ, strings, vibraphone.
PROGRAMS = (0, 4, 24, 19, 48, 11)
BASS_PROGRAM = 33
MELODY_PROGRAMS = (73, 0, 11, 56)
KICK, SNARE, CLOSED_HAT, OPEN_HAT = 36, 38, 42, 46


@dataclass(frozen=True)
class Labelled:
    """A rendered clip and what it is."""

    name: str
    audio: NDArray[np.float32]  # (frames, 2) at RATE_HZ
    tempo_bpm: float
    key: int | None  # tonic pitch class; None for drums only
    minor: bool | None


def _triad(tonic: int, scale: tuple[int, ...], degree: int) -> list[int]:
    """The chord on a scale degree as pitch classes above the tonic (root, third, fifth)."""
    return [tonic + scale[(degree + step) % 7] + 12 * ((degree + step) // 7) for step in (0, 2, 4)]


def song(tempo_bpm: float, tonic: int, minor: bool, seconds: float, seed: int, drums: bool) -> pretty_midi.PrettyMIDI:
    """Block chords on every beat (accent on one), a bass on one and three, a melody in quarters and halves."""
    rng = np.random.default_rng(seed)
    beat_s = 60.0 / tempo_bpm
    scale = MINOR_SCALE if minor else MAJOR_SCALE
    progression = (MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS)[rng.integers(0, 3)]
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    chords = pretty_midi.Instrument(program=int(PROGRAMS[rng.integers(0, len(PROGRAMS))]))
    bass = pretty_midi.Instrument(program=BASS_PROGRAM)
    melody = pretty_midi.Instrument(program=int(MELODY_PROGRAMS[rng.integers(0, len(MELODY_PROGRAMS))]))
    # Keep the chords between G3 and F#4 whatever the key.
    chord_base = 48 + tonic if tonic >= 7 else 60 + tonic
    n_beats = int(seconds / beat_s) + 1
    degree_note = int(rng.integers(0, 7))
    for beat in range(n_beats):
        start, bar = beat * beat_s, beat // BEATS_PER_BAR
        in_bar = beat % BEATS_PER_BAR
        chord = _triad(0, scale, progression[bar % len(progression)])
        velocity = 100 if in_bar == 0 else 72
        for pc in chord:
            chords.notes.append(pretty_midi.Note(velocity, chord_base + pc, start, start + 0.9 * beat_s))
        if in_bar in (0, 2):
            bass.notes.append(pretty_midi.Note(velocity, chord_base - 24 + chord[0], start, start + 1.8 * beat_s))
        if in_bar in (0, 1, 2) or rng.random() < 0.5:
            # A random walk on the scale, leaning on chord tones at the bar's start.
            degree_note = int(np.clip(degree_note + rng.integers(-2, 3), 0, 9))
            if in_bar == 0:
                degree_note = progression[bar % len(progression)] + 7 * (degree_note >= 7)
            pitch = chord_base + 12 + scale[degree_note % 7] + 12 * (degree_note // 7)
            melody.notes.append(pretty_midi.Note(velocity - 10, pitch, start, start + 0.95 * beat_s))
    midi.instruments += [chords, bass, melody]
    if drums:
        midi.instruments.append(drum_kit(tempo_bpm, seconds))
    return midi


def drum_kit(tempo_bpm: float, seconds: float, fill_every_bars: int = 0) -> pretty_midi.Instrument:
    """A rock beat: kick on one and three, snare on two and four, closed hi-hat on every eighth."""
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    eighth_s = 30.0 / tempo_bpm
    for eighth in range(int(seconds / eighth_s) + 1):
        start = eighth * eighth_s
        beat, on_beat = eighth // 2, eighth % 2 == 0
        if on_beat and beat % 2 == 0:
            kit.notes.append(pretty_midi.Note(110, KICK, start, start + 0.1))
        if on_beat and beat % 2 == 1:
            kit.notes.append(pretty_midi.Note(100, SNARE, start, start + 0.1))
        hat = OPEN_HAT if fill_every_bars and beat % (fill_every_bars * BEATS_PER_BAR) == 0 and not on_beat else CLOSED_HAT
        kit.notes.append(pretty_midi.Note(80 if on_beat else 60, hat, start, start + 0.05))
    return kit


def drum_loop(tempo_bpm: float, seconds: float) -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    midi.instruments.append(drum_kit(tempo_bpm, seconds, fill_every_bars=2))
    return midi


def render(midi: pretty_midi.PrettyMIDI, seconds: float, rate_hz: int = RATE_HZ) -> NDArray[np.float32]:
    """(frames, 2) float32: the MIDI played by tinysoundfont, scaled to PEAK_LEVEL, cut to ``seconds``."""
    buffer = io.BytesIO()
    midi.write(buffer)
    events = tinysoundfont.midi.load_memory(buffer.getvalue())
    synth = tinysoundfont.Synth(samplerate=rate_hz)
    sfid = synth.sfload(_soundfont_bytes())
    for channel in range(MIDI_CHANNELS):
        synth.program_select(channel, sfid, 0, 0)
    synth.program_select(DRUM_CHANNEL, sfid, DRUM_BANK, 0, is_drums=True)
    total = int(round(seconds * rate_hz))
    out = np.zeros((total, STEREO_CHANNELS), dtype=np.float32)
    position = 0
    for event in sorted(events, key=lambda e: e.t):
        at = min(int(round(event.t * rate_hz)), total)
        if at > position:
            _generate_into(synth, out[position:at])
            position = at
        action = event.action
        if isinstance(action, tinysoundfont.midi.ProgramChange) and event.channel != DRUM_CHANNEL:
            synth.program_select(event.channel, sfid, 0, action.program)
        elif isinstance(action, tinysoundfont.midi.NoteOn) and action.velocity > 0:
            synth.noteon(event.channel, action.key, action.velocity)
        elif isinstance(action, tinysoundfont.midi.NoteOn | tinysoundfont.midi.NoteOff):
            synth.noteoff(event.channel, action.key)
    if position < total:
        _generate_into(synth, out[position:])
    peak = float(np.max(np.abs(out)))
    if peak == 0.0:
        raise ValueError("the synthesizer produced silence")
    return out * np.float32(PEAK_LEVEL / peak)


def tonal_set(n: int, seconds: float, first_seed: int = 0) -> list[Labelled]:
    """``n`` songs cycling through the 24 keys, tempos spread over 60..180 BPM, every other one with drums."""
    clips = []
    for i in range(n):
        tonic, minor = (7 * i) % 12, (i // 12) % 2 == 1
        tempo_bpm = 60.0 + (120.0 * ((i * 7) % max(n, 1)) / max(n - 1, 1))
        name = f"{pretty_midi.note_number_to_name(60 + tonic)[:-1]} {'minor' if minor else 'major'} @ {tempo_bpm:.0f}"
        midi = song(tempo_bpm, tonic, minor, seconds, seed=first_seed + i, drums=i % 2 == 0)
        clips.append(Labelled(name, render(midi, seconds), tempo_bpm, tonic, minor))
    return clips


def drum_set(tempos_bpm: list[float], seconds: float) -> list[Labelled]:
    return [Labelled(f"drums @ {t:.0f}", render(drum_loop(t, seconds), seconds), t, None, None) for t in tempos_bpm]


def with_gain(audio: NDArray[np.float32], gain_db: float) -> NDArray[np.float32]:
    return (audio * np.float32(10 ** (gain_db / 20))).astype(np.float32)
