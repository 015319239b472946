"""Settings read from the environment.

Handlers call :func:`require_env` for what the template must set (infra/template_checks.py
reads these calls to prove template.yaml sets every one of them) and
:func:`env_str` / :func:`env_int` / :func:`env_float` for tunables that have a default.
"""

from __future__ import annotations

import os


class NotConfiguredError(RuntimeError):
    """A setting the operator must provide is missing; ``setting`` names it (never a secret's value)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class MissingSettingError(NotConfiguredError):
    """A required environment variable is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"environment variable {name} is not set; it comes from template.yaml in AWS "
            f"and from the local stack (config/local.env) on this machine",
            setting=name,
        )
        self.name = name


def require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise MissingSettingError(name)
    return value


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from None


def env_list(name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Comma-separated list; empty entries dropped."""
    raw = os.environ.get(name, "")
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    return items or default
