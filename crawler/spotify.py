"""Spotify through spotipy, as the Web API behaves in 2026.

- preview_url is null for most apps (since November 2024): previews come from elsewhere
  (:mod:`crawler.previews`); Spotify supplies the track list and metadata.
- Development-mode apps get a playlist's items only when the user who authorised the app
  owns or collaborates on it (since February 2026); other playlists come back as metadata
  only. That is an error naming the cause, never an empty success.
- Entries carry the track under ``item`` (``track`` is the deprecated name, still read).
- spotipy's own retry can sleep for hours on a long Retry-After: it is switched off and
  429 / 401 / 5xx are handled here. A 429 whose body says ``QUOTA_EXCEEDED`` (the per-account
  quota, since July 2026) stops the run at once: waiting does not bring the quota back.
- The user's own library (``spotify:me:tracks|playlists|top|recent``) needs a login with the
  scopes in SCOPE; every list is paged 50 at a time (the maximum of each endpoint), following
  ``next``; recently played holds the last 50 plays only (Spotify keeps no more).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
import spotipy
from spotipy.cache_handler import CacheHandler, MemoryCacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError

from catalog.settings import NotConfiguredError, env_str
from catalog.storage import client, error_code
from crawler.download import pooled_session
from crawler.settings import CrawlerSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_CREDENTIALS_DEFAULT = REPO_ROOT / ".local" / "spotify.json"
REDIRECT_URI_DEFAULT = "http://127.0.0.1:8888/callback"
# What each kind of reference needs from the user's login (make spotify-login asks for all).
LIBRARY_SCOPES = {
    "tracks": "user-library-read",
    "playlists": "playlist-read-private playlist-read-collaborative",
    "top": "user-top-read",
    "recent": "user-read-recently-played",
}
SCOPE = "playlist-read-private playlist-read-collaborative user-library-read user-top-read user-read-recently-played"
PAGE_LIMIT = 50  # the maximum of the playlist items, saved tracks, playlists, top and recently played endpoints
QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
_TRACK_FIELDS = "type,id,name,is_playable,is_local,preview_url,duration_ms,external_ids(isrc),album(name),artists(name)"
PLAYLIST_FIELDS = "id,name,owner(id,display_name),collaborative,items(total),tracks(total)"
ITEMS_FIELDS = f"next,total,items(is_local,item({_TRACK_FIELDS}),track({_TRACK_FIELDS}))"

_ID = r"[0-9A-Za-z]{22}"
_PLAYLIST_REF = re.compile(
    rf"^(?:(?P<bare>{_ID})"
    rf"|spotify:(?:user:[^:]+:)?playlist:(?P<uri>{_ID})"
    rf"|(?:https?://)?open\.spotify\.com/(?:intl-[a-z]{{2}}(?:-[a-z]{{2}})?/)?(?:user/[^/]+/)?playlist/(?P<url>{_ID})/?(?:[?#].*)?)$",
    re.IGNORECASE,
)
_TRACK_ID = re.compile(rf"^{_ID}$")
_LIBRARY_REF = re.compile(r"^spotify:me:(?P<kind>tracks|playlists|top|recent)$", re.IGNORECASE)

T = TypeVar("T")


class SpotifyError(RuntimeError):
    """Spotify could not give what was asked; the message says why and what to do."""


class SpotifyConfigError(SpotifyError, NotConfiguredError):
    """Credentials are missing or unusable: the operator's to fix, not Spotify's."""

    def __init__(self, message: str, setting: str = "the Spotify credentials (SPOTIFY_SECRET_ID; locally make spotify-login)") -> None:
        super().__init__(message, setting)


class PlaylistUnavailableError(SpotifyError):
    """This playlist cannot be read (not found, forbidden, metadata only); other playlists may be."""


class RateLimitedError(SpotifyError):
    """Spotify asked to wait longer than RATE_LIMIT_MAX_WAIT_S: the run stops here."""


class QuotaExceededError(RateLimitedError):
    """Spotify's 429 said QUOTA_EXCEEDED: the run stops at once, without waiting."""


