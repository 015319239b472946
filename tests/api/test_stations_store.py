"""The Stations table adapter on moto: items per change, concurrent feedback kept, batches conditional."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from api.stations_store import (
    BatchConflictError,
    PlayedBatch,
    Signal,
    StationDefinition,
    StationNotFoundError,
    StationStore,
)
from infra.template import load_template

STATIONS_TABLE = "soundslike-test-stations"
DEFINITION = StationDefinition("Morning", ("a", "b"), 1.0, 0.5, 0.5, 2)


@pytest.fixture
def store(aws) -> StationStore:
    counter = itertools.count(1_000)
    return StationStore(boto3.resource("dynamodb").Table(STATIONS_TABLE), clock=lambda: next(counter))


def test_the_test_table_is_the_templates() -> None:
    table = load_template()["Resources"]["StationsTable"]["Properties"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["station_id", "item"]


def test_created_station_reads_back_with_an_unguessable_id(store: StationStore) -> None:
    created = store.create(DEFINITION)
    other = store.create(DEFINITION)
    assert len(created.station_id) == 22 and created.station_id != other.station_id
    loaded = store.load(created.station_id)
    assert loaded.definition.seeds == ("a", "b") and loaded.definition.max_per_artist == 2
    assert loaded.definition.created_at and loaded.feedback == () and loaded.played == ()
    with pytest.raises(StationNotFoundError):
        store.load("nope")


def test_feedback_fired_in_parallel_is_all_kept(store: StationStore) -> None:
    station = store.create(DEFINITION)
    events = [(f"t{i}", (Signal.LIKE, Signal.DISLIKE, Signal.SKIP)[i % 3]) for i in range(120)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda e: store.add_feedback(station.station_id, *e), events))
    loaded = store.load(station.station_id)
    assert sorted((f.track_id, f.signal) for f in loaded.feedback) == sorted(events)
    assert loaded.feedback_counts() == {"like": 40, "dislike": 40, "skip": 40}


def test_the_latest_opinion_on_a_track_wins_and_skips_are_not_opinions(store: StationStore) -> None:
    station = store.create(DEFINITION)
    for track, signal in (("x", Signal.DISLIKE), ("x", Signal.LIKE), ("y", Signal.LIKE), ("y", Signal.SKIP)):
        store.add_feedback(station.station_id, track, signal)
    assert store.load(station.station_id).latest_signals() == {"x": Signal.LIKE, "y": Signal.LIKE}


def test_a_batch_number_is_recorded_once(store: StationStore) -> None:
    station = store.create(DEFINITION)
    store.record_batch(station.station_id, PlayedBatch(0, 0, ("p", "q")))
    with pytest.raises(BatchConflictError):
        store.record_batch(station.station_id, PlayedBatch(0, 0, ("r",)))
    store.record_batch(station.station_id, PlayedBatch(1, 1, ("r",)))
    loaded = store.load(station.station_id)
    assert loaded.next_batch == 2 and loaded.cycle == 1
    assert loaded.played_this_cycle() == ["r"] and loaded.history_length == 3


def test_update_and_delete(store: StationStore) -> None:
    station = store.create(DEFINITION)
    store.add_feedback(station.station_id, "t", Signal.LIKE)
    store.record_batch(station.station_id, PlayedBatch(0, 0, ("p",)))
    store.update(station.station_id, {"name": "Evening", "like_weight": 2.0, "max_per_artist": None})
    loaded = store.load(station.station_id).definition
    assert (loaded.name, loaded.like_weight, loaded.max_per_artist, loaded.seeds) == ("Evening", 2.0, None, ("a", "b"))
    store.delete(station.station_id)
    with pytest.raises(StationNotFoundError):
        store.load(station.station_id)
    assert boto3.resource("dynamodb").Table(STATIONS_TABLE).scan()["Items"] == []
    with pytest.raises(StationNotFoundError):
        store.update(station.station_id, {"name": "x"})
    with pytest.raises(StationNotFoundError):
        store.delete(station.station_id)
