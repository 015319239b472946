"""``python -m annoy_service`` (make index): heal, build on a fresh bucket, compact; --full rebuilds and reports drift."""

from __future__ import annotations

import pytest
from annoy_helpers import Stack

from annoy_service.__main__ import main


def test_cli_builds_then_reports_unchanged_then_full_rebuilds(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(15):
        stack.put_ready(f"t{i:02d}")
    assert main([]) == 0
    out, err = capsys.readouterr()
    first = stack.store.read_latest().pointer
    assert out.strip().startswith(f"rebuilt base {first.version} from the table: 15 tracks, dim 200")
    assert "reading ready embeddings" in err and "building 5 trees" in err

    assert main([]) == 0
    assert f"index {first.version} already serves this; nothing published" in capsys.readouterr().out
    assert stack.store.read_latest().pointer == first

    assert main(["--full"]) == 0
    out = capsys.readouterr().out
    assert "already serves this" in out and "drift: 0 missing, 0 stale, 0 changed" in out
    assert main(["--full", "--force"]) == 0
    assert stack.store.read_latest().pointer.version > first.version


def test_cli_with_nothing_to_index_exits_1(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.put_pending("waiting")
    assert main([]) == 1
    assert "no ready embeddings to index" in capsys.readouterr().out


def test_cli_without_settings_names_the_missing_variable(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INDEX_BUCKET")
    assert main([]) == 2
    assert "INDEX_BUCKET" in capsys.readouterr().err
