"""POST /recommendations/by-audio through the loopback gateway and ByAudioFunction's handler.

The embedder is swapped (``app.dependency_overrides``) for one that maps a clip
to a vector of the published index, so these tests pin the route's contract
(body handling, limits, status codes, result shape) without TensorFlow; the
real model is exercised in tests/e2e/test_by_audio_e2e.py.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import soundfile as sf
from api_testkit import MODEL, FakeClock, PublishedBundle, override

from api.audio_query import UploadLimits, sniff_format
from extractor.constants import SAMPLE_RATE_HZ

URL_PATH = "/recommendations/by-audio"
# The index vector the fake embedder answers with: the upload "sounds like" this track.
TARGET = 7


def tone_wav(seconds: float, amplitude: float = 0.3, rate: int = SAMPLE_RATE_HZ) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    sf.write(out, (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="FLOAT")
    return out.getvalue()


def tone_flac(seconds: float) -> bytes:
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    out = io.BytesIO()
    sf.write(out, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SAMPLE_RATE_HZ, format="FLAC")
    return out.getvalue()


@dataclass
class FakeEmbedding:
    vector: np.ndarray
    tags: dict[str, float]
    model: str = MODEL


UPLOAD_DESCRIPTORS = {"tempoBpm": 120.0, "mode": "major", "camelot": "8B", "loudnessLufs": -12.0}


@dataclass
class FakeDescriptors:
    def to_json(self) -> dict[str, Any]:
        return dict(UPLOAD_DESCRIPTORS)


@dataclass
class FakeAnalysis:
    embedding: FakeEmbedding
    descriptors: FakeDescriptors


@dataclass
class FakeEmbedder:
    """Stands in for the extractor's analysis: any clip "sounds like" ``vector``."""

    vector: np.ndarray
    model: str = MODEL
    seen_samples: list[int] = field(default_factory=list)

    def __call__(self, clip: Any) -> FakeAnalysis:
        self.seen_samples.append(int(clip.samples.size))
        assert clip.native.shape[0] == round(clip.samples.size * clip.native_rate_hz / SAMPLE_RATE_HZ)
        return FakeAnalysis(FakeEmbedding(self.vector, {"piano": 0.5}, self.model), FakeDescriptors())


@pytest.fixture
def by_audio(aws: None, tmp_path: Path) -> Iterator[Any]:
    from api import by_audio_handler, deps
    from api.index_cache import IndexCache

    clock = FakeClock()
    override(by_audio_handler.app, deps.index_cache, IndexCache(os.environ["INDEX_BUCKET"], directory=tmp_path / "idx", clock=clock))
    try:
        yield by_audio_handler
    finally:
        by_audio_handler.app.dependency_overrides.clear()


@pytest.fixture
def gateway(by_audio: Any) -> Iterator[str]:
    from infra.http_gateway import serve, shutdown

    server, thread = serve(by_audio.lambda_handler, function_name="ByAudioFunction")
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        shutdown(server, thread)


@pytest.fixture
def served(by_audio: Any, publish: Callable[..., PublishedBundle]) -> tuple[PublishedBundle, FakeEmbedder]:
    from api.routes import by_audio as route

    bundle = publish(n=40)
    embedder = FakeEmbedder(bundle.vectors[TARGET])
    override(by_audio.app, route.audio_analyser, embedder)
    return bundle, embedder


def post(url: str, body: bytes, content_type: str = "audio/wav", **params: Any) -> requests.Response:
    return requests.post(f"{url}{URL_PATH}", data=body, headers={"content-type": content_type}, params=params, timeout=30)


