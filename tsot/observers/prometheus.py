"""metrics=prometheus: django-prometheus's cache counters plus tsot's histograms and gauges.

One set of collectors per registry, however many storages (Django aliases, per-loop async
storages, Flask apps) export to it; collectors another library already registered under the
same names (django-prometheus) are reused rather than registered twice.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from ..errors import require
from ..events import READS, Event, Source

GET_TOTAL = "django_cache_get_total"
GET_HITS = "django_cache_get_hits_total"
GET_MISSES = "django_cache_get_misses_total"
GET_FAIL = "django_cache_get_fail_total"
SECONDS = "tsot_operation_seconds"
ERRORS = "tsot_operation_errors_total"
HITS = "tsot_cache_hits_total"
MISSES = "tsot_cache_misses_total"
BREAKER = "tsot_breaker_open"
SKIPPED = "tsot_fail_open_skipped_total"
LOCAL_HITS = "tsot_local_hits_total"
LOCAL_INVALIDATIONS = "tsot_local_invalidations_total"
LOCAL_FLUSHES = "tsot_local_flushes_total"
LOCAL_LOST = "tsot_local_tracking_lost_total"
LOCAL_LIVE = "tsot_local_tracking_live"


def _collector(registry: Any, make: Any, name: str, doc: str, labels: list[str]) -> Any:
    """The collector ``name`` in ``registry``: made and registered, or the one already there."""
    try:
        return make(name, doc, labels, registry=registry)
    except ValueError:  # "Duplicated timeseries": django-prometheus (or a reload) made it
        found = getattr(registry, "_names_to_collectors", {}).get(name)
        if found is None:
            raise
        return found


class PrometheusListener:
    """Updates the collectors of one registry from the events of any number of storages."""

    _by_registry: ClassVar[dict[int, PrometheusListener]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: Any) -> None:
        pc: Any = require("prometheus_client", "prometheus-client", "prometheus", "metrics")
        self.registry = registry
        self._cache: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        c, h, g = pc.Counter, pc.Histogram, pc.Gauge
        self.get_total = _collector(
            registry, c, GET_TOTAL, "Total get requests on cache", ["backend"]
        )
        self.get_hits = _collector(registry, c, GET_HITS, "Total hits on cache", ["backend"])
        self.get_misses = _collector(registry, c, GET_MISSES, "Total misses on cache", ["backend"])
        self.get_fail = _collector(
            registry, c, GET_FAIL, "Total get request failures by cache", ["backend"]
        )
        op = ["storage", "operation"]
        self.seconds = _collector(
            registry, h, SECONDS, "Duration of tsot backend operations in seconds", op
        )
        self.errors = _collector(
            registry, c, ERRORS, "tsot backend operations that raised", [*op, "error"]
        )
        self.hits = _collector(registry, c, HITS, "Keys tsot reads found", op)
        self.misses = _collector(registry, c, MISSES, "Keys tsot reads did not find", op)
        self.breaker = _collector(
            registry, g, BREAKER, "1 while the fail_open breaker of a storage is open", ["storage"]
        )
        self.skipped = _collector(
            registry,
            c,
            SKIPPED,
            "Calls answered under fail_open without the backend",
            [*op, "reason"],
        )
        storage = ["storage"]
        self.local = {
            "hits": _collector(
                registry, c, LOCAL_HITS, "Keys the Redis local cache served", storage
            ),
            "invalidation": _collector(
                registry,
                c,
                LOCAL_INVALIDATIONS,
                "Keys the server told the Redis local cache changed",
                storage,
            ),
            "flush": _collector(
                registry, c, LOCAL_FLUSHES, "Times the Redis local cache was emptied", storage
            ),
            "lost": _collector(
                registry,
                c,
                LOCAL_LOST,
                "Times the Redis local cache's invalidation connection was lost",
                storage,
            ),
        }
        self.local_live = _collector(
            registry,
            g,
            LOCAL_LIVE,
            "1 while the Redis local cache's tracking is up (after its first change)",
            storage,
        )

    @classmethod
    def for_registry(cls, registry: Any = None) -> PrometheusListener:
        """The listener of ``registry`` (prometheus_client.REGISTRY when None), made once."""
        if registry is None:
            pc: Any = require("prometheus_client", "prometheus-client", "prometheus", "metrics")
            registry = pc.REGISTRY
        with cls._lock:
            found = cls._by_registry.get(id(registry))
            if found is None or found.registry is not registry:
                found = cls._by_registry[id(registry)] = cls(registry)
            return found

    def opened(self, source: Source, fail_open: bool) -> None:
        """Show the breaker of a fail_open storage as closed from the start."""
        if fail_open:
            self.breaker.labels(storage=source.name).set(0)

    def _children(self, source: Source, op: str) -> tuple[Any, ...]:
        """The labelled children an op event of ``source`` updates, looked up once."""
        key = (source.name, source.system, op)
        found = self._cache.get(key)
        if found is None:
            labels = {"storage": source.name, "operation": op}
            backend = {"backend": source.system}
            is_get = op == "get"
            found = (
                self.seconds.labels(**labels),
                self.hits.labels(**labels) if op in READS else None,
                self.misses.labels(**labels) if op in READS else None,
                self.get_total.labels(**backend) if is_get else None,
                self.get_hits.labels(**backend) if is_get else None,
                self.get_misses.labels(**backend) if is_get else None,
                self.get_fail.labels(**backend) if is_get else None,
            )
            self._cache[key] = found
        return found

    def __call__(self, event: Event) -> None:
        name = event.source.name
        if event.kind == "op":
            seconds, hits, misses, total, get_hits, get_misses, get_fail = self._children(
                event.source, event.operation
            )
            seconds.observe(event.duration)
            if event.error is not None:
                self.errors.labels(storage=name, operation=event.operation, error=event.error).inc()
                if total is not None:
                    total.inc()
                    get_fail.inc()
                return
            if total is not None:
                total.inc()
                (get_hits if event.hits else get_misses).inc()
            if hits is not None and event.hits is not None:
                if event.hits:
                    hits.inc(event.hits)
                if event.keys > event.hits:
                    misses.inc(event.keys - event.hits)
        elif event.kind == "breaker":
            self.breaker.labels(storage=name).set(1 if event.fields["state"] == "open" else 0)
        elif event.kind == "skip":
            reason = event.fields["reason"]
            self.skipped.labels(storage=name, operation=event.operation, reason=reason).inc()
        elif event.kind == "local":
            self._local(name, event.fields["reason"], event.fields["count"])

    def _local(self, name: str, reason: str, count: int) -> None:
        counter = self.local.get(reason)
        if counter is not None:
            counter.labels(storage=name).inc(count)
        if reason in ("lost", "restored"):
            self.local_live.labels(storage=name).set(1 if reason == "restored" else 0)
