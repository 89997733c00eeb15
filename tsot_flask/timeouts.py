"""Flask-Caching timeouts to tsot TTLs (docs/architecture.md#ttl, the Flask-Caching column)."""

from __future__ import annotations

import re
from datetime import timedelta

Timeout = int | float | timedelta | None
"""What Flask-Caching callers pass: None = the default, 0 = never expires, < 0 = expire now."""
CoreTTL = int | float | None
"""What tsot takes: None = never expires, seconds > 0, <= 0 = expired (the write deletes)."""


def to_core(timeout: Timeout, default: CoreTTL) -> CoreTTL:
    """The tsot TTL for a Flask-Caching ``timeout``; ``default`` stands for None.

    0 (or a zero timedelta) becomes None (never expires); a negative timeout stays negative so
    the write removes the key; positive seconds (int, float, timedelta) pass unchanged. Raises
    TypeError for anything else, as cachelib does (bools too: ``True`` is not a timeout).
    """
    if timeout is None:
        return default
    if isinstance(timeout, timedelta):
        seconds: int | float = timeout.total_seconds()
    elif isinstance(timeout, int | float) and not isinstance(timeout, bool):
        seconds = timeout
    else:
        raise TypeError(
            "timeout must be a number of seconds, a datetime.timedelta or None, "
            f"not {type(timeout).__name__} {timeout!r}"
        )
    return None if seconds == 0 else seconds


def default_ttl(default_timeout: int) -> CoreTTL:
    """The tsot TTL used when a caller passes no timeout (CACHE_DEFAULT_TIMEOUT, 0 = never)."""
    return None if default_timeout == 0 else default_timeout


_WHOLE = re.compile(r"-?[0-9]{1,18}")


def whole_seconds(text: str) -> int | None:
    """The int a str such as ``"60"`` spells (surrounding spaces allowed), else None."""
    text = text.strip()
    return int(text) if _WHOLE.fullmatch(text) else None
