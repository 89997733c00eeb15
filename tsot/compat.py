"""django-redis's (and redis-py's) conventions that both adapters offer: TTL results, absolute
expiry times and literal glob text. Pure functions; the adapters call them."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")


def redis_ttl(left: float | None, ms: bool) -> int | None:
    """django-redis's ``ttl``/``pttl`` result for ``Storage.ttl``'s ``left`` (seconds, inf, or
    None if missing): None = never expires, 0 = missing, else whole seconds rounded as Redis's
    TTL rounds (half up), or milliseconds."""
    if left is None:
        return 0
    if math.isinf(left):
        return None
    left_ms: int = round(left * 1000)
    return left_ms if ms else (left_ms + 500) // 1000


def seconds_until(when: object, per_second: int = 1) -> float:
    """Seconds from now until ``when``: a datetime (naive = local time, as in redis-py) or a
    Unix time in 1/``per_second`` seconds (``expire_at``: 1, ``pexpire_at``: 1000)."""
    if isinstance(when, datetime):
        return when.timestamp() - time.time()
    if isinstance(when, int | float) and not isinstance(when, bool):
        return when / per_second - time.time()
    raise TypeError(f"expire_at needs a Unix time or a datetime, not {type(when).__name__}")


def ms_timeout(timeout: T) -> T | float:
    """A ``pexpire`` timeout as the adapter's ``expire`` takes it: a number (not a bool) of
    milliseconds in seconds; anything else (None, a timedelta, the adapter's default marker)
    as it is, for the adapter's TTL table to read or refuse."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return timeout / 1000
    return timeout


_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a key pattern (``*?[]\\`` escaped)."""
    return text.translate(_GLOB)
