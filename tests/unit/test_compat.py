"""django-redis's conventions both adapters take from ``tsot.integration``."""

from __future__ import annotations

from datetime import timedelta

from tsot.integration import ms_timeout, redis_ttl


def test_ms_timeout_turns_numbers_of_milliseconds_into_seconds() -> None:
    assert ms_timeout(1500) == 1.5
    assert ms_timeout(250.0) == 0.25
    marker = object()
    for kept in (None, True, timedelta(seconds=2), "x", marker):
        assert ms_timeout(kept) is kept


def test_redis_ttl_rounds_as_redis() -> None:
    assert redis_ttl(None, ms=False) == 0
    assert redis_ttl(float("inf"), ms=True) is None
    assert redis_ttl(1.5, ms=False) == 2 and redis_ttl(1.4994, ms=False) == 1
    assert redis_ttl(1.5, ms=True) == 1500
