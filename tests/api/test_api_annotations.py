"""Modules that declare Powertools dependencies keep their annotations evaluated at import.

Powertools 3.37 calls ``build_dependency_tree(route.func)`` on every request, and that calls
``typing.get_type_hints``: string annotations (what ``from __future__ import annotations``
makes of every annotation) are compiled and evaluated each time, which measured 40 % of a
warm GET /recommendations. See api/deps.py.
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import api.handler  # noqa: F401 - registers every route
from api.handler import app

API_DIR = Path(__file__).resolve().parents[2] / "api"


def _declares_depends(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Depends" for node in ast.walk(tree))


def _postpones_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom) and node.module == "__future__" and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )


def test_no_module_that_declares_depends_postpones_its_annotations() -> None:
    offenders = []
    for path in sorted(API_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if _declares_depends(tree) and _postpones_annotations(tree):
            offenders.append(str(path.relative_to(API_DIR.parent)))
    assert not offenders, f"these modules declare Depends() and postpone annotations: {offenders}"


def test_every_route_and_dependency_has_annotations_that_are_objects_not_strings() -> None:
    from aws_lambda_powertools.event_handler.depends import _get_depends_from_annotation

    seen: set[object] = set()
    pending = [route.func for route in app._static_routes + app._dynamic_routes]
    assert pending, "no routes registered"
    while pending:
        func = pending.pop()
        if func in seen:
            continue
        seen.add(func)
        strings = {name: value for name, value in func.__annotations__.items() if isinstance(value, str)}
        assert not strings, f"{func.__module__}.{func.__qualname__} has string annotations {sorted(strings)}"
        for annotation in typing.get_type_hints(func, include_extras=True).values():
            depends = _get_depends_from_annotation(annotation)
            if depends is not None:
                pending.append(depends.dependency)
    assert len(seen) > len(app._static_routes + app._dynamic_routes)  # dependencies were followed too
