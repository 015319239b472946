"""Listeners who linked their Spotify account: one SecureString SSM parameter each, under LISTENERS_PATH.

``{LISTENERS_PATH}/{userId}`` holds JSON: ``refresh_token`` (from ``make listener-login
USER=ana``, the same Authorization Code flow as ``make spotify-login`` with the
user-read-recently-played scope), the ``token_info`` spotipy caches, and ``after_ms``, the
recently-played cursor: the newest ``played_at`` already imported. The Spotify app's
client id and secret stay in the app's secret (SPOTIFY_SECRET_ID); a listener's parameter
holds only what is theirs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from catalog.listens import InvalidUserIdError, validate_user_id
from catalog.storage import client
from crawler.spotify import CredentialStore, json_object

# What a listener's parameter may hold (the app's client id and secret are never written there).
LISTENER_KEYS = ("refresh_token", "token_info", "after_ms", "redirect_uri")


def parameter_name(path: str, user_id: str) -> str:
    return f"{path.rstrip('/')}/{validate_user_id(user_id)}"


class ListenerStore:
    """A CredentialStore over the app's credentials and one listener's parameter (what spotipy saves goes to the latter)."""

    def __init__(self, name: str, app: CredentialStore, raw: str | None = None, ssm: Any | None = None) -> None:
        """``raw``: the parameter's value when already read (GetParametersByPath), else it is read on first use."""
        self.name = name
        self.app = app
        self.ssm = ssm or client("ssm")
        self._raw = raw
        self._values: dict[str, Any] | None = None

    @property
    def user_id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def own(self) -> dict[str, Any]:
        if self._values is None:
            if self._raw is None:
                try:
                    self._raw = self.ssm.get_parameter(Name=self.name, WithDecryption=True)["Parameter"]["Value"]
                except self.ssm.exceptions.ParameterNotFound:
                    self._raw = "{}"
            self._values = json_object(self._raw, f"SSM parameter {self.name}")
        return dict(self._values)

    def load(self) -> dict[str, Any]:
        app = self.app.load()
        return {"client_id": app.get("client_id", ""), "client_secret": app.get("client_secret", ""), **self.own()}

    def save(self, values: dict[str, Any]) -> None:
        own = {k: values[k] for k in LISTENER_KEYS if k in values}
        self.ssm.put_parameter(Name=self.name, Value=json.dumps(own, separators=(",", ":")), Type="SecureString", Overwrite=True)
        self._values = own

    def set_cursor(self, after_ms: int) -> None:
        self.save({**self.own(), "after_ms": after_ms})

    @property
    def cursor(self) -> int | None:
        value = self.own().get("after_ms")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def __str__(self) -> str:
        return f"SSM parameter {self.name}"


def linked_listeners(path: str, app: CredentialStore, ssm: Any | None = None) -> Iterator[ListenerStore]:
    """Every listener parameter directly under ``path`` whose name is a user id (GetParametersByPath, paged)."""
    ssm = ssm or client("ssm")
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path.rstrip("/"), WithDecryption=True, Recursive=False):
        for parameter in page.get("Parameters", []):
            try:
                validate_user_id(parameter["Name"].rsplit("/", 1)[-1])
            except InvalidUserIdError:
                continue
            yield ListenerStore(parameter["Name"], app, parameter["Value"], ssm)
