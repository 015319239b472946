"""One clip to audio: a score excerpt from the music21 corpus, through MIDI, into tinysoundfont.

music21 writes the excerpt as a Standard MIDI File; tinysoundfont's own MIDI
reader turns it into timed note events (in seconds, tempo changes applied); we
play those on every channel with the clip's General MIDI program and pull the
samples out offline with ``Synth.generate_simple``, never through an audio
device (tinysoundfont imports pyaudio only for live playback).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pretty_midi
import tinysoundfont
import tinysoundfont.midi
from music21 import corpus, stream
from music21.midi import translate
from numpy.typing import NDArray

from demo.spec import CLIP_SECONDS, FADE_OUT_SECONDS, PEAK_LEVEL, SAMPLE_RATE_HZ, Clip

SOUNDFONT_FILE = "TimGM6mb.sf2"
STEREO_CHANNELS = 2
MIDI_CHANNELS = 16
FIRST_EXCERPT_BARS = 8
"""Bars taken first; doubled until the excerpt lasts a clip or the score ends."""


class RenderError(RuntimeError):
    """A clip that cannot be rendered: unknown corpus piece, bar out of range, no notes."""


def soundfont_path() -> Path:
    """The General MIDI soundfont shipped inside the pretty_midi package."""
    path = Path(pretty_midi.__file__).resolve().parent / SOUNDFONT_FILE
    if not path.is_file():
        raise RenderError(f"{SOUNDFONT_FILE} is missing from the pretty_midi package at {path.parent}")
    return path


@functools.lru_cache(maxsize=4)
def _parse(corpus_path: str) -> stream.Score:
    try:
        score = corpus.parse(corpus_path)
    except Exception as exc:  # music21 raises several unrelated types for a name it cannot find
        raise RenderError(f"music21 corpus has no piece {corpus_path!r}: {exc}") from exc
    if not isinstance(score, stream.Score):
        raise RenderError(f"music21 corpus piece {corpus_path!r} is not a score")
    return score


def excerpt_midi(corpus_path: str, start_bar: int, bars: int) -> bytes:
    """Bars ``start_bar .. start_bar + bars - 1`` of a corpus score as a Standard MIDI File."""
    excerpt = _parse(corpus_path).measures(start_bar, start_bar + bars - 1)
    flat = stream.Score()
    # Flattened parts have no measures, so music21 does not try to expand
    # repeat signs cut in half by the excerpt (it refuses to).
    for part in excerpt.parts:
        flat.insert(0, part.flatten())
    return translate.music21ObjectToMidiFile(flat).writestr()


def _last_bar(corpus_path: str) -> int:
    return max(m.number for m in _parse(corpus_path).parts[0].getElementsByClass(stream.Measure))


def note_events(midi: bytes) -> list[tinysoundfont.midi.Event]:
    """The note on/off events of a MIDI file, in seconds; the score's own instruments are dropped."""
    events = tinysoundfont.midi.load_memory(midi)
    return [e for e in events if isinstance(e.action, tinysoundfont.midi.NoteOn | tinysoundfont.midi.NoteOff)]


def clip_events(clip: Clip, seconds: float = CLIP_SECONDS) -> list[tinysoundfont.midi.Event]:
    """Note events that fill ``seconds``: a long enough excerpt, repeated when the piece is shorter.

    Short pieces (a chorale lasts about 20 s) repeat from the start, as a
    chorale's next verse would.
    """
    last_bar = _last_bar(clip.excerpt.corpus_path)
    if not 0 <= clip.excerpt.start_bar <= last_bar:
        raise RenderError(f"{clip.excerpt.corpus_path} has bars up to {last_bar}, not {clip.excerpt.start_bar}")
    bars = FIRST_EXCERPT_BARS
    while True:
        events = note_events(excerpt_midi(clip.excerpt.corpus_path, clip.excerpt.start_bar, bars))
        if not events:
            raise RenderError(f"{clip.excerpt.corpus_path} has no notes from bar {clip.excerpt.start_bar}")
        length_s = events[-1].t
        if length_s >= seconds or clip.excerpt.start_bar + bars > last_bar:
            break
        bars *= 2
    if length_s <= 0:
        raise RenderError(f"{clip.excerpt.corpus_path} from bar {clip.excerpt.start_bar} lasts no time")
    looped = list(events)
    offset_s = length_s
    while offset_s < seconds:
        looped.extend(
            tinysoundfont.midi.Event(e.action, t=e.t + offset_s, channel=e.channel, persistent=False) for e in events
        )
        offset_s += length_s
    return [e for e in looped if e.t < seconds]


@functools.lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    return soundfont_path().read_bytes()


def synthesize(
    events: list[tinysoundfont.midi.Event],
    gm_program: int,
    seconds: float = CLIP_SECONDS,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> NDArray[np.float32]:
    """Play note events on one General MIDI program; mono float32, peak-normalised, faded out at the end."""
    synth = tinysoundfont.Synth(samplerate=sample_rate_hz)
    sfid = synth.sfload(_soundfont_bytes())
    for channel in range(MIDI_CHANNELS):
        synth.program_select(channel, sfid, 0, gm_program)
    total = int(round(seconds * sample_rate_hz))
    stereo = np.zeros((total, STEREO_CHANNELS), dtype=np.float32)
    position = 0
    for event in sorted(events, key=lambda e: e.t):
        at = min(int(round(event.t * sample_rate_hz)), total)
        if at > position:
            _generate_into(synth, stereo[position:at])
            position = at
        if isinstance(event.action, tinysoundfont.midi.NoteOn) and event.action.velocity > 0:
            synth.noteon(event.channel, event.action.key, event.action.velocity)
        else:
            synth.noteoff(event.channel, event.action.key)
    if position < total:
        _generate_into(synth, stereo[position:])
    mono = stereo.mean(axis=1)
    peak = float(np.max(np.abs(mono)))
    if peak == 0.0:
        raise RenderError("the synthesizer produced silence")
    mono *= PEAK_LEVEL / peak
    fade = min(int(FADE_OUT_SECONDS * sample_rate_hz), total)
    mono[total - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return mono.astype(np.float32)


def _generate_into(synth: tinysoundfont.Synth, out: NDArray[np.float32]) -> None:
    buffer = synth.generate_simple(len(out))
    out[:] = np.frombuffer(buffer, dtype=np.float32).reshape(-1, STEREO_CHANNELS)


def render_clip(clip: Clip, seconds: float = CLIP_SECONDS, sample_rate_hz: int = SAMPLE_RATE_HZ) -> NDArray[np.float32]:
    """The clip's audio: mono float32 at ``sample_rate_hz``, exactly ``seconds`` long."""
    return synthesize(clip_events(clip, seconds), clip.instrument.gm_program, seconds, sample_rate_hz)
