"""Reading template.yaml: the single description of the stack, for AWS and for the local stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
# Zip functions' CodeUri: `make stage-<Function>` copies their packages from the repository here.
STAGE_ROOT = "build/stage"


class TemplateError(ValueError):
    """template.yaml cannot be read."""


def load_template(path: str | Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain dicts, with short-form intrinsics (!Ref, !GetAtt, !Sub ...) in long form."""
    template, matches = decode(str(path))
    if matches or template is None:
        raise TemplateError(f"cannot parse {path}: " + "; ".join(str(m) for m in matches))
    return json.loads(json.dumps(template))


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Serverless functions with Globals merged in (Environment variables, Runtime, Timeout ...)."""
    globals_ = template.get("Globals", {}).get("Function", {})
    merged: dict[str, dict[str, Any]] = {}
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = dict(globals_)
        props.update(resource.get("Properties", {}))
        env = dict(globals_.get("Environment", {}).get("Variables", {}))
        env.update(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
        props["Environment"] = {"Variables": env}
        if props.get("PackageType") == "Image":
            props.pop("Runtime", None)
        merged[name] = {**resource, "Properties": props}
    return merged


def code_root(function: dict[str, Any], repo_root: str | Path) -> Path | None:
    """Where a zip function's handler modules live in the repository: CodeUri, or for a
    staged function (CodeUri under STAGE_ROOT) the repository root its stage is copied from."""
    code_uri = function.get("Properties", {}).get("CodeUri")
    if not isinstance(code_uri, str) or "://" in code_uri:
        return None
    if Path(code_uri).parts[:2] == Path(STAGE_ROOT).parts:
        return Path(repo_root)
    return Path(repo_root) / code_uri