def test_the_upload_finds_the_track_it_embeds_closest_to_first(
    gateway: str, served: tuple[PublishedBundle, FakeEmbedder]
) -> None:
    bundle, embedder = served
    response = post(gateway, tone_wav(5.0), k=5)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["indexVersion"] == bundle.manifest.version and answer["model"] == MODEL
    assert answer["query"] == {"source": "upload", "format": "wav", "durationMs": 5000, "durationUsedMs": 5000,
                               "tags": {"piano": 0.5}, "descriptors": UPLOAD_DESCRIPTORS}
    results = answer["results"]
    assert [r["trackId"] for r in results][0] == bundle.track_ids[TARGET]
    assert results[0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert len(results) == 5 and results == sorted(results, key=lambda r: -r["similarity"])
    # Exact ground truth from the published vectors: the same five, in the same order.
    sims = bundle.vectors @ bundle.vectors[TARGET]
    assert [r["trackId"] for r in results] == [bundle.track_ids[i] for i in np.argsort(-sims)[:5]]
    assert embedder.seen_samples == [5 * SAMPLE_RATE_HZ]


def test_only_the_first_max_seconds_are_embedded(
    gateway: str, served: tuple[PublishedBundle, FakeEmbedder], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, embedder = served
    monkeypatch.setenv("BY_AUDIO_MAX_SECONDS", "4")
    answer = post(gateway, tone_flac(9.0), content_type="audio/flac").json()
    assert answer["query"]["durationMs"] == 9000 and answer["query"]["durationUsedMs"] == 4000
    assert answer["query"]["format"] == "flac"
    assert embedder.seen_samples == [4 * SAMPLE_RATE_HZ]


def test_octet_stream_is_sniffed_and_content_type_parameters_are_ignored(
    gateway: str, served: tuple[PublishedBundle, FakeEmbedder]
) -> None:
    assert post(gateway, tone_wav(4.0), content_type="application/octet-stream").status_code == 200
    assert post(gateway, tone_wav(4.0), content_type="Audio/WAV; codecs=1").status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", "audio/mpeg", 400, "empty_body"),
        (bytes(np.random.default_rng(3).integers(0, 256, 50_000, dtype=np.uint8)), "audio/mpeg", 415,
         "unsupported_media_type"),
        (b"ID3" + bytes(4000), "audio/mpeg", 415, "unsupported_media_type"),
        (b"hello, this is text", "text/plain", 415, "unsupported_media_type"),
        (None, "image/png", 415, "unsupported_media_type"),
        (tone_wav(1.0), "audio/wav", 422, "audio_not_embeddable"),
        (tone_wav(5.0, amplitude=0.0), "audio/wav", 422, "audio_not_embeddable"),
        (tone_wav(5.0, amplitude=1e30), "audio/wav", 422, "audio_not_embeddable"),
    ],
    ids=["empty", "random-bytes", "id3-then-garbage", "text", "declared-image", "one-second", "silent", "huge-amplitude"],
)
def test_bodies_that_cannot_be_embedded_get_a_json_error_naming_why(
    gateway: str, served: tuple[PublishedBundle, FakeEmbedder], body: bytes | None, content_type: str, status: int,
    code: str,
) -> None:
    _, embedder = served
    response = post(gateway, tone_wav(4.0) if body is None else body, content_type=content_type)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert "object at 0x" not in error["message"]
    assert embedder.seen_samples == []


