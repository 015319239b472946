"""Every tunable of the crawler, read once from the environment.

Endpoints are configurable so that tests and the benchmark reach loopback fakes
through the same code that talks to Spotify and Deezer. Plain http is refused
except for 127.0.0.1 / ::1 when CRAWLER_ALLOW_HTTP_LOOPBACK is set: a test-only
allowance, not a switch that turns the https rule off.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from catalog.crawl_requests import PENDING_STALE_AFTER_S_DEFAULT, pending_stale_after_s
from catalog.settings import env_float, env_int, env_list, env_str

SPOTIFY_API_URL_DEFAULT = "https://api.spotify.com/v1/"
SPOTIFY_ACCOUNTS_URL_DEFAULT = "https://accounts.spotify.com/"
DEEZER_API_URL_DEFAULT = "https://api.deezer.com/"
# p.scdn.co serves Spotify's 30 s previews; Deezer signs preview URLs on cdn*-preview-*.dzcdn.net.
SPOTIFY_PREVIEW_HOSTS_DEFAULT = ("p.scdn.co",)
DEEZER_PREVIEW_HOSTS_DEFAULT = ("*.dzcdn.net",)

DOWNLOAD_MAX_BYTES_DEFAULT = 5 * 1024 * 1024
LOCAL_MAX_BYTES_DEFAULT = 200 * 1024 * 1024
CRAWL_CONCURRENCY_DEFAULT = 8
RATE_LIMIT_MAX_WAIT_S_DEFAULT = 60.0
HTTP_CONNECT_TIMEOUT_S_DEFAULT = 5.0
HTTP_READ_TIMEOUT_S_DEFAULT = 15.0
DOWNLOAD_TOTAL_TIMEOUT_S_DEFAULT = 60.0
HTTP_MAX_RETRIES_DEFAULT = 4
HTTP_BACKOFF_S_DEFAULT = 0.5
MAX_REDIRECTS = 3
# Deezer allows 50 requests per 5 s per client; 8/s leaves room for a retry or two.
DEEZER_MAX_RPS_DEFAULT = 8.0
# How long every worker pauses after Deezer's quota error (its window is 5 s).
DEEZER_QUOTA_COOLDOWN_S_DEFAULT = 5.0
# Connection errors to S3 / DynamoDB after which a crawl stops instead of failing every track.
STORAGE_ERROR_LIMIT_DEFAULT = 3

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})
_TRUE = frozenset({"1", "true", "yes", "on"})


class InsecureEndpointError(ValueError):
    """A URL the crawler refuses to talk to: not https, or plain http off loopback."""


def check_url(url: str, allow_http_loopback: bool) -> str:
    """The URL itself when its scheme is allowed; raises InsecureEndpointError otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and allow_http_loopback and parts.hostname in LOOPBACK_HOSTS:
        return url
    raise InsecureEndpointError(
        f"refusing {url!r}: only https URLs are allowed"
        + ("" if allow_http_loopback else " (http to 127.0.0.1 needs CRAWLER_ALLOW_HTTP_LOOPBACK=1, for tests)")
    )


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Exact host match, or a '*.' entry matching any subdomain of it."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower()
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class CrawlerSettings:
    spotify_api_url: str = SPOTIFY_API_URL_DEFAULT
    spotify_accounts_url: str = SPOTIFY_ACCOUNTS_URL_DEFAULT
    deezer_api_url: str = DEEZER_API_URL_DEFAULT
    spotify_preview_hosts: tuple[str, ...] = SPOTIFY_PREVIEW_HOSTS_DEFAULT
    deezer_preview_hosts: tuple[str, ...] = DEEZER_PREVIEW_HOSTS_DEFAULT
    download_max_bytes: int = DOWNLOAD_MAX_BYTES_DEFAULT
    local_max_bytes: int = LOCAL_MAX_BYTES_DEFAULT
    concurrency: int = CRAWL_CONCURRENCY_DEFAULT
    rate_limit_max_wait_s: float = RATE_LIMIT_MAX_WAIT_S_DEFAULT
    connect_timeout_s: float = HTTP_CONNECT_TIMEOUT_S_DEFAULT
    read_timeout_s: float = HTTP_READ_TIMEOUT_S_DEFAULT
    download_total_timeout_s: float = DOWNLOAD_TOTAL_TIMEOUT_S_DEFAULT
    max_retries: int = HTTP_MAX_RETRIES_DEFAULT
    backoff_s: float = HTTP_BACKOFF_S_DEFAULT
    allow_http_loopback: bool = False
    pending_stale_after_s: float = PENDING_STALE_AFTER_S_DEFAULT
    deezer_max_rps: float = DEEZER_MAX_RPS_DEFAULT
    deezer_quota_cooldown_s: float = DEEZER_QUOTA_COOLDOWN_S_DEFAULT
    storage_error_limit: int = STORAGE_ERROR_LIMIT_DEFAULT
    # Opt-in for a deployed stack: keep a copy of each local file at listen/{id}.{ext} so the page can
    # play it through a presigned URL (the extractor deletes previews/ after embedding).
    keep_local_previews: bool = False

    def __post_init__(self) -> None:
        for url in (self.spotify_api_url, self.spotify_accounts_url, self.deezer_api_url):
            check_url(url, self.allow_http_loopback)
        if self.concurrency < 1:
            raise ValueError(f"CRAWL_CONCURRENCY must be at least 1, got {self.concurrency}")
        if self.download_max_bytes < 1 or self.local_max_bytes < 1:
            raise ValueError("DOWNLOAD_MAX_BYTES and LOCAL_MAX_BYTES must be positive")
        if self.rate_limit_max_wait_s < 0:
            raise ValueError("RATE_LIMIT_MAX_WAIT_S must not be negative")
        if self.deezer_max_rps <= 0:
            raise ValueError(f"DEEZER_MAX_RPS must be positive, got {self.deezer_max_rps}")
        if self.storage_error_limit < 1:
            raise ValueError(f"STORAGE_ERROR_LIMIT must be at least 1, got {self.storage_error_limit}")

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) as requests takes it."""
        return (self.connect_timeout_s, self.read_timeout_s)

    def preview_hosts(self, source: str) -> tuple[str, ...]:
        return {"spotify": self.spotify_preview_hosts, "deezer": self.deezer_preview_hosts}[source]

    @classmethod
    def from_env(cls) -> CrawlerSettings:
        return cls(
            spotify_api_url=_with_slash(env_str("SPOTIFY_API_URL", SPOTIFY_API_URL_DEFAULT)),
            spotify_accounts_url=_with_slash(env_str("SPOTIFY_ACCOUNTS_URL", SPOTIFY_ACCOUNTS_URL_DEFAULT)),
            deezer_api_url=_with_slash(env_str("DEEZER_API_URL", DEEZER_API_URL_DEFAULT)),
            spotify_preview_hosts=env_list("SPOTIFY_PREVIEW_HOSTS", SPOTIFY_PREVIEW_HOSTS_DEFAULT),
            deezer_preview_hosts=env_list("DEEZER_PREVIEW_HOSTS", DEEZER_PREVIEW_HOSTS_DEFAULT),
            download_max_bytes=env_int("DOWNLOAD_MAX_BYTES", DOWNLOAD_MAX_BYTES_DEFAULT),
            local_max_bytes=env_int("LOCAL_MAX_BYTES", LOCAL_MAX_BYTES_DEFAULT),
            concurrency=env_int("CRAWL_CONCURRENCY", CRAWL_CONCURRENCY_DEFAULT),
            rate_limit_max_wait_s=env_float("RATE_LIMIT_MAX_WAIT_S", RATE_LIMIT_MAX_WAIT_S_DEFAULT),
            connect_timeout_s=env_float("HTTP_CONNECT_TIMEOUT_S", HTTP_CONNECT_TIMEOUT_S_DEFAULT),
            read_timeout_s=env_float("HTTP_READ_TIMEOUT_S", HTTP_READ_TIMEOUT_S_DEFAULT),
            download_total_timeout_s=env_float("DOWNLOAD_TOTAL_TIMEOUT_S", DOWNLOAD_TOTAL_TIMEOUT_S_DEFAULT),
            max_retries=env_int("HTTP_MAX_RETRIES", HTTP_MAX_RETRIES_DEFAULT),
            backoff_s=env_float("HTTP_BACKOFF_S", HTTP_BACKOFF_S_DEFAULT),
            pending_stale_after_s=pending_stale_after_s(),
            deezer_max_rps=env_float("DEEZER_MAX_RPS", DEEZER_MAX_RPS_DEFAULT),
            deezer_quota_cooldown_s=env_float("DEEZER_QUOTA_COOLDOWN_S", DEEZER_QUOTA_COOLDOWN_S_DEFAULT),
            storage_error_limit=env_int("STORAGE_ERROR_LIMIT", STORAGE_ERROR_LIMIT_DEFAULT),
            allow_http_loopback=env_str("CRAWLER_ALLOW_HTTP_LOOPBACK", "").lower() in _TRUE,
            keep_local_previews=env_str("KEEP_LOCAL_PREVIEWS", "").lower() in _TRUE,
        )
