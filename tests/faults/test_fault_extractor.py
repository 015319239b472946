"""Row "a float wav of finite but huge amplitude (1e30)" and row "random bytes named .mp3":
through the real extractor handler, the event pump and `make extract`'s drain, and
`python -m extractor`. Plus what the row says happens in the pipeline: a message that
dead-letters for any other reason marks its track failed with the last error."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from catalog.records import Source, Status, TrackRecord
from catalog.storage import AudioStore, TrackTable
from infra.cli import drain_extract_queue
from infra.stack import LocalStack
from infra.template import REPO_ROOT, load_template

RATE_HZ = 16_000
OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


def float_wav(amplitude: float, seconds: float = 4.0) -> bytes:
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    buffer = io.BytesIO()
    sf.write(buffer, (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE_HZ, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def crawl_one(stack: LocalStack, track_id: str, data: bytes, ext: str, title: str) -> None:
    """What the crawler does for one track: the pending item, then the preview (whose upload queues it)."""
    record = TrackRecord(track_id=track_id, source=Source.LOCAL, title=title)
    assert TrackTable(stack.resources.refs["TracksTable"]).put_pending(record)
    AudioStore(stack.resources.refs["AudioBucket"]).put_preview(record, ext, data, "audio/wav")


def max_receive_count() -> int:
    return int(load_template()["Resources"]["ExtractQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


@pytest.fixture
def embedder_calls(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Callable[[Exception | None], list[int]]:
    """Replace only the model in the real extractor handler: count its builds, optionally fail them."""

    def install(error: Exception | None) -> list[int]:
        handler = sys.modules.get("extractor.handler") or __import__("extractor.handler", fromlist=["x"])
        from extractor.pipeline import Extraction

        calls: list[int] = []

        def embedder() -> None:
            calls.append(1)
            raise error or AssertionError("audio that cannot embed must never build the model")

        work = Extraction(store=AudioStore(stack.resources.refs["AudioBucket"]),
                          table=TrackTable(stack.resources.refs["TracksTable"]), embedder=embedder)
        monkeypatch.setattr(handler, "extraction", lambda: work)
        return calls

    return install


def test_huge_amplitude_and_random_bytes_fail_with_a_reason_and_the_batch_goes_on(
        stack: LocalStack, embedder_calls: Callable[[Exception | None], list[int]]) -> None:
    calls = embedder_calls(None)
    tracks = {
        "local-0000000000000000huge": (float_wav(1e30), "wav", "Huge"),
        "local-00000000000000random": (os.urandom(40_000), "mp3", "Random"),
    }
    for track_id, (data, ext, title) in tracks.items():
        crawl_one(stack, track_id, data, ext, title)

    report = drain_extract_queue(stack)

    assert (report.retried, report.dead) == (0, 0)
    assert calls == []
    assert {t.track_id for t in report.failed} == set(tracks)
    text = report.format()
    for track_id in tracks:
        assert f"failed {track_id} (" in text
    table = TrackTable(stack.resources.refs["TracksTable"])
    huge, noise = (table.get(track_id, consistent=True) for track_id in tracks)
    assert huge.status is Status.FAILED and "OutOfRangeAudioError" in huge.error and "dBFS" in huge.error
    assert noise.status is Status.FAILED and "cannot decode" in noise.error
    assert not OBJECT_REPR.search(huge.error + noise.error)
    listed = stack.client("s3").list_objects_v2(Bucket=stack.resources.refs["AudioBucket"], Prefix="previews/")
    assert listed.get("KeyCount", 0) == 0, "failed audio is deleted"


def test_a_message_that_dead_letters_marks_its_track_failed_with_the_last_error(
        stack: LocalStack, embedder_calls: Callable[[Exception | None], list[int]]) -> None:
    calls = embedder_calls(MemoryError("the model did not fit in the function's memory"))
    track_id = "local-0000000000000000dead"
    crawl_one(stack, track_id, float_wav(0.5), "wav", "Dead letter")

    report = drain_extract_queue(stack)

    assert len(calls) == max_receive_count()
    assert report.dead == 1 and report.retried == max_receive_count()
    record = TrackTable(stack.resources.refs["TracksTable"]).get(track_id, consistent=True)
    assert record.status is Status.FAILED
    assert "gave up" in record.error and "MemoryError: the model did not fit" in record.error
    assert [(t.track_id, t.error) for t in report.failed] == [(track_id, record.error)]
    assert f"failed {track_id} (Dead letter): extraction gave up" in report.format()


def test_python_dash_m_extractor_prints_a_json_error_line_per_bad_file_and_goes_on(tmp_path: Path) -> None:
    files = {"huge.wav": float_wav(1e30), "random.mp3": os.urandom(40_000), "quiet.wav": float_wav(1e-5)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / name) for name in files]

    run = subprocess.run([sys.executable, "-m", "extractor", "--quiet", *paths], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})

    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["file"] for line in lines] == paths
    assert [line["error"]["type"] for line in lines] == ["OutOfRangeAudioError", "UndecodableAudioError", "SilentAudioError"]
    assert not any(OBJECT_REPR.search(line["error"]["message"]) for line in lines)


def test_an_embedding_that_is_not_finite_or_is_zero_is_a_permanent_audio_error() -> None:
    from extractor.audio import UndecodableAudioError, UnembeddableAudioError
    from extractor.constants import EMBEDDING_DIM, N_TAGS
    from extractor.embed import Embedder

    taggram = np.full((2, N_TAGS), 0.5, np.float32)
    for midlevel in (np.full((2, EMBEDDING_DIM), np.nan, np.float32), np.zeros((2, EMBEDDING_DIM), np.float32)):
        with pytest.raises(UnembeddableAudioError) as caught:
            object.__new__(Embedder)._summarise(taggram, midlevel)  # no model needed to refuse the vector
        assert isinstance(caught.value, UndecodableAudioError)