def test_an_upload_over_the_limit_is_413_before_it_is_decoded(
    gateway: str, served: tuple[PublishedBundle, FakeEmbedder], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, embedder = served
    body = tone_wav(5.0)
    monkeypatch.setenv("BY_AUDIO_MAX_BYTES", str(len(body) - 1))
    response = post(gateway, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    monkeypatch.setenv("BY_AUDIO_MAX_BYTES", str(len(body)))
    assert post(gateway, body).status_code == 200
    assert embedder.seen_samples == [5 * SAMPLE_RATE_HZ]


def test_a_function_whose_model_is_not_the_index_model_answers_503(
    by_audio: Any, gateway: str, publish: Callable[..., PublishedBundle]
) -> None:
    from api.routes import by_audio as route

    bundle = publish(n=20)
    override(by_audio.app, route.audio_analyser, FakeEmbedder(bundle.vectors[0], model="musicnn-other-v9"))
    response = post(gateway, tone_wav(4.0))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_mismatch"


def test_no_index_yet_is_503(by_audio: Any, gateway: str) -> None:
    from api.routes import by_audio as route

    override(by_audio.app, route.audio_analyser, FakeEmbedder(np.ones(16, np.float32)))
    response = post(gateway, tone_wav(4.0))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "index_unavailable"


def test_descriptor_filters_apply_as_for_get_recommendations(
    gateway: str, served: tuple[PublishedBundle, FakeEmbedder]
) -> None:
    # The test bundle's tracks carry no descriptors: an active filter lets none of them through.
    assert len(post(gateway, tone_wav(4.0), k=5).json()["results"]) == 5
    for params in ({"minTempo": 100}, {"key": "compatible"}, {"mode": "minor"}):
        response = post(gateway, tone_wav(4.0), k=5, **params)
        assert response.status_code == 200, response.text
        assert response.json()["results"] == []
    bad = post(gateway, tone_wav(4.0), minTempo=130, maxTempo=120)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_filter"


def test_the_list_policy_of_get_recommendations_applies_to_the_upload(
    gateway: str, served: tuple[PublishedBundle, FakeEmbedder]
) -> None:
    bundle, _ = served
    order = [bundle.track_ids[i] for i in np.argsort(-(bundle.vectors @ bundle.vectors[TARGET]))]
    excluded = order[:2]
    response = post(gateway, tone_wav(4.0), k=3, exclude=",".join(excluded))
    assert response.status_code == 200, response.text
    assert [r["trackId"] for r in response.json()["results"]] == order[2:5]
    # The upload stands for no track, so a cap of one per artist starts from nobody: the test
    # bundle gives every track its own artist, and none is dropped.
    capped = post(gateway, tone_wav(4.0), k=3, maxPerArtist=1)
    assert [r["trackId"] for r in capped.json()["results"]] == order[:3]
    for params in ({"exclude": "not an id"}, {"minDurationMs": 2000, "maxDurationMs": 1000}):
        bad = post(gateway, tone_wav(4.0), **params)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request", bad.text
    # A duration filter cannot vouch for tracks of unknown length (the test bundle's have none).
    assert post(gateway, tone_wav(4.0), k=3, minDurationMs=1).json()["results"] == []


def test_k_is_validated_like_get_recommendations(gateway: str, served: tuple[PublishedBundle, FakeEmbedder]) -> None:
    for k in (0, 101):
        response = post(gateway, tone_wav(4.0), k=k)
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
    assert len(post(gateway, tone_wav(4.0), k=100).json()["results"]) == 40


def test_only_this_function_answers_by_audio_and_the_api_zip_never_imports_tensorflow() -> None:
    import subprocess
    import sys

    from infra.http_gateway import routes_for_function
    from infra.template import load_template

    template = load_template()
    assert [r.key for r in routes_for_function(template, "ByAudioFunction")] == [f"POST {URL_PATH}"]
    assert f"POST {URL_PATH}" not in {r.key for r in routes_for_function(template, "ApiFunction")}
    probe = (
        "import sys; import api.handler; "
        "bad = sorted(m for m in ('tensorflow', 'librosa', 'extractor.embed') if m in sys.modules); "
        "print(','.join(bad))"
    )
    env = {"INDEX_BUCKET": "b", "TRACKS_TABLE": "t", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"ID3\x04\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mp3"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"OggS\x00\x02", "ogg"),
        (b"fLaC\x00\x00", "flac"),
        (b"\xff\xe8\x00\x00", None),  # frame sync with the reserved MPEG version
        (b"\x89PNG\r\n\x1a\n", None),
        (b"RIFF\x24\x00\x00\x00AVI ", None),
    ],
)
def test_sniffing_reads_the_container_from_the_first_bytes(head: bytes, expected: str | None) -> None:
    assert sniff_format(head + bytes(16)) == expected


def test_default_limit_fits_lambdas_synchronous_payload_after_base64() -> None:
    assert UploadLimits().max_bytes * 4 / 3 < 6 * 1000 * 1000
