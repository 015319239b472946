"""The recently-played feed: each linked listener's latest Spotify plays, imported as an export's are.

For each listener under LISTENERS_PATH (crawler.listeners): recently played after the
stored cursor (spotipy's ``current_user_recently_played``, ``after`` then ``before`` pages),
imported into Listens with the importer the exports use (history.importer.import_plays:
same matching, keys and counts), then the cursor moves to the newest play and, when
anything was added, a TrainQueue request asks HistoryTrainFunction to retrain. The cursor
moves only after the plays are stored; a run that dies between the two reads the same plays
again next time, and their keys add nothing.

The endpoint gives no play length: a play's ``ms_played`` is the track's duration, and the
play is stored marked ``from_feed``. An export imported later that records the same play
(same track, overlapping time span: history.importer.FeedTwins) replaces it with its real
length; a feed play that an imported export already holds is not stored. Spotify's
``played_at`` is taken as the end of the play, as the exports' times are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from api.served import ServedIndex
from catalog.listens import ListenTable, iso_utc
from catalog.train_requests import TrainQueue
from crawler.listeners import ListenerStore, linked_listeners
from crawler.settings import CrawlerSettings
from crawler.spotify import (
    CredentialStore,
    RateLimitedError,
    RecentPlay,
    SpotifyConfigError,
    SpotifyError,
    catalog_from_store,
)
from history.exports import SPOTIFY_TRACK_URI_PREFIX, ExportPlay
from history.importer import import_plays
from history.matching import matcher_for

logger = Logger(child=True)


@dataclass
class FeedSummary:
    listeners: int = 0
    imported: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    stopped: str = ""  # set when Spotify's rate limit or quota ended the run early

    def to_dict(self) -> dict[str, Any]:
        return {"listeners": self.listeners, "imported": self.imported, "errors": self.errors, "stopped": self.stopped}


def export_play(play: RecentPlay) -> ExportPlay:
    track = play.track
    return ExportPlay(
        ended_at=datetime.fromtimestamp(play.played_at_ms / 1000, UTC),
        artist=track.artists[0] if track.artists else "",
        title=track.title,
        ms_played=int(track.duration_ms or 0),
        spotify_uri=SPOTIFY_TRACK_URI_PREFIX + track.id,
        from_feed=True,
    )


def feed_listener(
    listener: ListenerStore, settings: CrawlerSettings, index: ServedIndex, table: ListenTable, queue: TrainQueue
) -> dict[str, int]:
    """One listener's new plays into Listens; the cursor moved; training requested when any were added."""
    plays = catalog_from_store(settings, listener).recently_played(listener.cursor)
    report = import_plays(listener.user_id, [export_play(p) for p in plays], matcher_for(index), table)
    if plays:
        listener.set_cursor(plays[-1].played_at_ms)
    if report.added:
        queue.send(listener.user_id, {"at": iso_utc(datetime.now(UTC)), **report.to_json()})
    return report.to_json()


def feed_all(
    path: str, app: CredentialStore, settings: CrawlerSettings, index: Callable[[], ServedIndex], table: ListenTable, queue: TrainQueue
) -> FeedSummary:
    """Every linked listener in turn; one listener's broken link is reported and the others still run.
    ``index`` is called once, at the first listener: with nobody linked, a run reads one SSM path and stops."""
    summary = FeedSummary()
    served: ServedIndex | None = None
    for listener in linked_listeners(path, app):
        summary.listeners += 1
        if served is None:
            served = index()
        try:
            summary.imported[listener.user_id] = feed_listener(listener, settings, served, table, queue)
        except RateLimitedError as exc:  # QuotaExceededError included: waiting will not help this run
            summary.errors[listener.user_id] = str(exc)
            summary.stopped = str(exc)
            break
        except SpotifyConfigError as exc:
            # The remedy is the listener's own login, not the app's (which the crawler's message names).
            message = f"{exc} [for this listener: make listener-login USER={listener.user_id}]"
            logger.warning("a listener's Spotify link failed", extra={"user_id": listener.user_id, "error": message})
            summary.errors[listener.user_id] = message
        except SpotifyError as exc:
            logger.warning("recently played failed for a listener", extra={"user_id": listener.user_id, "error": str(exc)})
            summary.errors[listener.user_id] = str(exc)
    return summary
