"""One request pacer shared by every worker of a crawl (Deezer's API allows 50 requests per 5 s).

A token bucket one token deep: each request is given its own time slot, at least
``1 / rate`` after the previous one, whichever thread asks. Slots are reserved under a
lock and waited for outside it, so the pacing holds for any number of workers and the
order of the slots does not depend on how the threads interleave. ``hold`` pushes every
later slot back (Deezer's quota error): all workers wait, not only the one that met it.
The clock and the sleep are injected so tests run on made-up time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestPacer:
    def __init__(
        self,
        rate_per_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"request rate must be positive, got {rate_per_s}")
        self.interval_s = 1.0 / rate_per_s
        self.clock = clock
        self.sleep = sleep
        self._next_slot = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for this request's slot; returns the slot (on the injected clock)."""
        with self._lock:
            now = self.clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval_s
        if slot > now:
            self.sleep(slot - now)
        return slot

    def hold(self, seconds: float) -> None:
        """No request from any worker before ``seconds`` from now."""
        with self._lock:
            self._next_slot = max(self._next_slot, self.clock() + seconds)
