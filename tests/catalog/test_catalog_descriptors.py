"""The descriptors contract: Camelot codes, compatibility, and the Tracks item's map."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import boto3
import pytest
from moto import mock_aws

from catalog.descriptors import (
    PITCH_CLASSES,
    Descriptors,
    DescriptorsError,
    Mode,
    camelot,
    camelot_compatible,
)
from catalog.records import Source, Status, TrackRecord, encode_embedding
from catalog.storage import TrackTable
from infra.resources import template_table_params


def sample(**changes: object) -> Descriptors:
    values: dict[str, object] = {
        "tempoBpm": 121.04,
        "tempoConfidence": 0.8123,
        "keyConfidence": 0.71,
        "loudnessLufs": -14.237,
        "dynamicRangeDb": 6.5,
        "energy": 0.7,
        "brightness": 1834.6,
        "onsetRate": 3.25,
        "percussiveness": 0.4,
        "danceability": 0.6,
    }
    values.update(changes)
    return Descriptors.of_key(key=9, mode=Mode.MINOR, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "mode", "code"),
    [
        (0, Mode.MAJOR, "8B"), (9, Mode.MINOR, "8A"), (7, Mode.MAJOR, "9B"), (5, Mode.MAJOR, "7B"),
        (11, Mode.MAJOR, "1B"), (8, Mode.MINOR, "1A"), (4, Mode.MAJOR, "12B"), (1, Mode.MINOR, "12A"),
        (3, Mode.MAJOR, "5B"), (0, Mode.MINOR, "5A"),
    ],
)
def test_camelot_codes_follow_the_wheel(key: int, mode: Mode, code: str) -> None:
    assert camelot(key, mode) == code


def test_the_24_keys_have_24_distinct_codes() -> None:
    assert len({camelot(k, m) for k in range(12) for m in Mode}) == 24


@pytest.mark.parametrize(
    ("a", "b", "compatible"),
    [
        ("8A", "8A", True), ("8A", "8B", True), ("8A", "9A", True), ("8A", "7A", True),
        ("12B", "1B", True), ("1B", "12B", True), ("8A", "9B", False), ("8A", "10A", False),
        ("8B", "2B", False), ("3A", "4B", False),
    ],
)
def test_compatible_keys_are_the_same_code_one_step_round_the_wheel_or_the_relative_key(
    a: str, b: str, compatible: bool
) -> None:
    assert camelot_compatible(a, b) is compatible


def test_values_are_rounded_and_key_name_and_code_follow_from_key_and_mode() -> None:
    d = sample()
    assert (d.tempoBpm, d.tempoConfidence, d.loudnessLufs, d.brightness) == (121.0, 0.812, -14.24, 1835.0)
    assert (d.keyName, d.camelot, d.mode) == ("A", "8A", Mode.MINOR)
    assert d.to_json()["mode"] == "minor" and PITCH_CLASSES[d.key] == "A"


@pytest.mark.parametrize(
    "bad",
    [{"tempoBpm": float("nan")}, {"energy": "high"}, {"danceability": True}, {"mode": "dorian"}, {"key": 12}],
)
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    values = sample().to_json() | bad
    with pytest.raises(DescriptorsError):
        Descriptors.from_json(values)


def test_a_camelot_code_that_disagrees_with_the_key_is_refused() -> None:
    with pytest.raises(DescriptorsError, match="disagree"):
        Descriptors.from_json(sample().to_json() | {"camelot": "9A"})


def test_a_map_missing_fields_is_refused_and_unknown_fields_are_ignored() -> None:
    data = sample().to_json()
    assert Descriptors.from_json(data | {"addedLater": 1}) == sample()
    del data["energy"]
    with pytest.raises(DescriptorsError, match="energy"):
        Descriptors.from_json(data)


def test_the_item_map_holds_decimals_and_round_trips() -> None:
    item = sample().to_item()
    assert item["tempoBpm"] == Decimal("121.0") and item["key"] == 9 and item["mode"] == "minor"
    assert all(not isinstance(v, float) for v in item.values())
    assert Descriptors.from_json(item) == sample()


@pytest.fixture
def table() -> Iterator[TrackTable]:
    with mock_aws():
        boto3.client("dynamodb").create_table(**template_table_params("Tracks"))
        yield TrackTable("Tracks", boto3.resource("dynamodb").Table("Tracks"))


def test_mark_ready_stores_descriptors_and_a_re_extraction_replaces_them(table: TrackTable) -> None:
    table.put_pending(TrackRecord(track_id="t1", source=Source.SPOTIFY, title="Song"))
    assert table.get("t1").descriptors is None
    table.mark_ready("t1", embedding=encode_embedding([1, 0]), dim=2, model="m", tags={}, descriptors=sample())
    assert table.get("t1").descriptors == sample()
    table.mark_ready("t1", embedding=encode_embedding([0, 1]), dim=2, model="m", tags={},
                     descriptors=sample(tempoBpm=90.0))
    assert table.get("t1").descriptors.tempoBpm == 90.0


def test_items_without_descriptors_read_as_none_and_write_no_attribute(table: TrackTable) -> None:
    table.mark_ready("t2", embedding=encode_embedding([1, 0]), dim=2, model="m", tags={},
                     fallback=TrackRecord(track_id="t2", source=Source.LOCAL))
    record = table.get("t2")
    assert record.status is Status.READY and record.descriptors is None
    assert "descriptors" not in record.to_item()
    assert TrackRecord.from_item({**record.to_item(), "descriptors": sample().to_item()}).descriptors == sample()
