"""metrics=otel and tracing=true: OpenTelemetry metrics and one span per backend operation.

Only ``opentelemetry-api`` is imported (``tsot[otel]``); the application installs the SDK and
its exporters. Spans follow the database client conventions (``db.system.name``,
``db.operation.name``, ``server.address``) plus ``cache.hit`` and ``cache.item_size``. A span
is made when its operation ends, with the operation's start and end times, in the context of
the task or thread that called: its parent is the caller's current span, also for asyncio calls
that share one auto-pipelined connection.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, TypeVar

from .. import __version__
from ..errors import require
from ..events import READS, Event

_lock = threading.Lock()


def _api(module: str) -> Any:
    return require(f"opentelemetry.{module}", "opentelemetry-api", "otel", "metrics=otel/tracing")


def _attributes(event: Event) -> dict[str, Any]:
    source = event.source
    out: dict[str, Any] = {
        "db.system.name": source.system,
        "db.operation.name": event.operation,
        "tsot.storage": source.name,
    }
    if source.address is not None:
        out["server.address"] = source.address
        if source.port is not None:
            out["server.port"] = source.port
    if source.namespace:
        out["db.namespace"] = source.namespace
    return out


G = TypeVar("G", bound="_Global")


class _Global:
    """A listener made once per process, on the global provider (``shared``); a provider passed
    to the constructor makes another."""

    _shared: ClassVar[dict[type, Any]] = {}

    @classmethod
    def shared(cls: type[G]) -> G:
        """The listener on the global provider (a tracer's is resolved when a span is made)."""
        with _lock:
            made = _Global._shared.get(cls)
            if made is None:
                made = _Global._shared[cls] = cls()
            return made


class OtelTracing(_Global):
    """A CLIENT span per operation; errors recorded on it; fail-open skips as span events."""

    def __init__(self, tracer_provider: Any = None) -> None:
        trace = _api("trace")
        self._trace = trace
        self._tracer = trace.get_tracer("tsot", __version__, tracer_provider)

    def __call__(self, event: Event) -> None:
        trace = self._trace
        if event.kind != "op":
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(f"tsot.{event.kind}", {k: str(v) for k, v in event.fields.items()})
            return
        attributes = _attributes(event)
        if event.keys != 1:
            attributes["db.operation.batch.size"] = event.keys
        if event.error is None:
            if event.hits is not None and event.operation in READS:
                if event.keys == 1:
                    attributes["cache.hit"] = bool(event.hits)
                else:
                    attributes["tsot.hits"] = event.hits
            if event.bytes:
                attributes["cache.item_size"] = event.bytes
        else:
            attributes["error.type"] = event.error
        start = event.end_ns - int(event.duration * 1e9)
        span = self._tracer.start_span(
            event.operation, kind=trace.SpanKind.CLIENT, attributes=attributes, start_time=start
        )
        if event.exception is not None:
            span.record_exception(event.exception)
            span.set_status(trace.Status(trace.StatusCode.ERROR, event.error))
        span.end(end_time=event.end_ns)


class OtelMetrics(_Global):
    """``db.client.operation.duration`` (s), ``tsot.cache.hits`` / ``tsot.cache.misses``
    (keys), ``tsot.fail_open.skipped`` and ``tsot.breaker.transitions`` (calls), and the Redis
    local cache's ``tsot.local.hits``, ``.invalidations``, ``.flushes`` and ``.tracking``."""

    def __init__(self, meter_provider: Any = None) -> None:
        metrics = _api("metrics")
        meter = metrics.get_meter("tsot", __version__, meter_provider)
        self.duration = meter.create_histogram(
            "db.client.operation.duration", unit="s", description="Duration of tsot operations"
        )
        self.hits = meter.create_counter("tsot.cache.hits", unit="{key}", description="Keys found")
        self.misses = meter.create_counter(
            "tsot.cache.misses", unit="{key}", description="Keys not found"
        )
        self.skipped = meter.create_counter(
            "tsot.fail_open.skipped", unit="{call}", description="Calls skipped under fail_open"
        )
        self.transitions = meter.create_counter(
            "tsot.breaker.transitions", unit="{transition}", description="Breaker changes"
        )
        self.local = {
            "hits": meter.create_counter(
                "tsot.local.hits", unit="{key}", description="Keys the Redis local cache served"
            ),
            "invalidation": meter.create_counter(
                "tsot.local.invalidations",
                unit="{key}",
                description="Keys the server told the Redis local cache changed",
            ),
            "flush": meter.create_counter(
                "tsot.local.flushes", unit="{flush}", description="Redis local cache emptied"
            ),
        }
        self.tracking = meter.create_counter(
            "tsot.local.tracking",
            unit="{transition}",
            description="Redis local cache tracking lost or restored",
        )

    def __call__(self, event: Event) -> None:
        attributes = _attributes(event)
        if event.kind == "op":
            if event.error is not None:
                attributes["error.type"] = event.error
            self.duration.record(event.duration, attributes)
            if event.error is None and event.hits is not None:
                self.hits.add(event.hits, attributes)
                self.misses.add(event.keys - event.hits, attributes)
        elif event.kind == "skip":
            self.skipped.add(1, {**attributes, "tsot.reason": event.fields["reason"]})
        elif event.kind == "breaker":
            self.transitions.add(1, {**attributes, "tsot.state": event.fields["state"]})
        elif event.kind == "local":
            reason, count = event.fields["reason"], event.fields["count"]
            counter = self.local.get(reason)
            if counter is not None:
                counter.add(count, attributes)
            elif reason in ("lost", "restored"):
                self.tracking.add(1, {**attributes, "tsot.state": reason})
