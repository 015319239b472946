"""Loopback fakes that speak the protocols the crawler talks: Spotify accounts + Web API,
Deezer's public API, and a CDN serving (signed) mp3 previews. Each runs an http.server on
127.0.0.1 (free port) in a thread; ``latency_s`` delays every answer (used by bench/crawl.py).

Imported by tests/crawler (pytest puts this folder on sys.path) and by bench/crawl.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import numpy as np
import soundfile as sf

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret"
DISALLOWED_REDIRECT = "https://cdn.evil.example/stolen.mp3"
SCOPE_GRANTED = "playlist-read-private playlist-read-collaborative user-library-read user-top-read user-read-recently-played"
# The 429 body Spotify sends once a developer account's quota is used up (changelog, July 2026).
QUOTA_EXCEEDED_BODY = {"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}
PREVIEW_SAMPLE_RATE_HZ = 22050
_BASE62 = string.digits + string.ascii_letters


# Distinct tones the CDN serves (by name): every one stays encoded in mp3_bytes's cache, so serving
# a preview costs the fake no MP3 encoding (bench/crawl.py counts the fakes' CPU per track).
CDN_TONES = 200


@lru_cache(maxsize=CDN_TONES + 56)
def mp3_bytes(seed: int = 0, seconds: float = 1.0) -> bytes:
    """A short, valid MP3 (a sine whose pitch depends on ``seed``)."""
    t = np.arange(int(PREVIEW_SAMPLE_RATE_HZ * seconds)) / PREVIEW_SAMPLE_RATE_HZ
    tone = (0.3 * np.sin(2 * np.pi * (220.0 + 7.0 * (seed % 200)) * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, tone, PREVIEW_SAMPLE_RATE_HZ, format="MP3")
    return buf.getvalue()


def spotify_id(n: int, prefix: str = "") -> str:
    """A deterministic 22-character base62 id."""
    digits = []
    for _ in range(22 - len(prefix)):
        n, r = divmod(n, 62)
        digits.append(_BASE62[r])
    return prefix + "".join(reversed(digits))


def spotify_track(track_id: str, name: str, artists: list[str], isrc: str = "", preview_url: str | None = None,
                  album: str = "Album", duration_ms: int = 200_000) -> dict[str, Any]:
    return {
        "type": "track",
        "id": track_id,
        "uri": f"spotify:track:{track_id}",
        "name": name,
        "artists": [{"id": spotify_id(i + 1, "ar"), "name": a, "type": "artist"} for i, a in enumerate(artists)],
        "album": {"id": spotify_id(7, "al"), "name": album, "type": "album"},
        "duration_ms": duration_ms,
        "external_ids": {"isrc": isrc} if isrc else {},
        "preview_url": preview_url,
        "is_local": False,
    }


def playlist_entry(track: dict[str, Any] | None, *, legacy: bool = False, is_local: bool = False) -> dict[str, Any]:
    """A playlist items entry as sent since February 2026 (``item``, plus the deprecated ``track``);
    ``legacy`` sends only ``track``."""
    entry: dict[str, Any] = {"added_at": "2026-01-01T00:00:00Z", "is_local": is_local, "track": track}
    if not legacy:
        entry["item"] = track
    return entry


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: bool = True

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(obj).encode(), {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    path_pattern: str
    reply: Reply
    remaining: int


class LoopbackServer:
    """An HTTP/1.1 server on 127.0.0.1 with a free port, scripted faults and a request log."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.log: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
            # and the client's delayed ACK add ~40 ms to every keep-alive answer.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length) if length else b"",
                )
                reply = owner._dispatch(request)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.content_length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    else:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # Clients keep connections alive; closing must not wait for them.
            block_on_close = False
            request_queue_size = 128

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name=f"fake-{self.port}", daemon=True)
        self._thread.start()

    def fail(self, path_pattern: str, reply: Reply, times: int = 1) -> None:
        """The next ``times`` requests whose path matches ``path_pattern`` (a regex) get ``reply``."""
        with self._lock:
            self.faults.append(Fault(path_pattern, reply, times))

    def requests_to(self, pattern: str) -> list[Request]:
        with self._lock:
            return [r for r in self.log if re.search(pattern, r.path)]

    def _dispatch(self, request: Request) -> Reply:
        if self.latency_s:
            time.sleep(self.latency_s)
        with self._lock:
            self.log.append(request)
            for fault in self.faults:
                if fault.remaining > 0 and re.search(fault.path_pattern, request.path):
                    fault.remaining -= 1
                    return fault.reply
        return self.handle(request)

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _error(status: int, message: str) -> Reply:
    return Reply.json({"error": {"status": status, "message": message}}, status)


