"""OPTIONS METRICS on a Django cache: django-prometheus's counters from Django's get and aget."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.core.cache import caches
from django.test import override_settings

prometheus_client = pytest.importorskip("prometheus_client")


def test_django_gets_feed_the_django_prometheus_counters() -> None:
    registry = prometheus_client.CollectorRegistry()
    entry = {
        "BACKEND": "tsot_django.MemoryCache",
        "LOCATION": f"metrics-{uuid.uuid4().hex}",
        "OPTIONS": {
            "METRICS": ["prometheus", "stats"],
            "LABEL": "dj",
            "PROMETHEUS_REGISTRY": registry,
        },
    }
    with override_settings(CACHES={"default": entry}):
        cache = caches["default"]
        cache.set("a", 1)
        assert cache.get("a") == 1
        assert cache.get("b") is None
        assert cache.get_or_set("c", 3) == 3  # Django's algorithm: get (miss), add, get (hit)

        async def run() -> None:
            assert await cache.aget("a") == 1
            assert await cache.aget("zz", "d") == "d"

        asyncio.run(run())
        sync_ops = cache.storage.stats()["operations"]  # type: ignore[attr-defined]

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)  # type: ignore[no-any-return]

    assert value("django_cache_get_total", backend="memory") == 6
    assert value("django_cache_get_hits_total", backend="memory") == 3
    assert value("django_cache_get_misses_total", backend="memory") == 3
    assert value("django_cache_get_fail_total", backend="memory") == 0
    assert value("tsot_operation_seconds_count", storage="dj", operation="add") == 1
    # stats() counts the sync Storage; the event loop's AsyncStorage counts its own two gets
    assert sync_ops["get"]["calls"] == 4 and sync_ops["add"]["calls"] == 1