def parse_playlist_ref(ref: str) -> str:
    """The playlist id in a bare id, a spotify:playlist: URI or an open.spotify.com URL."""
    match = _PLAYLIST_REF.match(ref.strip())
    if not match:
        raise ValueError(
            f"{ref!r} is not a Spotify playlist: expected a 22-character id, spotify:playlist:ID "
            "or https://open.spotify.com/playlist/ID"
        )
    return next(v for v in match.groupdict().values() if v)


def is_playlist_ref(ref: str) -> bool:
    return _PLAYLIST_REF.match(ref.strip()) is not None


def parse_library_ref(ref: str) -> str:
    """``tracks``, ``playlists``, ``top`` or ``recent`` of a spotify:me: reference."""
    match = _LIBRARY_REF.match(ref.strip())
    if not match:
        raise ValueError(f"{ref!r} is not one of spotify:me:tracks, spotify:me:playlists, spotify:me:top, spotify:me:recent")
    return match.group("kind").lower()


def is_library_ref(ref: str) -> bool:
    return _LIBRARY_REF.match(ref.strip()) is not None


def is_spotify_track_id(value: str) -> bool:
    return _TRACK_ID.match(value) is not None


# -- credentials -------------------------------------------------------------------------


class CredentialStore(Protocol):
    """Where {"client_id", "client_secret", "refresh_token"?, "token_info"?} lives."""

    # Where an operator sets the credentials, as an API error may name it.
    setting: str

    def load(self) -> dict[str, Any]: ...

    def save(self, values: dict[str, Any]) -> None: ...


