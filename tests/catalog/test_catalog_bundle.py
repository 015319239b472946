"""catalog.bundle: the one writer and reader of bases, deltas and LATEST.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from catalog.bundle import (
    BaseManifest,
    BaseReader,
    BaseRows,
    BundleError,
    Delta,
    FileSum,
    LatestPointer,
    TrackMeta,
    write_base,
)
from catalog.keys import META_FILENAME, VECTORS_FILENAME, VECTORS_FILENAME_F32, delta_key
from catalog.records import Source, TrackRecord

DIM = 8


def _vectors(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _base(tmp_path: Path, ids: list[str], vectors: np.ndarray, version: str = "v1", chunk: int = 7) -> BaseManifest:
    metas = [TrackMeta(track_id=i, title=f"title {i}", artists=("A",)).to_json() for i in ids]
    rows = [BaseRows(ids[s:s + chunk], metas[s:s + chunk], vectors[s:s + chunk]) for s in range(0, len(ids), chunk)]
    return write_base(tmp_path / version, rows, version=version, created_at="2026-12-01T00:00:00Z", model="m",
                      n_trees=4, search_k=lambda n: 10 * n)


def _as_format_2(directory: Path, manifest: BaseManifest, vectors: np.ndarray) -> BaseManifest:
    """The base as a format 2 writer left it: the raw vectors in float32 under vectors.f32."""
    (directory / VECTORS_FILENAME).unlink()
    (directory / VECTORS_FILENAME_F32).write_bytes(np.ascontiguousarray(vectors, "<f4").tobytes())
    files = {name: file for name, file in manifest.files.items() if name != VECTORS_FILENAME}
    old = BaseManifest(**{**manifest.__dict__, "format": 2, "files": {**files, VECTORS_FILENAME_F32: FileSum.of(directory / VECTORS_FILENAME_F32)}})
    old.validate()
    (directory / "manifest.json").write_bytes(old.to_json())
    return old


def test_a_format_2_base_is_read_in_float32_and_rewritten_as_format_3(tmp_path: Path) -> None:
    ids = [f"t{i:03d}" for i in range(30)]
    vectors = _vectors(30)
    old = _as_format_2(tmp_path / "v1", _base(tmp_path, ids, vectors), vectors)
    assert old.base_files == ("tracks.ann", "vectors.f32", "meta.sqlite", "space.npz")
    reader = BaseReader.open(tmp_path / "v1", BaseManifest.from_json((tmp_path / "v1" / "manifest.json").read_bytes()))
    try:
        assert reader.raw_vectors().dtype == np.dtype("<f4")
        np.testing.assert_array_equal(reader.raw_vectors(), vectors)  # exactly what the old writer kept
        rows = [BaseRows([r[1] for r in chunk], [r[2] for r in chunk], np.asarray(reader.raw_vectors()[[r[0] for r in chunk]]))
                for chunk in reader.iter_rows(chunk=8)]
    finally:
        reader.close()
    new = write_base(tmp_path / "v2", rows, version="v2", created_at="2026-12-02T00:00:00Z", model="m", n_trees=4, search_k=40)
    assert (new.format, new.vectors_file, new.vector_dtype) == (3, "vectors.f16", np.dtype("<f2"))
    assert (tmp_path / "v2" / "vectors.f16").stat().st_size == 30 * DIM * 2  # half of float32's bytes
    compacted = BaseReader.open(tmp_path / "v2", new)
    try:
        np.testing.assert_array_equal(compacted.raw_vectors(), vectors.astype(np.float16))
    finally:
        compacted.close()


def test_a_vector_that_does_not_fit_float16_is_refused(tmp_path: Path) -> None:
    vectors = _vectors(3)
    vectors[1, 2] = 1e6  # past float16's largest value (65504)
    with pytest.raises(ValueError, match="does not fit float16"):
        _base(tmp_path, ["a", "b", "c"], vectors)


def test_base_round_trips_by_item_and_by_id_in_chunks(tmp_path: Path) -> None:
    ids = [f"t{i:03d}" for i in range(40)]
    vectors = 3.0 * _vectors(40)  # raw vectors need not be unit length: the transform normalises
    manifest = _base(tmp_path, ids, vectors)
    assert (manifest.count, manifest.dim, manifest.search_k, manifest.n_trees) == (40, DIM, 400, 4)
    assert set(manifest.files) == set(manifest.base_files) == {"tracks.ann", "vectors.f16", "meta.sqlite", "space.npz"}
    reopened = BaseManifest.from_json(manifest.to_json())
    assert reopened == manifest and "track_ids" not in json.loads(manifest.to_json())
    reader = BaseReader.open(tmp_path / "v1", manifest)
    assert reader.item_of("t017") == 17 and reader.item_of("nope") is None
    assert reader.meta(17).title == "title t017"
    assert reader.items_of(["t001", "t039", "nope"]) == {"t001": 1, "t039": 39}
    # The raw model output in item order, kept as float16 (format 3): every value to the nearest float16.
    assert reader.raw_vectors().dtype == np.dtype("<f2")
    np.testing.assert_array_equal(reader.raw_vectors(), vectors.astype(np.float16))
    stored = np.asarray(reader.annoy.get_item_vector(5), np.float32)
    unit16 = vectors[5].astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(stored, unit16 / np.linalg.norm(unit16), atol=1e-6)  # Annoy holds the searched space
    assert [row[1] for rows in reader.iter_rows(chunk=9) for row in rows] == ids
    reader.close()


def test_same_input_same_fingerprint_and_duplicates_refused(tmp_path: Path) -> None:
    ids = [f"t{i}" for i in range(10)]
    a = _base(tmp_path, ids, _vectors(10), "a")
    b = _base(tmp_path, ids, _vectors(10), "b")
    c = _base(tmp_path, ids, _vectors(10, seed=2), "c")
    assert a.content_sha256 == b.content_sha256 != c.content_sha256
    with pytest.raises(ValueError, match="twice"):
        _base(tmp_path, ["x", "x"], _vectors(2), "d")
    with pytest.raises(ValueError, match="at least one"):
        _base(tmp_path, [], np.zeros((0, DIM), np.float32), "e")


@pytest.mark.parametrize("name", [META_FILENAME, VECTORS_FILENAME])
def test_reader_refuses_a_file_the_manifest_does_not_describe(tmp_path: Path, name: str) -> None:
    manifest = _base(tmp_path, ["a", "b", "c"], _vectors(3))
    path = tmp_path / "v1" / name
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    if name == META_FILENAME:
        with pytest.raises(BundleError, match="SHA-256"):
            BaseReader.open(tmp_path / "v1", manifest)
    else:
        from catalog.bundle import verify_files

        with pytest.raises(BundleError, match="SHA-256"):
            verify_files(tmp_path / "v1", manifest, [name])


def test_track_meta_comes_from_the_record_with_its_strongest_tags() -> None:
    record = TrackRecord(track_id="x1", source=Source.LOCAL, title="T", artists=["A", "B"],
                         tags={f"tag{i}": i / 10 for i in range(8)})
    meta = TrackMeta.from_record(record)
    assert meta.artists == ("A", "B") and list(meta.tags) == ["tag7", "tag6", "tag5", "tag4", "tag3"]
    assert TrackMeta.from_json(meta.to_json()) == meta
    with pytest.raises(BundleError):
        TrackMeta.from_json("[1, 2]")


def test_delta_round_trips_and_refuses_garbage(tmp_path: Path) -> None:
    delta = Delta("v1", 3, "m", DIM, "2026-12-01T00:00:00Z")
    v = _vectors(3)
    delta.upsert(TrackMeta("new"), v[0], was_indexed=False)
    delta.upsert(TrackMeta("moved"), v[1], was_indexed=True)
    delta.remove("gone", was_indexed=True)
    delta.upsert(TrackMeta("brief"), v[2], was_indexed=False)
    delta.remove("brief", was_indexed=True)  # added since the base and removed: no tombstone needed
    assert set(delta.entries) == {"new", "moved"} and delta.tombstones == {"gone"}
    assert delta.served_count(10) == 10 - 1 - 1 + 2
    path = tmp_path / "d.npz"
    delta.write(path)
    back = Delta.read(path)
    assert back.content_sha256() == delta.content_sha256() and back.key == delta_key("v1", 3)
    assert back.entries["moved"].shadows_base and not back.entries["new"].shadows_base
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(BundleError):
        Delta.read(path)


def test_rebase_keeps_only_what_changed_since_the_compacted_delta(tmp_path: Path) -> None:
    ids = [f"t{i}" for i in range(6)]
    v = _vectors(10)
    compacted = Delta("old", 1, "m", DIM)
    compacted.upsert(TrackMeta("a"), v[6], was_indexed=False)
    compacted.upsert(TrackMeta("b"), v[7], was_indexed=False)
    compacted.remove("t0", was_indexed=True)
    # the new base holds the old base minus t0, plus a and b
    manifest = _base(tmp_path, ids[1:] + ["a", "b"], np.concatenate([v[1:6], v[6:8]]), "new")
    newer = Delta("old", 2, "m", DIM)
    newer.entries = dict(compacted.entries)
    newer.tombstones = set(compacted.tombstones)
    newer.upsert(TrackMeta("c"), v[8], was_indexed=False)  # added since
    newer.remove("b", was_indexed=True)  # removed since: b had no shadow, so no tombstone in ``newer``
    newer.remove("t1", was_indexed=True)
    reader = BaseReader.open(tmp_path / "new", manifest)
    rebased = newer.rebased(reader, compacted)
    assert rebased.base_version == "new" and rebased.sequence == 1
    assert set(rebased.entries) == {"c"} and rebased.tombstones == {"b", "t1"}


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2, 3]", b'{"base_version": "v"}', b'"text"'])
def test_latest_that_is_not_a_pointer_is_a_bundle_error(body: bytes) -> None:
    with pytest.raises(BundleError):
        LatestPointer.from_json(body)


def test_latest_names_the_served_version_and_refuses_escaping_versions(tmp_path: Path) -> None:
    manifest = _base(tmp_path, ["a", "b"], _vectors(2))
    pointer = LatestPointer.for_base(manifest, "0" * 64, "2026-12-01T00:00:00Z")
    assert LatestPointer.from_json(pointer.to_json()) == pointer and pointer.version == "v1"
    raw = json.loads(pointer.to_json())
    raw["base_version"] = "../../etc"
    with pytest.raises(BundleError):
        LatestPointer.from_json(json.dumps(raw))
