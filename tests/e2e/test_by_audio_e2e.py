"""Query by audio through the whole local stack, with the real model.

Clips are crawled, embedded by the extractor, indexed by the stream-driven
annoy_service and served; then the same clips (and 10 s mp3 excerpts of them)
are uploaded to POST /recommendations/by-audio on the loopback gateway, which
sends that route to ByAudioFunction's handler as API Gateway would.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import soundfile as sf

from catalog.keys import local_track_id
from demo.excerpt import bitrate_kbps, mp3_excerpt
from infra.cli import drain_extract_queue
from infra.stack import running_stack

pytestmark = [pytest.mark.model, pytest.mark.stack]

N_CLIPS = 24
INDEX_WAIT_S = 120.0
EXCERPT_S = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """N_CLIPS files of the small demo catalogue in a folder of their own, by track id."""
    from demo.catalog import build

    catalogue = build("small", None, progress=False).folder
    names = sorted(c["file"] for c in json.loads((catalogue / "catalogue.json").read_text())["clips"])[:N_CLIPS]
    folder = tmp_path_factory.mktemp("by-audio-clips")
    for name in names:
        shutil.copy(catalogue / name, folder / name)
    return {local_track_id((folder / name).read_bytes()): folder / name for name in names}



@pytest.fixture(scope="module")
def api(clips: dict[str, Path]) -> Iterator[str]:
    from crawler.pipeline import cli_crawler, crawl_sources
    from infra.http_gateway import shutdown

    folder = next(iter(clips.values())).parent
    with running_stack() as stack:
        pump = stack.pump(only={"AnnoyServiceFunction"})
        pump.start()
        try:
            assert crawl_sources(cli_crawler(), [str(folder)]).to_dict()["new"] == len(clips)
            assert drain_extract_queue(stack).dead == 0
            stack.wait_for_index(len(clips), INDEX_WAIT_S)
            server, thread = stack.serve_api()
            try:
                yield f"http://127.0.0.1:{server.server_address[1]}"
            finally:
                shutdown(server, thread)
        finally:
            pump.stop()


def upload(api: str, body: bytes, content_type: str = "audio/mpeg", k: int = 10) -> requests.Response:
    return requests.post(
        f"{api}/recommendations/by-audio", params={"k": k}, data=body, headers={"content-type": content_type},
        timeout=120,
    )


def test_an_indexed_clip_uploaded_back_finds_itself_first(api: str, clips: dict[str, Path]) -> None:
    for track_id, path in clips.items():
        response = upload(api, path.read_bytes())
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        top = answer["results"][0]
        assert top["trackId"] == track_id, f"{path.name}: top result {top['trackId']}"
        assert top["similarity"] >= 0.99
        assert answer["query"]["durationUsedMs"] == pytest.approx(30_000, abs=50)


def test_a_10_s_mp3_excerpt_finds_its_track_in_the_top_10(api: str, clips: dict[str, Path]) -> None:
    rng = np.random.default_rng(2026)
    for track_id, path in clips.items():
        excerpt, offset = mp3_excerpt(path.read_bytes(), EXCERPT_S, rng)
        assert 120 <= bitrate_kbps(excerpt, EXCERPT_S) <= 136
        answer = upload(api, excerpt).json()
        found = [r["trackId"] for r in answer["results"]]
        assert len(found) == 10
        assert track_id in found, f"{path.name} from {offset:.1f} s not in the top 10"


def wav(samples: np.ndarray, rate: int = 22_050) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples.astype(np.float32), rate, format="WAV")
    return out.getvalue()


def test_bodies_that_cannot_be_embedded_get_clear_json_errors(api: str, clips: dict[str, Path]) -> None:
    clip = next(iter(clips.values())).read_bytes()
    rng = np.random.default_rng(5)
    one_second, _ = mp3_excerpt(clip, 1.0, rng)
    cases = {
        "empty": (b"", "audio/mpeg", 400),
        "random": (rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes(), "audio/mpeg", 415),
        "not audio": (b'{"hello": "world"}', "application/json", 415),
        # Over the 4 MiB limit, under the gateway's 10 MB payload limit: the function refuses it.
        "oversize": (clip * (int(4.5 * 2**20) // len(clip) + 1), "audio/mpeg", 413),
        "one second": (one_second, "audio/mpeg", 422),
        "silent": (wav(np.zeros(22_050 * 10)), "audio/wav", 422),
    }
    for name, (body, content_type, status) in cases.items():
        response = upload(api, body, content_type)
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        error = response.json()["error"]
        assert error["code"] and error["message"], name
        assert "object at 0x" not in error["message"], name


def test_the_cli_prints_the_titles_that_sound_like_a_file(api: str, clips: dict[str, Path]) -> None:
    track_id, path = next(iter(clips.items()))
    out = subprocess.run(
        [sys.executable, "-m", "api", "similar", str(path), "--k", "3", "--url", api, "--json"],
        capture_output=True, text=True, timeout=180, cwd=REPO_ROOT, check=True,
    )
    answer = json.loads(out.stdout)
    assert [r["trackId"] for r in answer["results"]][0] == track_id and len(answer["results"]) == 3
    text = subprocess.run(
        [sys.executable, "-m", "api", "similar", str(path), "--k", "3", "--url", api],
        capture_output=True, text=True, timeout=180, cwd=REPO_ROOT, check=True,
    ).stdout.splitlines()
    assert text[0].startswith("Tracks that sound like the first 30 s of the file")
    assert len(text) == 4 and text[1].lstrip().startswith("1. ")
    missing = subprocess.run(
        [sys.executable, "-m", "api", "similar", str(path.with_name("nope.mp3")), "--url", api],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr
