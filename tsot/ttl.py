"""TTL interpretation: every caller-facing TTL becomes milliseconds or None here, and only here."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final, Union

from .errors import ConfigurationError

TTL = Union[int, float, timedelta, None]  # noqa: UP007 (a runtime alias on Python 3.10)
"""What callers pass: None = never expires; seconds or a timedelta; <= 0 = expired."""

EXPIRED: Final = 0
"""The normalised form of a zero or negative TTL: the write removes the key and stores nothing."""

FOREVER_SECONDS: Final = 100 * 365 * 86_400
"""TTLs of a hundred years or more mean "never expires" (no backend can hold such a deadline
the same way: Redis caps PX, memcached's absolute time is 32-bit)."""


def to_ms(ttl: TTL) -> int | None:
    """Normalise a TTL to whole milliseconds.

    Returns None for "never expires", 0 (``EXPIRED``) for a TTL that is zero or negative, and
    otherwise a positive number of milliseconds, rounded up so that a tiny positive TTL never
    turns into "already expired". ``math.inf`` means never expires. NaN, bools and other types
    raise ConfigurationError naming the value.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool):
        raise ConfigurationError(
            f"ttl must be a number of seconds, a timedelta or None, not {ttl!r}"
        )
    if isinstance(ttl, int):
        if ttl >= FOREVER_SECONDS:
            return None
        return ttl * 1000 if ttl > 0 else EXPIRED
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, float):
        seconds = ttl
    else:
        raise ConfigurationError(
            "ttl must be a number of seconds, a timedelta or None, "
            f"not {type(ttl).__name__} {ttl!r}"
        )
    if math.isnan(seconds):
        raise ConfigurationError("ttl must be a number of seconds, not NaN")
    if seconds >= FOREVER_SECONDS:
        return None
    if seconds <= 0:
        return EXPIRED
    return max(1, math.ceil(seconds * 1000))


def from_ms(remaining_ms: int | None) -> float | None:
    """Turn a backend's remaining milliseconds into seconds (None stays "no expiry")."""
    return None if remaining_ms is None else remaining_ms / 1000.0
