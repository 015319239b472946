"""A track's musical descriptors (tempo, key, loudness, ...): one typed record, one set of names.

The extractor computes them (extractor/descriptors.py), the Tracks item stores
them as a DynamoDB map under ``descriptors``, the index bundle carries them per
track and every API response shows them. The field names are the same camelCase
names everywhere (item map, bundle, CLI output, API), so there is nothing to
translate. ARCHITECTURE.md, "Descriptors", says what each value means.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
CAMELOT_NUMBERS = 12
# Camelot wheel: C major is 8B and each fifth up adds one; a minor key shares the number of its
# relative major (A minor = 8A), three semitones up.
CAMELOT_C_MAJOR = 8
FIFTH_SEMITONES = 7
RELATIVE_MAJOR_SEMITONES = 3

# Decimal places each number keeps in the item and the bundle: finer than any of them is accurate.
_DECIMALS = {
    "tempoBpm": 1,
    "tempoConfidence": 3,
    "keyConfidence": 3,
    "loudnessLufs": 2,
    "dynamicRangeDb": 2,
    "energy": 3,
    "brightness": 0,
    "onsetRate": 2,
    "percussiveness": 3,
    "danceability": 3,
}


class DescriptorsError(ValueError):
    """A stored or supplied descriptors map that does not have the fields and types of :class:`Descriptors`."""


class Mode(enum.StrEnum):
    MAJOR = "major"
    MINOR = "minor"


def camelot(key: int, mode: Mode) -> str:
    """The Camelot wheel code of a key: '8B' for C major, '8A' for A minor."""
    major_tonic = key if mode is Mode.MAJOR else (key + RELATIVE_MAJOR_SEMITONES) % len(PITCH_CLASSES)
    number = (FIFTH_SEMITONES * major_tonic + CAMELOT_C_MAJOR - 1) % CAMELOT_NUMBERS + 1
    return f"{number}{'B' if mode is Mode.MAJOR else 'A'}"


def parse_camelot(code: str) -> tuple[int, str]:
    """('8', 'B') → (8, 'B'); raises DescriptorsError for anything else."""
    number, letter = code[:-1], code[-1:]
    if not number.isdigit() or not 1 <= int(number) <= CAMELOT_NUMBERS or letter not in ("A", "B"):
        raise DescriptorsError(f"{code!r} is not a Camelot code (1A..12B)")
    return int(number), letter


def camelot_compatible(a: str, b: str) -> bool:
    """Harmonic mixing's rule: the same code, one step round the wheel in the same mode, or the relative key."""
    (na, la), (nb, lb) = parse_camelot(a), parse_camelot(b)
    if na == nb:
        return True  # the same key, or its relative major / minor
    step = (na - nb) % CAMELOT_NUMBERS
    return la == lb and step in (1, CAMELOT_NUMBERS - 1)


@dataclass(frozen=True)
class Descriptors:
    """What the audio itself says about a track (computed on its preview clip)."""

    tempoBpm: float  # noqa: N815 - the public field names are camelCase, here as in the API
    tempoConfidence: float  # noqa: N815 - 0..1
    key: int  # pitch class of the tonic, 0 = C .. 11 = B
    keyName: str  # noqa: N815 - "C", "C#", ... (sharps)
    mode: Mode
    keyConfidence: float  # noqa: N815 - 0..1
    camelot: str
    loudnessLufs: float  # noqa: N815 - integrated, ITU-R BS.1770
    dynamicRangeDb: float  # noqa: N815 - loudness range of 400 ms blocks, LU (= dB)
    energy: float  # 0..1
    brightness: float  # spectral centroid, Hz
    onsetRate: float  # noqa: N815 - onsets per second
    percussiveness: float  # 0..1, share of percussive energy
    danceability: float  # 0..1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _DECIMALS and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise DescriptorsError(f"descriptor {f.name} must be a number, got {value!r}")
            if f.name in _DECIMALS and not math.isfinite(value):
                raise DescriptorsError(f"descriptor {f.name} must be finite, got {value!r}")
        if not (isinstance(self.key, int) and 0 <= self.key < len(PITCH_CLASSES)):
            raise DescriptorsError(f"descriptor key must be a pitch class 0..11, got {self.key!r}")
        try:
            object.__setattr__(self, "mode", Mode(self.mode))
        except ValueError:
            raise DescriptorsError(f"descriptor mode must be major or minor, got {self.mode!r}") from None
        if self.keyName != PITCH_CLASSES[self.key] or self.camelot != camelot(self.key, self.mode):
            raise DescriptorsError(
                f"descriptors key {self.key} {self.mode} disagree with keyName {self.keyName!r} / camelot {self.camelot!r}"
            )
        for name, places in _DECIMALS.items():
            object.__setattr__(self, name, round(float(getattr(self, name)), places))

    @classmethod
    def of_key(cls, *, key: int, mode: Mode, **values: float) -> Descriptors:
        """Build from the measured values; keyName and camelot follow from key and mode."""
        return cls(key=key, keyName=PITCH_CLASSES[key], mode=Mode(mode), camelot=camelot(key, Mode(mode)), **values)

    def to_json(self) -> dict[str, Any]:
        """The public form (API, CLI, bundle): plain JSON numbers and strings."""
        data = asdict(self)
        data["mode"] = self.mode.value
        return data

    def to_item(self) -> dict[str, Any]:
        """The Tracks item's map: DynamoDB takes numbers as Decimal, never float."""
        return {k: Decimal(str(v)) if k in _DECIMALS else v for k, v in self.to_json().items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptors:
        """From :meth:`to_json`'s or :meth:`to_item`'s form (Decimals allowed); unknown keys are ignored."""
        if not isinstance(data, Mapping):
            raise DescriptorsError(f"descriptors must be a map, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise DescriptorsError(f"descriptors lack {', '.join(missing)}")
        values = {k: float(v) if isinstance(v, Decimal) else v for k, v in data.items() if k in names}
        if isinstance(values["key"], float) and values["key"].is_integer():
            values["key"] = int(values["key"])
        return cls(**values)
