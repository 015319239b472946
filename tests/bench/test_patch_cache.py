"""The bench's cached per-patch outputs give exactly the extractor's served vector, and are computed once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.model


def test_cached_patches_pool_to_the_extractors_vector_and_a_second_load_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.patch_cache import PatchRunner, load_all
    from demo.catalog import build
    from extractor.embed import Embedder, summarise_midlevel

    clip = sorted(build("small", None, progress=False).folder.glob("*.mp3"))[0]
    patches = load_all([clip], "msd", "hop187", root=tmp_path)[0]
    assert {k: v.shape for k, v in patches.items()} == {"penultimate": (10, 200), "taggram": (10, 50), "pooled": (10, 1506)}
    np.testing.assert_allclose(summarise_midlevel(patches["pooled"]), Embedder().embed_file(clip).vector, atol=1e-5)

    shifted = load_all([clip], "msd", "mid93", root=tmp_path)[0]
    assert shifted["penultimate"].shape == (9, 200)  # a 30 s clip has room for 9 patches 93 frames in
    assert len(list(tmp_path.glob("*.npz"))) == 2

    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(PatchRunner, "__init__", lambda self: calls.append(("init",)))
    again = load_all([clip], "msd", "hop187", root=tmp_path)[0]
    assert calls == []
    np.testing.assert_array_equal(again["penultimate"], patches["penultimate"])
