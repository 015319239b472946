"""``python -m extractor FILE...``: one JSON line per file, an error object for a bad one."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from extractor_synth import drum_groove, encode, string_pad

from catalog.descriptors import Descriptors
from catalog.model import MODEL_ID
from extractor.cli import main
from extractor.constants import EMBEDDING_DIM, TOP_TAGS

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]


def test_prints_one_json_line_per_file_and_an_error_object_for_a_bad_one(tmp_path: Path, capsys) -> None:
    good = tmp_path / "groove.mp3"
    good.write_bytes(encode(drum_groove(5.0, seed=1), "mp3"))
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio " * 100)
    missing = tmp_path / "missing.wav"

    status = main([str(good), str(bad), str(missing)])

    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert status == 1
    assert [line["file"] for line in lines] == [str(good), str(bad), str(missing)]
    assert lines[0]["model"] == MODEL_ID and len(lines[0]["embedding"]) == EMBEDDING_DIM
    assert abs(np.linalg.norm(lines[0]["embedding"]) - 1.0) < 1e-5
    assert len(lines[0]["tags"]) == TOP_TAGS
    # The descriptors under the names the API uses.
    assert set(lines[0]["descriptors"]) == {f.name for f in fields(Descriptors)}
    assert abs(lines[0]["descriptors"]["tempoBpm"] - 120.0) < 120.0 * 0.04
    assert lines[1]["error"]["type"] == "UndecodableAudioError" and "cannot decode" in lines[1]["error"]["message"]
    assert lines[2]["error"]["type"] == "FileNotFoundError"
    assert "[1/3]" in out.err and "[3/3]" in out.err


def test_python_dash_m_extractor_exits_zero_when_every_file_embeds(tmp_path: Path) -> None:
    clip = tmp_path / "pad.wav"
    clip.write_bytes(encode(string_pad(4.0, seed=2), "wav"))

    run = subprocess.run(
        [sys.executable, "-m", "extractor", "--quiet", str(clip)], cwd=REPO, capture_output=True, text=True, timeout=120
    )

    assert run.returncode == 0, run.stderr
    (line,) = run.stdout.splitlines()
    assert json.loads(line)["file"] == str(clip)
