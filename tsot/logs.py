"""Logging at a bounded rate, so a dead server or a flood of bad payloads cannot flood logs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("tsot")


class RateLimitedLog:
    """Log a message at most once per ``interval`` seconds per topic; count what was suppressed."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, topic: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at WARNING unless ``topic`` was logged recently; True if logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(topic)
            if last is not None and now - last < self.interval:
                self._suppressed[topic] = self._suppressed.get(topic, 0) + 1
                return False
            self._last[topic] = now
            skipped = self._suppressed.pop(topic, 0)
        if skipped:
            msg += " (%d similar messages suppressed)"
            args = (*args, skipped)
        logger.warning(msg, *args)
        return True

    def reset(self) -> None:
        """Forget what was logged (tests start from a clean slate)."""
        with self._lock:
            self._last.clear()
            self._suppressed.clear()


limited = RateLimitedLog()
"""The process-wide limiter used by the codec and the backends."""
