from __future__ import annotations

from pathlib import Path

import pytest

from demo.catalog import BuildResult, build
from demo.spec import BACH, PIANO, STRINGS, VIBRAPHONE, Clip, Excerpt

# A chorale parses in a fraction of a second, and at about 20 s it also
# exercises the repeat that fills a 30 s clip.
CHORALE = Excerpt("Chorale BWV 66.6", "bach/bwv66.6")


@pytest.fixture(scope="session")
def three_clips() -> list[Clip]:
    """One excerpt on three instruments, so only the instrument differs between them."""
    return [Clip(BACH, CHORALE, PIANO), Clip(BACH, CHORALE, STRINGS), Clip(BACH, CHORALE, VIBRAPHONE)]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, three_clips: list[Clip]) -> BuildResult:
    """A catalogue of the three clips, built once for the tests that only read it."""
    folder: Path = tmp_path_factory.mktemp("demo-catalogue")
    return build("test", folder, clips=three_clips, progress=False)
