"""A preview for a Spotify track, tried in order: Spotify's preview_url, Deezer by ISRC,
Deezer by artist + title. Each candidate is resolved right before it is downloaded, since
Deezer's signed URLs expire; a download refused as 403 is resolved once more. The Deezer track
a preview came from is kept (``Preview.deezer_id``) so it can be resolved again later.
Deezer's quota error is not a missing preview: DeezerQuotaError goes up and stops the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from catalog.records import PreviewSource
from crawler.deezer import DeezerClient, DeezerError, DeezerQuotaError, DeezerTrack
from crawler.download import Audio, Downloader, DownloadRejected
from crawler.spotify import SpotifyTrack


@dataclass(frozen=True)
class Preview:
    audio: Audio
    source: PreviewSource
    deezer_id: str = ""


class NoPreview(Exception):
    """No candidate gave audio; ``reason`` is a short key for the summary, ``detail`` says what each gave."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# A candidate's preview URL, resolved right before the download, and the Deezer track it is of ("" for Spotify's).
Resolver = Callable[[], tuple[str, str]]


class PreviewFinder:
    def __init__(self, downloader: Downloader, deezer: DeezerClient) -> None:
        self.downloader = downloader
        self.deezer = deezer

    def _candidates(self, track: SpotifyTrack) -> Iterator[tuple[PreviewSource, str, Resolver]]:
        if track.preview_url:
            yield PreviewSource.SPOTIFY, "spotify preview_url", lambda: (track.preview_url, "")
        if track.isrc:
            yield PreviewSource.DEEZER, "deezer isrc", lambda: _url(self.deezer.by_isrc(track.isrc))
        if track.title and track.artists:
            yield PreviewSource.DEEZER, "deezer search", lambda: _url(self.deezer.search(track.title, list(track.artists)))

    def find(self, track: SpotifyTrack) -> Preview:
        """The first candidate that downloads as audio; raises NoPreview."""
        attempts: list[str] = []
        last_reason = "not_found"
        for source, label, resolve in self._candidates(track):
            for attempt in range(2):
                try:
                    url, deezer_id = resolve()
                except DeezerQuotaError:
                    raise
                except DeezerError as exc:
                    attempts.append(f"{label}: {exc}")
                    last_reason = "deezer_error"
                    break
                if not url:
                    attempts.append(f"{label}: none")
                    break
                try:
                    return Preview(self.downloader.fetch(url, source.value), source, deezer_id)
                except DownloadRejected as exc:
                    attempts.append(f"{label}: {exc}")
                    last_reason = exc.reason
                    # A fresh signature helps only when the old one was refused, and only for resolved URLs.
                    if not (exc.status == 403 and source is PreviewSource.DEEZER and attempt == 0):
                        break
        if not attempts:
            attempts.append("no preview_url, ISRC, title or artist to look up")
        raise NoPreview(last_reason, "; ".join(attempts))


    def find_deezer(self, track: DeezerTrack) -> Preview:
        """A Deezer track's own preview; a signature refused as expired is resolved once more."""
        if not track.preview_url:
            raise NoPreview("no_preview_url", f"Deezer has no preview for track {track.id}")
        try:
            return Preview(self.downloader.fetch(track.preview_url, PreviewSource.DEEZER.value), PreviewSource.DEEZER, str(track.id))
        except DownloadRejected as exc:
            if exc.status != 403:
                raise NoPreview(exc.reason, f"deezer track {track.id}: {exc}") from None
        try:
            fresh = self.deezer.track(track.id)
        except DeezerQuotaError:
            raise
        except DeezerError as exc:
            raise NoPreview("deezer_error", f"deezer track {track.id}: {exc}") from None
        if fresh is None or not fresh.preview_url:
            raise NoPreview("no_preview_url", f"Deezer no longer has a preview for track {track.id}")
        try:
            return Preview(self.downloader.fetch(fresh.preview_url, PreviewSource.DEEZER.value), PreviewSource.DEEZER, str(track.id))
        except DownloadRejected as exc:
            raise NoPreview(exc.reason, f"deezer track {track.id}, signed again: {exc}") from None


def _url(found: DeezerTrack | None) -> tuple[str, str]:
    return (found.preview_url, str(found.id)) if found else ("", "")
