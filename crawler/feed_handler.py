"""ListenerFeedFunction: on its schedule, import every linked listener's recently played (crawler.feed)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from api.index_cache import IndexCache
from catalog.listens import ListenTable
from catalog.settings import require_env
from catalog.train_requests import TrainQueue
from crawler.feed import FeedSummary, feed_all
from crawler.settings import CrawlerSettings
from crawler.spotify import SecretsManagerStore
from history.service import require_index

logger = Logger(service="listener-feed")
metrics = Metrics(service="listener-feed")


def run_feed() -> FeedSummary:
    """One pass over the linked listeners with this environment's settings (the handler and ``python -m crawler feed``)."""
    bucket = require_env("INDEX_BUCKET")
    return feed_all(
        require_env("LISTENERS_PATH"),
        SecretsManagerStore(require_env("SPOTIFY_SECRET_ID")),
        CrawlerSettings.from_env(),
        lambda: require_index(IndexCache(bucket).current()),
        ListenTable(require_env("LISTENS_TABLE")),
        TrainQueue(require_env("TRAIN_QUEUE_URL")),
    )


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = run_feed()
    metrics.add_metric("ListenersFed", MetricUnit.Count, len(summary.imported))
    metrics.add_metric("ListenerFeedErrors", MetricUnit.Count, len(summary.errors))
    metrics.add_metric("PlaysAdded", MetricUnit.Count, sum(r["added"] for r in summary.imported.values()))
    (logger.error if summary.errors else logger.info)("recently-played feed done", extra={"summary": summary.to_dict()})
    return summary.to_dict()
