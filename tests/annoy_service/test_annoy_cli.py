"""``python -m annoy_service`` (make index): build and publish now, with a summary line."""

from __future__ import annotations

import pytest
from annoy_helpers import Stack

from annoy_service import service
from annoy_service.__main__ import main


@pytest.fixture(autouse=True)
def few_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    original = service.rebuild_and_publish.__kwdefaults__.copy()
    monkeypatch.setattr(service.rebuild_and_publish, "__kwdefaults__", {**original, "n_trees": 5})


def test_cli_publishes_then_reports_unchanged_then_force_publishes(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(15):
        stack.put_ready(f"t{i:02d}")
    assert main([]) == 0
    out, err = capsys.readouterr()
    first = stack.store.read_latest()
    assert out.strip().startswith(f"published index {first.version}: 15 tracks, dim 200")
    assert "reading ready embeddings" in err and "building 5 trees" in err

    assert main([]) == 0
    assert "already holds these 15 embeddings; nothing published" in capsys.readouterr().out
    assert stack.store.read_latest() == first

    assert main(["--force"]) == 0
    assert stack.store.read_latest().version > first.version


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
