"""Each zip function builds from its stage, as `sam build` runs it, and its handler imports from the artifact alone.

The artifacts are built for this interpreter's ABI (PIP_ABI= empty) so that a fresh
interpreter can import them; the Lambda ABI flags are the Makefile's default, and
what can be checked of them without downloading (the annoy sdist guard) is checked too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.template import STAGE_ROOT, functions, load_template
from infra.template_checks import locate_handlers

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
# Lambda's limit on a function's unzipped deployment package (layers included).
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
BUILD_TIMEOUT_S = 600

ZIP_FUNCTIONS = sorted(
    name for name, fn in functions(load_template(TEMPLATE)).items() if fn.get("Metadata", {}).get("BuildMethod") == "makefile"
)

# sys.path[0] is the artifact; -I -S leave only the standard library besides it (no site-packages, no PYTHONPATH).
_IMPORT = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
module = importlib.import_module(sys.argv[2])
print(json.dumps({"callable": callable(getattr(module, sys.argv[3], None)), "file": module.__file__,
                  "path": [p for p in sys.path if "site-packages" in p]}))
"""


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S, env=env)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every zip function built the way its Makefile target builds it, for this interpreter's ABI."""
    root = tmp_path_factory.mktemp("artifacts")

    def build(name: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        return name, make(f"build-{name}", f"ARTIFACTS_DIR={root / name}", "PIP_ABI=")

    with ThreadPoolExecutor(max_workers=len(ZIP_FUNCTIONS)) as pool:
        results = dict(pool.map(build, ZIP_FUNCTIONS))
    for name, result in results.items():
        assert result.returncode == 0, f"make build-{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return {name: root / name for name in ZIP_FUNCTIONS}


def test_every_zip_function_builds_from_its_stage_not_the_repository() -> None:
    assert ZIP_FUNCTIONS, "template.yaml has no makefile-built functions"
    for name, fn in functions(load_template(TEMPLATE)).items():
        if name in ZIP_FUNCTIONS:
            assert fn["Properties"]["CodeUri"] == f"{STAGE_ROOT}/{name}"


@pytest.mark.parametrize("function", ZIP_FUNCTIONS)
def test_the_stage_holds_only_the_handlers_packages_its_requirements_and_the_build(function: str) -> None:
    assert make(f"stage-{function}").returncode == 0
    stage = REPO_ROOT / STAGE_ROOT / function
    packages = set((stage / "packages.txt").read_text().split())
    entries = {p.name for p in stage.iterdir()}

    assert "catalog" in packages
    assert entries == packages | {"Makefile", "requirements", "requirements.txt", "function.txt", "packages.txt"} | (
        {"wheels"} if (stage / "wheels").exists() else set()
    )
    assert not list(stage.rglob("__pycache__"))


@pytest.mark.parametrize("function", ZIP_FUNCTIONS)
def test_the_handler_imports_from_its_artifact_alone_and_fits_lambdas_limit(
    artifacts: dict[str, Path], function: str
) -> None:
    handler = next(h for h in locate_handlers(TEMPLATE, REPO_ROOT)[0] if h.function == function)
    artifact = artifacts[function]
    # Lambda sets the template's variables before the import; values known only once deployed get placeholders.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update({k: v if isinstance(v, str) else f"deploy-time-value-of-{k}" for k, v in handler.environment.items()})
    env.update({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"})

    result = subprocess.run([sys.executable, "-I", "-S", "-c", _IMPORT, str(artifact), handler.module, handler.attr],
                            cwd=artifact, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-3000:]
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported["callable"] and Path(imported["file"]).is_relative_to(artifact) and imported["path"] == []
    size = sum(p.stat().st_size for p in artifact.rglob("*") if p.is_file() and not p.is_symlink())
    assert size < UNZIPPED_LIMIT_BYTES, f"{function} is {size / 2**20:.0f} MB unzipped"


def test_lambda_abi_build_refuses_sdist_only_annoy_without_its_prebuilt_wheel(tmp_path: Path) -> None:
    # With Lambda's ABI flags pip may only take binary wheels, and annoy has none on PyPI.
    function = "AnnoyServiceFunction"
    assert make(f"stage-{function}").returncode == 0
    stage = tmp_path / "stage"
    shutil.copytree(REPO_ROOT / STAGE_ROOT / function, stage, ignore=shutil.ignore_patterns("wheels"))
    assert "annoy==" in (stage / "requirements" / "annoy_service" / "requirements.txt").read_text()

    result = make("-C", str(stage), f"build-{function}", f"ARTIFACTS_DIR={tmp_path / 'out'}")

    assert result.returncode == 2
    assert "annoy ships only an sdist: run 'make lambda-wheels'" in result.stdout
    assert not (tmp_path / "out").exists()
