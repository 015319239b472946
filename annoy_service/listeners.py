"""When a new base is searched in another space, the listeners' models are trained again.

A listener's models hold vectors of the searched space they were trained in
(catalog.user_models.UserModel.space). A base that refits its catalogue transform
(catalog.bundle.transform_of_base: the first PCA fit at 2,000 tracks, a refit each
time the catalogue doubles) makes those vectors meaningless, and the personal routes
answer 409 ``model_stale``. The builder that published such a base asks
HistoryTrainFunction to train every listener again from their stored plays
(TrainQueue, reason ``space_changed``), so nobody has to import their history again.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from catalog.train_requests import TrainQueue
from catalog.user_models import UserModelStore

logger = Logger(child=True)


class ListenerRetrainer:
    """Sends a ``space_changed`` training request for every listener stored in the index bucket."""

    def __init__(self, store: UserModelStore, queue: TrainQueue) -> None:
        self.store = store
        self.queue = queue

    def space_changed(self, space: str) -> int:
        """Ask for every listener to be trained in ``space``; returns how many requests SQS took."""
        user_ids = self.store.user_ids()
        refused = self.queue.send_space_changed(user_ids, space)
        if refused:
            # The base is published; these listeners' personal routes answer 409 model_stale until
            # the next import (or the next change of space) trains them.
            logger.error("TrainQueue refused training requests", extra={"refused": len(refused), "user_ids": refused[:20]})
        return len(user_ids) - len(refused)
