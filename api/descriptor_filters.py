"""Descriptor filters for every list endpoint: tempo, key compatibility, loudness, mode.

One parse function turns request parameters (a query string's or a JSON body's)
into a :class:`DescriptorFilter`; its :meth:`DescriptorFilter.accept` gives the
predicate ``ServedIndex.search`` calls in similarity order, so filtering happens
after retrieval with over-fetch until ``k`` results or the catalogue is exhausted.
Compose it with other list policies with :func:`api.listing.all_of`.

    filters = parse_filters(router.current_event.query_string_parameters or {})
    accept = all_of(filters.accept(seed_descriptors), policy.acceptor(index))

A track without descriptors never passes an active filter (nothing says it matches).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from api.errors import ApiError
from api.served import Accept
from catalog.bundle import TrackMeta
from catalog.descriptors import Mode, camelot_compatible

# The request parameters, by their public names.
MIN_TEMPO, MAX_TEMPO, TEMPO_OCTAVES = "minTempo", "maxTempo", "tempoOctaves"
KEY, MODE = "key", "mode"
MIN_LOUDNESS, MAX_LOUDNESS = "minLoudness", "maxLoudness"
PARAMETERS = (MIN_TEMPO, MAX_TEMPO, TEMPO_OCTAVES, KEY, MIN_LOUDNESS, MAX_LOUDNESS, MODE)
KEY_COMPATIBLE = "compatible"
# With tempoOctaves a track also matches at half and at twice its tempo (60 BPM matches 120).
OCTAVE_FACTORS = (0.5, 1.0, 2.0)
TEMPO_RANGE_BPM = (1.0, 1000.0)
LOUDNESS_RANGE_LUFS = (-100.0, 20.0)
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_filter", message)


def _number(params: Mapping[str, Any], name: str, valid: tuple[float, float]) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise _invalid(f"{name} must be a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _invalid(f"{name} must be a number") from None
    if not math.isfinite(value) or not valid[0] <= value <= valid[1]:
        raise _invalid(f"{name} must be between {valid[0]:g} and {valid[1]:g}")
    return value


def _flag(params: Mapping[str, Any], name: str) -> bool:
    raw = params.get(name)
    if raw is None or raw == "" or isinstance(raw, bool):
        return bool(raw)
    if str(raw).lower() in _TRUE:
        return True
    if str(raw).lower() in _FALSE:
        return False
    raise _invalid(f"{name} must be true or false")


def _choice(params: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise _invalid(f"{name} must be {' or '.join(allowed)}")
    return str(raw)


@dataclass(frozen=True)
class DescriptorFilter:
    min_tempo: float | None = None
    max_tempo: float | None = None
    tempo_octaves: bool = False
    compatible_key: bool = False
    min_loudness: float | None = None
    max_loudness: float | None = None
    mode: Mode | None = None

    @property
    def active(self) -> bool:
        return any(
            v is not None for v in (self.min_tempo, self.max_tempo, self.min_loudness, self.max_loudness, self.mode)
        ) or self.compatible_key

    def _tempo_ok(self, bpm: float) -> bool:
        low = self.min_tempo if self.min_tempo is not None else -math.inf
        high = self.max_tempo if self.max_tempo is not None else math.inf
        factors = OCTAVE_FACTORS if self.tempo_octaves else (1.0,)
        return any(low <= bpm * factor <= high for factor in factors)

    def matches(self, descriptors: Mapping[str, Any] | None, seed_camelot: str | None = None) -> bool:
        """Whether a track's descriptors (the public dict) pass every active filter."""
        if not self.active:
            return True
        if not descriptors:
            return False
        if (self.min_tempo is not None or self.max_tempo is not None) and not self._tempo_ok(descriptors["tempoBpm"]):
            return False
        loudness = descriptors["loudnessLufs"]
        if self.min_loudness is not None and loudness < self.min_loudness:
            return False
        if self.max_loudness is not None and loudness > self.max_loudness:
            return False
        if self.mode is not None and descriptors["mode"] != self.mode.value:
            return False
        return not (self.compatible_key and seed_camelot and not camelot_compatible(seed_camelot, descriptors["camelot"]))

    def accept(self, seed: Mapping[str, Any] | None = None) -> Accept | None:
        """The predicate over TrackMeta for ServedIndex.search, or None when no filter is active.

        ``seed`` is the query's descriptors (the query track's, or the uploaded audio's):
        key=compatible is relative to it, and a 422 says so when it has none.
        """
        if not self.active:
            return None
        seed_camelot = None
        if self.compatible_key:
            if not seed:
                raise ApiError(
                    422, "query_has_no_key", "key=compatible needs the query's key, and its descriptors are not known yet"
                )
            seed_camelot = str(seed["camelot"])

        def accept(meta: TrackMeta) -> bool:
            return self.matches(meta.descriptors, seed_camelot)

        return accept


def parse_filters(params: Mapping[str, Any]) -> DescriptorFilter:
    """The filters named in request parameters (strings from a query string, or JSON values); 400 if one is bad."""
    filters = DescriptorFilter(
        min_tempo=_number(params, MIN_TEMPO, TEMPO_RANGE_BPM),
        max_tempo=_number(params, MAX_TEMPO, TEMPO_RANGE_BPM),
        tempo_octaves=_flag(params, TEMPO_OCTAVES),
        compatible_key=_choice(params, KEY, (KEY_COMPATIBLE,)) is not None,
        min_loudness=_number(params, MIN_LOUDNESS, LOUDNESS_RANGE_LUFS),
        max_loudness=_number(params, MAX_LOUDNESS, LOUDNESS_RANGE_LUFS),
        mode=Mode(mode) if (mode := _choice(params, MODE, tuple(m.value for m in Mode))) else None,
    )
    for low, high, low_name, high_name in (
        (filters.min_tempo, filters.max_tempo, MIN_TEMPO, MAX_TEMPO),
        (filters.min_loudness, filters.max_loudness, MIN_LOUDNESS, MAX_LOUDNESS),
    ):
        if low is not None and high is not None and low > high:
            raise _invalid(f"{low_name} must not be greater than {high_name}")
    return filters


class BodyFilters(BaseModel):
    """The same filters as fields of a JSON request body (POST routes), under the same public names.

    Types and ranges are checked by the body's validation; :func:`parse_filters` then applies
    the rules that span fields (minTempo not above maxTempo).
    """

    min_tempo: Annotated[float, Field(ge=TEMPO_RANGE_BPM[0], le=TEMPO_RANGE_BPM[1])] | None = Field(None, alias=MIN_TEMPO)
    max_tempo: Annotated[float, Field(ge=TEMPO_RANGE_BPM[0], le=TEMPO_RANGE_BPM[1])] | None = Field(None, alias=MAX_TEMPO)
    tempo_octaves: bool = Field(False, alias=TEMPO_OCTAVES)
    key: Literal["compatible"] | None = None
    min_loudness: Annotated[float, Field(ge=LOUDNESS_RANGE_LUFS[0], le=LOUDNESS_RANGE_LUFS[1])] | None = Field(
        None, alias=MIN_LOUDNESS
    )
    max_loudness: Annotated[float, Field(ge=LOUDNESS_RANGE_LUFS[0], le=LOUDNESS_RANGE_LUFS[1])] | None = Field(
        None, alias=MAX_LOUDNESS
    )
    mode: Literal["major", "minor"] | None = None

    def filters(self) -> DescriptorFilter:
        return parse_filters(self.model_dump(by_alias=True, include=set(BodyFilters.model_fields), exclude_none=True))