def json_object(raw: str, label: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object, or a SpotifyConfigError naming ``label`` (a secret or a parameter)."""
    try:
        values = json.loads(raw)
    except json.JSONDecodeError:
        raise SpotifyConfigError(f"{label} is not JSON") from None
    if not isinstance(values, dict):
        raise SpotifyConfigError(f"{label} must be a JSON object")
    return values


class SecretsManagerStore:
    setting = "client_id and client_secret in the Spotify secret (SPOTIFY_SECRET_ID)"

    def __init__(self, secret_id: str, secretsmanager: Any | None = None) -> None:
        self.secret_id = secret_id
        self.sm = secretsmanager or client("secretsmanager")

    def load(self) -> dict[str, Any]:
        try:
            raw = self.sm.get_secret_value(SecretId=self.secret_id)["SecretString"]
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise SpotifyConfigError(f"Spotify secret {self.secret_id} does not exist",
                                                setting="the Spotify secret (SPOTIFY_SECRET_ID)") from None
            raise
        return json_object(raw, f"Spotify secret {self.secret_id}")

    def save(self, values: dict[str, Any]) -> None:
        self.sm.put_secret_value(SecretId=self.secret_id, SecretString=json.dumps(values))

    def __str__(self) -> str:
        return f"Secrets Manager secret {self.secret_id}"


class LocalFileStore:
    """.local/spotify.json (git-ignored); SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET override the file."""

    setting = "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.path.exists():
            try:
                values = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise SpotifyConfigError(f"{self.path} is not JSON; delete it and run make spotify-login") from None
        for key, env in (("client_id", "SPOTIFY_CLIENT_ID"), ("client_secret", "SPOTIFY_CLIENT_SECRET")):
            if os.environ.get(env, "").strip():
                values[key] = os.environ[env].strip()
        return values

    def save(self, values: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(values, indent=2), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.path)

    def __str__(self) -> str:
        return str(self.path)


def credential_store(secret_id: str | None) -> CredentialStore:
    """Secrets Manager when a secret id is given (AWS, or the local stack), else .local/spotify.json."""
    if secret_id:
        return SecretsManagerStore(secret_id)
    return LocalFileStore(env_str("SPOTIFY_LOCAL_CREDENTIALS", str(LOCAL_CREDENTIALS_DEFAULT)))


class StoreCacheHandler(CacheHandler):
    """spotipy's token cache kept in a CredentialStore (Secrets Manager in AWS).

    A refresh token set by hand (``put-secret-value`` with a new ``refresh_token``) wins over
    an older cached token: the cached one is then ignored and the new one refreshed.
    """

    def __init__(self, store: CredentialStore) -> None:
        self.store = store
        self._token_info: dict[str, Any] | None = None

    def get_cached_token(self) -> dict[str, Any] | None:
        if self._token_info is not None:
            return self._token_info
        values = self.store.load()
        refresh_token = values.get("refresh_token")
        token_info = values.get("token_info")
        if isinstance(token_info, dict) and token_info.get("refresh_token") == refresh_token:
            self._token_info = token_info
        elif refresh_token:
            # expires_at 0: spotipy refreshes before first use.
            self._token_info = {"access_token": "", "token_type": "Bearer", "expires_at": 0, "scope": SCOPE, "refresh_token": refresh_token}
        return self._token_info

    def save_token_to_cache(self, token_info: dict[str, Any]) -> None:
        values = self.store.load()
        values["token_info"] = token_info
        if token_info.get("refresh_token"):
            values["refresh_token"] = token_info["refresh_token"]
        self.store.save(values)
        self._token_info = token_info


class UserAuth(spotipy.SpotifyOAuth):
    """Authorization Code flow against SPOTIFY_ACCOUNTS_URL."""

    def __init__(self, accounts_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.OAUTH_AUTHORIZE_URL = accounts_url + "authorize"
        self.OAUTH_TOKEN_URL = accounts_url + "api/token"


class AppAuth(spotipy.SpotifyClientCredentials):
    """Client Credentials flow against SPOTIFY_ACCOUNTS_URL."""

    def __init__(self, accounts_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.OAUTH_TOKEN_URL = accounts_url + "api/token"


def _app_credentials(values: dict[str, Any], store: CredentialStore) -> tuple[str, str]:
    client_id, client_secret = values.get("client_id", ""), values.get("client_secret", "")
    if not client_id or not client_secret:
        raise SpotifyConfigError(
            f"no Spotify client_id / client_secret in {store}: create an app at "
            "https://developer.spotify.com/dashboard and store them there "
            "(locally: SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET)",
            setting=store.setting,
        )
    return client_id, client_secret


def granted_scope(values: dict[str, Any]) -> str:
    """The scopes the stored login granted (an older login may lack the library's)."""
    token_info = values.get("token_info")
    if isinstance(token_info, dict) and token_info.get("refresh_token") == values.get("refresh_token") and token_info.get("scope"):
        return str(token_info["scope"])
    return SCOPE


def _user_auth(settings: CrawlerSettings, store: CredentialStore, values: dict[str, Any], state: str | None = None, scope: str = SCOPE) -> UserAuth:
    client_id, client_secret = _app_credentials(values, store)
    return UserAuth(
        settings.spotify_accounts_url,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=values.get("redirect_uri") or env_str("SPOTIFY_REDIRECT_URI", REDIRECT_URI_DEFAULT),
        # spotipy drops a cached token whose scopes do not cover this one and would then ask
        # for a new login interactively: a crawl asks for what was granted, the login for SCOPE.
        scope=scope,
        state=state,
        open_browser=False,
        cache_handler=StoreCacheHandler(store),
        requests_timeout=settings.timeout,
    )


def auth_manager(settings: CrawlerSettings, store: CredentialStore) -> UserAuth | AppAuth:
    """The user's authorisation when a refresh token is stored, else client credentials
    (enough for track lookups and for playlists of extended-quota apps)."""
    values = store.load()
    if values.get("refresh_token"):
        return _user_auth(settings, store, values, scope=granted_scope(values))
    return app_auth(settings, store, values)


def app_auth(settings: CrawlerSettings, store: CredentialStore, values: dict[str, Any] | None = None) -> AppAuth:
    """Client credentials only: the token lives in memory, so ``store`` is read and never written."""
    client_id, client_secret = _app_credentials(store.load() if values is None else values, store)
    return AppAuth(
        settings.spotify_accounts_url,
        client_id=client_id,
        client_secret=client_secret,
        cache_handler=MemoryCacheHandler(),
        requests_timeout=settings.timeout,
    )


def login(settings: CrawlerSettings, store: CredentialStore, read_line: Callable[[str], str] = input, write: Callable[[str], None] = print) -> None:
    """One-time Authorization Code flow without a browser on this machine: print the URL,
    take the URL the browser was redirected to, store the refresh token in ``store``."""
    values = store.load()
    state = secrets.token_urlsafe(16)
    auth = _user_auth(settings, store, values, state=state)
    write("1. Open this URL in a browser and allow access:\n\n   " + auth.get_authorize_url() + "\n")
    write(f"2. The browser then goes to {auth.redirect_uri}?code=… (the page may fail to load: that is fine).")
    pasted = read_line("3. Paste that whole address here: ").strip()
    try:
        returned_state, code = auth.parse_auth_response_url(pasted)
    except SpotifyOauthError as exc:
        raise SpotifyConfigError(f"Spotify refused the authorisation: {exc}") from None
    if not code:
        raise SpotifyConfigError("the pasted address has no ?code=…; paste the full address the browser was sent to")
    if returned_state != state:
        raise SpotifyConfigError("the pasted address belongs to another login attempt (state mismatch); start again")
    try:
        auth.get_access_token(code, as_dict=False, check_cache=False)
    except SpotifyOauthError as exc:
        raise SpotifyConfigError(f"Spotify refused the authorisation code: {exc}") from None
    write(f"Refresh token stored in {store}.")


# -- the catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class SpotifyTrack:
    id: str
    title: str
    artists: tuple[str, ...]
    album: str = ""
    isrc: str = ""
    duration_ms: int | None = None
    preview_url: str = ""


@dataclass
class PlaylistListing:
    playlist_id: str
    name: str
    tracks: list[SpotifyTrack]
    skipped: Counter[str] = field(default_factory=Counter)


def track_from_json(obj: dict[str, Any]) -> SpotifyTrack:
    return SpotifyTrack(
        id=str(obj["id"]),
        title=str(obj.get("name") or ""),
        artists=tuple(str(a.get("name", "")) for a in obj.get("artists") or [] if a.get("name")),
        album=str((obj.get("album") or {}).get("name") or ""),
        isrc=str((obj.get("external_ids") or {}).get("isrc") or ""),
        duration_ms=obj.get("duration_ms"),
        preview_url=str(obj.get("preview_url") or ""),
    )


def parse_entry(entry: dict[str, Any]) -> SpotifyTrack | str:
    """A playlist entry's track, or the reason it is skipped."""
    if entry.get("is_local"):
        return "local_file"
    obj = entry.get("item") or entry.get("track")
    if not obj:
        return "unavailable"
    if obj.get("type", "track") != "track":
        return str(obj.get("type") or "not_a_track")
    if obj.get("is_local"):
        return "local_file"
    if not obj.get("id") or obj.get("is_playable") is False:
        return "unavailable"
    return track_from_json(obj)


def retry_after_s(headers: Any) -> float:
    raw = str((headers or {}).get("Retry-After", "")).strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 1.0


@dataclass(frozen=True)
class RecentPlay:
    played_at_ms: int  # Spotify's played_at, ms since the epoch (in practice the end of the play, not always)
    track: SpotifyTrack


def _played_at_ms(value: object) -> int:
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise SpotifyError(f"Spotify sent a recently-played item with played_at {value!r}") from None


class SpotifyCatalog:
    """Tracks and playlists, with our own handling of 429, 401 and 5xx."""

    def __init__(self, settings: CrawlerSettings, auth: UserAuth | AppAuth, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.auth = auth
        self.sleep = sleep
        self.sp = spotipy.Spotify(auth_manager=auth, requests_session=pooled_session(2), requests_timeout=settings.timeout)
        self.sp.prefix = settings.spotify_api_url

    @property
    def as_user(self) -> bool:
        return isinstance(self.auth, UserAuth)

    def _renew_token(self) -> None:
        try:
            if isinstance(self.auth, UserAuth):
                cached = self.auth.cache_handler.get_cached_token() or {}
                self.auth.refresh_access_token(cached.get("refresh_token"))
            else:
                self.auth.get_access_token(as_dict=False, check_cache=False)
        except SpotifyOauthError as exc:
            raise SpotifyConfigError(f"Spotify refused to renew the access token ({exc}); run make spotify-login again") from None

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with 429 honoured up to the cap, one token renewal on 401,
        and backoff on 5xx and network errors."""
        renewed = False
        failures = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except SpotifyOauthError as exc:
                raise SpotifyConfigError(f"Spotify refused the credentials ({exc}); run make spotify-login again") from None
            except SpotifyException as exc:
                status = exc.http_status
                if status == 429 and exc.reason == QUOTA_EXCEEDED:
                    raise QuotaExceededError(
                        "Spotify answered 429 QUOTA_EXCEEDED: this developer account's API quota is used up "
                        "(counted per account since July 2026); stopping this run at once, crawl again when it resets"
                    ) from None
                if status == 429:
                    wait_s = retry_after_s(exc.headers)
                    if wait_s > self.settings.rate_limit_max_wait_s or failures >= self.settings.max_retries:
                        raise RateLimitedError(
                            f"Spotify rate limit: asked to wait {wait_s:.0f} s (the cap is RATE_LIMIT_MAX_WAIT_S="
                            f"{self.settings.rate_limit_max_wait_s:.0f} s); stopping this run, crawl again later"
                        ) from None
                    failures += 1
                    self.sleep(wait_s)
                    continue
                if status == 401 and not renewed:
                    renewed = True
                    self._renew_token()
                    continue
                if status >= 500 and failures < self.settings.max_retries:
                    self.sleep(self.settings.backoff_s * 2**failures)
                    failures += 1
                    continue
                raise
            except (requests.ConnectionError, requests.Timeout) as exc:
                if failures >= self.settings.max_retries:
                    raise SpotifyError(f"Spotify unreachable: {exc}") from None
                self.sleep(self.settings.backoff_s * 2**failures)
                failures += 1

    def track(self, track_id: str) -> SpotifyTrack | None:
        """The track, or None when Spotify does not know it."""
        try:
            obj = self.call(self.sp.track, track_id)
        except SpotifyException as exc:
            if exc.http_status in (400, 404):
                return None
            raise SpotifyError(f"Spotify answered HTTP {exc.http_status} for track {track_id}: {exc.msg}") from None
        return track_from_json(obj) if obj and obj.get("id") else None

    def _metadata_only(self, playlist_id: str, name: str) -> PlaylistUnavailableError:
        who = (
            "the Spotify user who ran make spotify-login"
            if self.as_user
            else "a logged-in user, but no refresh token is stored (run make spotify-login)"
        )
        return PlaylistUnavailableError(
            f"playlist {playlist_id} ({name!r}): Spotify returned its metadata but no items. Since February 2026 "
            f"development-mode apps get items only for playlists owned or collaborated on by {who}. "
            "Crawl a playlist that user owns, add them as a collaborator, or copy the tracks into one."
        )

    def _checked_next(self, page: dict[str, Any]) -> dict[str, Any] | None:
        next_url = page.get("next")
        if not next_url:
            return None
        # The bearer token goes only to the configured API.
        if not next_url.startswith(self.settings.spotify_api_url) or urlsplit(next_url).netloc != urlsplit(self.settings.spotify_api_url).netloc:
            raise SpotifyError(f"Spotify's next page {next_url!r} is outside {self.settings.spotify_api_url}")
        return self.call(self.sp.next, page)

    def playlist(self, ref: str) -> PlaylistListing:
        playlist_id = parse_playlist_ref(ref)
        try:
            meta = self.call(self.sp.playlist, playlist_id, fields=PLAYLIST_FIELDS)
        except SpotifyException as exc:
            raise self._playlist_error(playlist_id, exc) from None
        name = str(meta.get("name") or "")
        summary = meta.get("items") if isinstance(meta.get("items"), dict) else meta.get("tracks")
        if not isinstance(summary, dict):
            raise self._metadata_only(playlist_id, name)
        listing = PlaylistListing(playlist_id=playlist_id, name=name, tracks=[])
        seen_entries = 0
        try:
            page: dict[str, Any] | None = self.call(
                self.sp.playlist_items, playlist_id, fields=ITEMS_FIELDS, limit=PAGE_LIMIT, additional_types=("track", "episode")
            )
            while page:
                for entry in page.get("items") or []:
                    seen_entries += 1
                    parsed = parse_entry(entry)
                    if isinstance(parsed, str):
                        listing.skipped[parsed] += 1
                    else:
                        listing.tracks.append(parsed)
                page = self._checked_next(page)
        except SpotifyException as exc:
            if exc.http_status == 403:
                raise self._metadata_only(playlist_id, name) from None
            raise self._playlist_error(playlist_id, exc) from None
        if seen_entries == 0 and int(summary.get("total") or 0) > 0:
            raise self._metadata_only(playlist_id, name)
        return listing

    # -- the user's library ---------------------------------------------------------------

    def _require_login(self, kind: str) -> None:
        if not isinstance(self.auth, UserAuth):
            raise SpotifyConfigError(f"spotify:me:{kind} is a logged-in user's library: run make spotify-login first")
        missing = set(LIBRARY_SCOPES[kind].split()) - set((self.auth.scope or "").split())
        if missing:
            raise SpotifyConfigError(
                f"spotify:me:{kind} needs the {' '.join(sorted(missing))} scope, which the stored login did not "
                "grant (it predates it): run make spotify-login again"
            )

    def _library_error(self, kind: str, exc: SpotifyException) -> SpotifyError:
        if exc.http_status in (401, 403):
            return SpotifyConfigError(
                f"spotify:me:{kind}: Spotify answered {exc.http_status} ({exc.msg.splitlines()[-1].strip()}); "
                f"the login needs the {LIBRARY_SCOPES[kind]} scope: run make spotify-login again"
            )
        return SpotifyError(f"spotify:me:{kind}: Spotify answered HTTP {exc.http_status}: {exc.msg}")

    def _all_items(self, kind: str, first: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        try:
            page: dict[str, Any] | None = self.call(first)
            while page:
                items += [i for i in page.get("items") or [] if isinstance(i, dict)]
                page = self._checked_next(page)
        except SpotifyException as exc:
            raise self._library_error(kind, exc) from None
        return items

    def library(self, kind: str) -> PlaylistListing:
        """spotify:me:tracks (saved), spotify:me:top (medium term) or spotify:me:recent (the last 50 plays)."""
        self._require_login(kind)
        first: Callable[[], dict[str, Any]] = {
            "tracks": lambda: self.sp.current_user_saved_tracks(limit=PAGE_LIMIT),
            "top": lambda: self.sp.current_user_top_tracks(limit=PAGE_LIMIT, time_range="medium_term"),
            "recent": lambda: self.sp.current_user_recently_played(limit=PAGE_LIMIT),
        }[kind]
        names = {"tracks": "Saved tracks", "top": "Top tracks", "recent": "Recently played"}
        listing = PlaylistListing(playlist_id=f"spotify:me:{kind}", name=names[kind], tracks=[])
        for item in self._all_items(kind, first):
            # Top tracks are track objects; saved and recently played wrap them in "track".
            parsed = parse_entry(item if kind != "top" else {"track": item})
            if isinstance(parsed, str):
                listing.skipped[parsed] += 1
            else:
                listing.tracks.append(parsed)
        return listing

    def recently_played(self, after_ms: int | None) -> list[RecentPlay]:
        """The logged-in user's plays after ``after_ms`` (all Spotify keeps, the last 50, when None), oldest first.

        The first page asks with the ``after`` cursor; the ``before`` pages Spotify links as
        ``next`` are followed while a page is full and wholly after the cursor, so nothing between
        the cursor and now is missed however the pages are cut, and no page is read for nothing.
        """
        self._require_login("recent")
        plays: dict[int, RecentPlay] = {}
        try:
            page: dict[str, Any] | None = self.call(self.sp.current_user_recently_played, limit=PAGE_LIMIT, after=after_ms)
            while page:
                items = [i for i in page.get("items") or [] if isinstance(i, dict)]
                fresh = 0
                for item in items:
                    played_at = _played_at_ms(item.get("played_at"))
                    if after_ms is None or played_at > after_ms:
                        fresh += 1
                        parsed = parse_entry(item)
                        if isinstance(parsed, SpotifyTrack):
                            plays[played_at] = RecentPlay(played_at, parsed)
                # An older page can hold new plays only when this one was full and all of it new.
                full = len(items) >= int(page.get("limit") or PAGE_LIMIT)
                page = self._checked_next(page) if full and fresh == len(items) else None
        except SpotifyException as exc:
            raise self._library_error("recent", exc) from None
        return [plays[t] for t in sorted(plays)]

    def own_playlists(self) -> tuple[list[tuple[str, str]], Counter[str]]:
        """(id, name) of every playlist the user owns or collaborates on (the only ones whose
        items a development-mode app may read), and how many others were left out."""
        self._require_login("playlists")
        try:
            me = self.call(self.sp.me)
        except SpotifyException as exc:
            raise self._library_error("playlists", exc) from None
        user_id = str((me or {}).get("id") or "")
        playlists: list[tuple[str, str]] = []
        skipped: Counter[str] = Counter()
        for item in self._all_items("playlists", lambda: self.sp.current_user_playlists(limit=PAGE_LIMIT)):
            if not item.get("id"):
                continue
            if str((item.get("owner") or {}).get("id") or "") == user_id or item.get("collaborative"):
                playlists.append((str(item["id"]), str(item.get("name") or "")))
            else:
                skipped["playlist_not_owned"] += 1
        return playlists, skipped

    @staticmethod
    def _playlist_error(playlist_id: str, exc: SpotifyException) -> SpotifyError:
        if exc.http_status == 404:
            return PlaylistUnavailableError(f"playlist {playlist_id} not found (Spotify answered 404); check the id")
        if exc.http_status == 403:
            return PlaylistUnavailableError(f"playlist {playlist_id}: Spotify answered 403 Forbidden ({exc.msg})")
        return SpotifyError(f"playlist {playlist_id}: Spotify answered HTTP {exc.http_status}: {exc.msg}")


def catalog_from_store(settings: CrawlerSettings, store: CredentialStore) -> SpotifyCatalog:
    return SpotifyCatalog(settings, auth_manager(settings, store))


def app_catalog_from_store(settings: CrawlerSettings, store: CredentialStore) -> SpotifyCatalog:
    """Track lookups with the app's credentials, never the user's login: for a caller whose role
    may read the secret but not write it (refreshing a user's token saves it back)."""
    return SpotifyCatalog(settings, app_auth(settings, store))