@dataclass
class FakePlaylist:
    name: str
    entries: list[dict[str, Any]]
    owner: str = "me"
    metadata_only: bool = False
    collaborative: bool = False


class FakeSpotify(LoopbackServer):
    """accounts.spotify.com (/authorize, /api/token) and api.spotify.com (/v1/...) on one port."""

    def __init__(self, latency_s: float = 0.0, token_lifetime_s: int = 3600) -> None:
        super().__init__(latency_s)
        self.token_lifetime_s = token_lifetime_s
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: set[str] = set()
        self.codes: dict[str, str] = {}
        self.playlists: dict[str, FakePlaylist] = {}
        self.tracks: dict[str, dict[str, Any]] = {}
        self.user_id = "me"
        # The logged-in user's library: saved tracks, top tracks, recently played (newest first),
        # and the order of the playlists GET /me/playlists lists (followed ones included).
        self.saved: list[dict[str, Any]] = []
        self.top: list[dict[str, Any]] = []
        self.recent: list[dict[str, Any]] = []
        self.followed: list[str] = []
        self.granted_scope = SCOPE_GRANTED
        # Listeners who linked their own account: refresh token -> their plays (played_at in ms, track).
        self.listener_plays: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._token_owner: dict[str, str] = {}  # access token -> the refresh token it was issued for

    @property
    def api_url(self) -> str:
        return self.base_url + "v1/"

    @property
    def accounts_url(self) -> str:
        return self.base_url

    def add_playlist(self, playlist_id: str, name: str, entries: list[dict[str, Any]], **kwargs: Any) -> None:
        self.playlists[playlist_id] = FakePlaylist(name, entries, **kwargs)

    def issue_refresh_token(self) -> str:
        token = "refresh-" + secrets.token_hex(8)
        self.refresh_tokens.add(token)
        return token

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far is refused (401) from now on."""
        with self._lock:
            self.access_tokens = {t: 0.0 for t in self.access_tokens}

    def _new_access_token(self) -> str:
        token = "access-" + secrets.token_hex(8)
        with self._lock:
            self.access_tokens[token] = time.time() + self.token_lifetime_s
        return token

    def handle(self, request: Request) -> Reply:
        if request.path == "/authorize":
            return self._authorize(request)
        if request.path == "/api/token" and request.method == "POST":
            return self._token(request)
        if request.path.startswith("/v1/"):
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return _error(401, "No token provided")
            expires = self.access_tokens.get(auth[len("Bearer "):])
            if expires is None:
                return _error(401, "Invalid access token")
            if expires < time.time():
                return _error(401, "The access token expired")
            return self._api(request)
        return _error(404, "Service not found")

    def _authorize(self, request: Request) -> Reply:
        q = request.query
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code" or not q.get("redirect_uri"):
            return Reply(400, b"INVALID_CLIENT: Invalid client", {"Content-Type": "text/plain"})
        code = "code-" + secrets.token_hex(8)
        self.codes[code] = q["redirect_uri"]
        params = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return Reply(302, b"", {"Location": q["redirect_uri"] + "?" + urlencode(params)})

    def _token(self, request: Request) -> Reply:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Reply.json({"error": "invalid_client", "error_description": "Invalid client"}, 400)
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        grant = form.get("grant_type")
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": self.token_lifetime_s}
        if grant == "client_credentials":
            pass
        elif grant == "authorization_code":
            if self.codes.pop(form.get("code", ""), None) != form.get("redirect_uri"):
                return Reply.json({"error": "invalid_grant", "error_description": "Invalid authorization code"}, 400)
            body["refresh_token"] = self.issue_refresh_token()
            body["scope"] = self.granted_scope
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return Reply.json({"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400)
            body["scope"] = self.granted_scope
        else:
            return Reply.json({"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r}"}, 400)
        body["access_token"] = self._new_access_token()
        owner = body.get("refresh_token") or form.get("refresh_token")
        if owner:
            self._token_owner[body["access_token"]] = owner
        return Reply.json(body)

    def _offset_page(self, request: Request, items: list[Any], path: str) -> Reply:
        """A paging object as every offset-paged endpoint sends it: limit 1..50, ``next`` or null."""
        try:
            limit, offset = int(request.query.get("limit", 20)), int(request.query.get("offset", 0))
        except ValueError:
            return _error(400, "Invalid limit or offset")
        if not 1 <= limit <= 50:
            return _error(400, "Invalid limit")
        page = items[offset:offset + limit]
        next_url = None
        if offset + limit < len(items):
            next_url = f"{self.api_url}{path}?" + urlencode({**request.query, "offset": str(offset + limit), "limit": str(limit)})
        return Reply.json({"href": f"{self.api_url}{path}", "items": page, "limit": limit, "offset": offset,
                           "total": len(items), "next": next_url, "previous": None})

    def _me(self, request: Request) -> Reply | None:
        """GET /v1/me and the library endpoints; None for other paths."""
        if request.path in ("/v1/me", "/v1/me/"):
            return Reply.json({"id": self.user_id, "display_name": "Me", "type": "user", "uri": f"spotify:user:{self.user_id}"})
        if request.path == "/v1/me/tracks":
            saved = [{"added_at": "2026-02-01T00:00:00Z", "track": t} for t in self.saved]
            return self._offset_page(request, saved, "me/tracks")
        if request.path == "/v1/me/top/tracks":
            if request.query.get("time_range", "medium_term") not in ("short_term", "medium_term", "long_term"):
                return _error(400, "Invalid time range")
            return self._offset_page(request, self.top, "me/top/tracks")
        if request.path == "/v1/me/playlists":
            simplified = []
            for playlist_id in self.followed:
                playlist = self.playlists[playlist_id]
                simplified.append({
                    "id": playlist_id, "name": playlist.name, "collaborative": playlist.collaborative, "type": "playlist",
                    "owner": {"id": playlist.owner, "display_name": playlist.owner, "type": "user"},
                    "items": {"href": f"{self.api_url}playlists/{playlist_id}/items", "total": len(playlist.entries)},
                })
            return self._offset_page(request, simplified, "me/playlists")
        if request.path == "/v1/me/player/recently-played":
            return self._recently_played(request)
        return None

    def _recently_played(self, request: Request) -> Reply:
        """Cursor paging as Spotify pages it: newest first, ``after`` or ``before`` (ms, exclusive, not both),
        ``next`` linking the ``before`` page of older plays, and only the last 50 plays kept. A listener
        linked by refresh token (``listener_plays``) gets their own plays; anyone else ``recent``."""
        limit = int(request.query.get("limit", 20))
        if not 1 <= limit <= 50:
            return _error(400, "Invalid limit")
        if "after" in request.query and "before" in request.query:
            return _error(400, "Only one of after or before may be given")
        owner = self._token_owner.get(request.headers.get("authorization", "")[len("Bearer "):], "")
        if owner in self.listener_plays:
            plays = sorted(self.listener_plays[owner], key=lambda p: -p[0])[:50]
        else:
            plays = [(1_770_000_000_000 - 60_000 * i, t) for i, t in enumerate(self.recent[:50])]
        if "after" in request.query:
            page = [p for p in plays if p[0] > int(request.query["after"])][:limit]
        else:
            page = [p for p in plays if p[0] < int(request.query.get("before", 2**62))][:limit]
        items = [{"track": track, "played_at": datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "context": None} for ms, track in page]
        older = page and any(p[0] < page[-1][0] for p in plays)
        next_url = f"{self.api_url}me/player/recently-played?" + urlencode({"before": page[-1][0], "limit": limit}) if older else None
        cursors = {"after": str(page[0][0]), "before": str(page[-1][0])} if page else None
        return Reply.json({"href": f"{self.api_url}me/player/recently-played", "items": items, "limit": limit,
                           "next": next_url, "cursors": cursors})

    def _api(self, request: Request) -> Reply:
        if request.path.startswith("/v1/me"):
            mine = self._me(request)
            if mine is not None:
                return mine
        if m := re.fullmatch(r"/v1/tracks/([^/]+)", request.path):
            track_id = m.group(1)
            if not re.fullmatch(r"[0-9A-Za-z]{22}", track_id):
                return _error(400, "Invalid base62 id")
            track = self.tracks.get(track_id)
            return Reply.json(track) if track else _error(404, "Resource not found")
        if m := re.fullmatch(r"/v1/playlists/([^/]+)", request.path):
            playlist = self.playlists.get(m.group(1))
            if playlist is None:
                return _error(404, "Resource not found")
            meta: dict[str, Any] = {
                "id": m.group(1), "name": playlist.name, "collaborative": playlist.collaborative,
                "owner": {"id": playlist.owner, "display_name": playlist.owner},
            }
            if not playlist.metadata_only:
                meta["items"] = {"href": f"{self.api_url}playlists/{m.group(1)}/items", "total": len(playlist.entries)}
            return Reply.json(meta)
        if m := re.fullmatch(r"/v1/playlists/([^/]+)/items", request.path):
            playlist = self.playlists.get(m.group(1))
            if playlist is None:
                return _error(404, "Resource not found")
            if playlist.metadata_only:
                return _error(403, "Forbidden")
            limit, offset = int(request.query.get("limit", 20)), int(request.query.get("offset", 0))
            if not 1 <= limit <= 50:
                return _error(400, "Invalid limit")
            entries = playlist.entries[offset:offset + limit]
            next_url = None
            if offset + limit < len(playlist.entries):
                params = {**request.query, "offset": str(offset + limit), "limit": str(limit)}
                next_url = f"{self.api_url}playlists/{m.group(1)}/items?" + urlencode(params)
            return Reply.json({"items": entries, "limit": limit, "offset": offset, "total": len(playlist.entries), "next": next_url})
        return _error(404, "Service not found")


class FakeCdn(LoopbackServer):
    """Preview audio: /media/{name}.mp3 signed like Deezer's (hdnea=exp=…~hmac=…, 403 once expired),
    /preview/{name} unsigned like Spotify's p.scdn.co, and the bad cases: /redirect/{name} (to a
    host outside the allow-list), /big/{name} (oversize), /html/{name} (not audio)."""

    def __init__(self, latency_s: float = 0.0, big_bytes: int = 6 * 1024 * 1024) -> None:
        super().__init__(latency_s)
        self.key = secrets.token_bytes(16)
        self.big_bytes = big_bytes
        self.redirect_target = DISALLOWED_REDIRECT
        self.audio: dict[str, bytes] = {}

    def audio_for(self, name: str) -> bytes:
        return self.audio.get(name) or mp3_bytes(int(hashlib.sha256(name.encode()).hexdigest(), 16) % CDN_TONES)

    def _mac(self, path: str, exp: int) -> str:
        return hmac.new(self.key, f"{path}|{exp}".encode(), hashlib.sha256).hexdigest()[:32]

    def signed_url(self, name: str, ttl_s: float = 900) -> str:
        path = f"/media/{quote(name)}.mp3"
        exp = int(time.time() + ttl_s)
        return f"{self.base_url.rstrip('/')}{path}?hdnea=exp={exp}~acl={path}~hmac={self._mac(path, exp)}"

    def preview_url(self, name: str) -> str:
        return f"{self.base_url}preview/{quote(name)}"

    def handle(self, request: Request) -> Reply:
        mp3 = {"Content-Type": "audio/mpeg"}
        if m := re.fullmatch(r"/media/(.+)\.mp3", request.path):
            fields = dict(part.split("=", 1) for part in request.query.get("hdnea", "").split("~") if "=" in part)
            try:
                exp = int(fields.get("exp", "0"))
            except ValueError:
                exp = 0
            if fields.get("hmac") != self._mac(request.path, exp) or exp < time.time():
                return Reply(403, b"URL signature expired", {"Content-Type": "text/plain"})
            return Reply(200, self.audio_for(m.group(1)), mp3)
        if m := re.fullmatch(r"/preview/(.+)", request.path):
            return Reply(200, self.audio_for(m.group(1)), mp3)
        if request.path.startswith("/redirect/"):
            return Reply(302, b"", {"Location": self.redirect_target})
        if request.path.startswith("/big/"):
            declared = request.query.get("length", "declared") == "declared"
            return Reply(200, b"\xff\xfb\x90\x00" * (self.big_bytes // 4), mp3, content_length=declared)
        if request.path.startswith("/html/"):
            return Reply(200, b"<!doctype html><html><body>Access denied</body></html>", {"Content-Type": "audio/mpeg"})
        return Reply(404, b"Not Found", {"Content-Type": "text/plain"})


@dataclass
class DeezerEntry:
    id: int
    title: str
    artist: str
    isrc: str
    media: str  # the CDN name; "" for a track without a preview
    title_short: str = ""
    album: str = "Deezer Album"
    duration_s: int = 215


@dataclass
class DeezerList:
    """A playlist, an album or an artist (whose list is its top tracks) of the fake."""

    title: str
    entries: list[DeezerEntry]
    public: bool = True


# https://developers.deezer.com/api/errors: Deezer answers errors with HTTP 200 and this body.
DEEZER_QUOTA_ERROR = {"error": {"type": "Exception", "message": "Quota limit exceeded", "code": 4}}
DEEZER_NO_DATA = {"error": {"type": "DataException", "message": "no data", "code": 800}}
# What the public API answers for a private playlist (as reported by its users; not in the docs).
DEEZER_PRIVATE = {"error": {"type": "OAuthException", "message": "An active access token must be used to query information about the current user", "code": 200}}


class FakeDeezer(LoopbackServer):
    """api.deezer.com: /track/{id}, /track/isrc:{ISRC}, /search, /playlist/{id}[/tracks],
    /album/{id}[/tracks], /artist/{id}[/top], /chart/0/tracks; lists paged with index/limit
    (default 25) and a ``next`` URL; errors as JSON bodies with HTTP 200.

    Shapes from developers.deezer.com/api. Playlist and album lists carry ``isrc``; the chart and
    artist top lists leave it out here (assumed: the crawler must not rely on it there).
    """

    def __init__(self, cdn: FakeCdn, latency_s: float = 0.0) -> None:
        super().__init__(latency_s)
        self.cdn = cdn
        self.entries: list[DeezerEntry] = []
        self.playlists: dict[int, DeezerList] = {}
        self.albums: dict[int, DeezerList] = {}
        self.artists: dict[int, DeezerList] = {}
        self.chart: list[DeezerEntry] = []
        # Deezer may send fewer entries than asked for; the crawler must follow `next` regardless.
        self.max_limit = 100
        self.preview_ttl_s: float = 900
        self.expired_signatures = 0
        self.preview_url_for: Callable[[DeezerEntry], str] | None = None

    def add(self, title: str, artist: str, isrc: str = "", media: str | None = None, title_short: str = "", album: str = "Deezer Album") -> DeezerEntry:
        entry = DeezerEntry(3_000_000 + len(self.entries), title, artist, isrc, title if media is None else media, title_short or title, album)
        self.entries.append(entry)
        return entry

    def add_many(self, n: int, prefix: str = "Dz", isrc_prefix: str = "DZRC") -> list[DeezerEntry]:
        start = len(self.entries)
        return [self.add(f"{prefix} Song {start + i}", f"{prefix} Artist {start + i}", isrc=f"{isrc_prefix}{start + i:07d}") for i in range(n)]

    def _preview(self, entry: DeezerEntry) -> str:
        if not entry.media:
            return ""
        if self.preview_url_for:
            return self.preview_url_for(entry)
        with self._lock:
            expired = self.expired_signatures > 0
            self.expired_signatures -= expired
        return self.cdn.signed_url(entry.media, -60 if expired else self.preview_ttl_s)

    def _json(self, entry: DeezerEntry, isrc: bool = True) -> dict[str, Any]:
        track: dict[str, Any] = {
            "id": entry.id, "readable": True, "title": entry.title, "title_short": entry.title_short, "title_version": "",
            "link": f"https://www.deezer.com/track/{entry.id}", "duration": entry.duration_s, "rank": 500000,
            "explicit_lyrics": False, "preview": self._preview(entry), "md5_image": "0" * 32,
            "artist": {"id": 27, "name": entry.artist, "type": "artist"},
            "album": {"id": 302127, "title": entry.album, "type": "album"}, "type": "track",
        }
        if isrc:
            track["isrc"] = entry.isrc
        return track

    def _page(self, request: Request, entries: list[DeezerEntry], isrc: bool) -> Reply:
        try:
            index, limit = int(request.query.get("index", 0)), int(request.query.get("limit", 25))
        except ValueError:
            return Reply.json({"error": {"type": "ParameterException", "message": "Wrong parameter", "code": 501}})
        limit = min(limit, self.max_limit)
        body: dict[str, Any] = {"data": [self._json(e, isrc) for e in entries[index:index + limit]], "total": len(entries)}
        if index + limit < len(entries):
            body["next"] = f"{self.base_url.rstrip('/')}{request.path}?" + urlencode({**request.query, "index": index + limit, "limit": limit})
        if index > 0:
            body["prev"] = f"{self.base_url.rstrip('/')}{request.path}?" + urlencode({**request.query, "index": max(0, index - limit), "limit": limit})
        return Reply.json(body)

    def _list(self, kind: str, number: int, tracks: bool, request: Request) -> Reply:
        lists = {"playlist": self.playlists, "album": self.albums, "artist": self.artists}[kind]
        found = lists.get(number)
        if found is None:
            return Reply.json(DEEZER_NO_DATA)
        if kind == "playlist" and not found.public:
            return Reply.json(DEEZER_PRIVATE)
        if tracks:
            return self._page(request, found.entries, isrc=kind != "artist")
        meta: dict[str, Any] = {"id": number, "type": kind, ("name" if kind == "artist" else "title"): found.title}
        if kind == "playlist":
            meta.update(public=True, nb_tracks=len(found.entries), creator={"id": 1, "name": "editor", "type": "user"},
                        tracklist=f"{self.base_url}playlist/{number}/tracks")
        if kind == "album":
            meta.update(nb_tracks=len(found.entries), artist={"id": 27, "name": "Album Artist", "type": "artist"},
                        tracklist=f"{self.base_url}album/{number}/tracks")
        return Reply.json(meta)

    def handle(self, request: Request) -> Reply:
        no_data = Reply.json(DEEZER_NO_DATA)
        if m := re.fullmatch(r"/track/isrc:(.+)", request.path):
            found = next((e for e in self.entries if e.isrc and e.isrc == m.group(1)), None)
            return Reply.json(self._json(found)) if found else no_data
        if m := re.fullmatch(r"/track/(\d+)", request.path):
            found = next((e for e in self.entries if e.id == int(m.group(1))), None)
            return Reply.json(self._json(found)) if found else no_data
        if m := re.fullmatch(r"/(playlist|album)/(\d+)(/tracks)?", request.path):
            return self._list(m.group(1), int(m.group(2)), bool(m.group(3)), request)
        if m := re.fullmatch(r"/artist/(\d+)(/top)?", request.path):
            return self._list("artist", int(m.group(1)), bool(m.group(2)), request)
        if request.path == "/chart/0/tracks":
            return self._page(request, self.chart, isrc=False)
        if request.path == "/search":
            q = request.query.get("q", "")
            if not q:
                return Reply.json({"error": {"type": "ParameterException", "message": "Wrong parameter: q", "code": 501}})
            artist = re.search(r'artist:"([^"]*)"', q)
            track = re.search(r'track:"([^"]*)"', q)
            words = (track.group(1) if track else q).lower().split()
            hits = [
                e for e in self.entries
                if (not artist or artist.group(1).lower() in e.artist.lower())
                and any(w in e.title.lower() for w in words)
            ]
            limit = int(request.query.get("limit", 25))
            return Reply.json({"data": [self._json(e) for e in hits[:limit]], "total": len(hits)})
        return no_data


@dataclass
class Fakes:
    spotify: FakeSpotify
    deezer: FakeDeezer
    cdn: FakeCdn
