"""Safe preview downloads: https only, a host allow-list per source, redirects followed
by hand so that every hop is checked, timeouts, a size cap, and bytes that must be audio."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from crawler.audio import AudioFormat, NotAudioError, sniff
from crawler.settings import MAX_REDIRECTS, CrawlerSettings, InsecureEndpointError, check_url, host_allowed

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_BYTES = 64 * 1024


class DownloadRejected(Exception):
    """A preview that was not (or must not be) downloaded; ``reason`` is a short summary key."""

    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class Audio:
    data: bytes
    format: AudioFormat


def pooled_session(pool_size: int) -> requests.Session:
    """A session whose pool holds one connection per worker; no transparent retries."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Downloader:
    def __init__(self, settings: CrawlerSettings) -> None:
        self.settings = settings
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """One session per worker thread: requests.Session is not documented as thread-safe."""
        if not hasattr(self._local, "session"):
            self._local.session = pooled_session(1)
        return self._local.session

    def _check(self, url: str, source: str) -> str:
        try:
            check_url(url, self.settings.allow_http_loopback)
        except InsecureEndpointError as exc:
            raise DownloadRejected("insecure_url", str(exc)) from None
        host = urlsplit(url).hostname or ""
        if not host_allowed(host, self.settings.preview_hosts(source)):
            raise DownloadRejected("host_not_allowed", f"{host!r} is not in the {source} preview host allow-list")
        return url

    def fetch(self, url: str, source: str) -> Audio:
        """The audio at ``url`` (a ``source`` preview URL); raises DownloadRejected."""
        cap = self.settings.download_max_bytes
        deadline = time.monotonic() + self.settings.download_total_timeout_s
        for _ in range(MAX_REDIRECTS + 1):
            self._check(url, source)
            try:
                response = self.session.get(url, stream=True, allow_redirects=False, timeout=self.settings.timeout)
            except requests.Timeout as exc:
                raise DownloadRejected("timeout", str(exc)) from None
            except requests.RequestException as exc:
                raise DownloadRejected("network_error", str(exc)) from None
            with response:
                if response.status_code in _REDIRECT_STATUSES:
                    location = response.headers.get("Location", "")
                    if not location:
                        raise DownloadRejected("bad_redirect", f"HTTP {response.status_code} without Location")
                    url = urljoin(url, location)
                    continue
                if response.status_code == 403:
                    raise DownloadRejected("forbidden", "HTTP 403 (expired or invalid signature)", status=403)
                if response.status_code != 200:
                    raise DownloadRejected(f"http_{response.status_code}", f"HTTP {response.status_code}", response.status_code)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise DownloadRejected("too_large", f"Content-Length {declared} exceeds {cap} bytes")
                data = bytearray()
                try:
                    for chunk in response.iter_content(_CHUNK_BYTES):
                        data += chunk
                        if len(data) > cap:
                            raise DownloadRejected("too_large", f"body exceeds {cap} bytes")
                        if time.monotonic() > deadline:
                            raise DownloadRejected("timeout", f"download took over {self.settings.download_total_timeout_s} s")
                except requests.RequestException as exc:
                    raise DownloadRejected("network_error", str(exc)) from None
            try:
                return Audio(bytes(data), sniff(bytes(data)))
            except NotAudioError as exc:
                raise DownloadRejected("not_audio", str(exc)) from None
        raise DownloadRejected("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")
