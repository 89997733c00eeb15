"""One OpenTelemetry SDK per test process (the global providers can be set only once), with
in-memory exporters the tests read and reset; a Redis server each test may stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.proc import Server
from tests.servers.redis import start_single

_providers: dict[str, Any] = {}


def _otel() -> dict[str, Any]:
    if not _providers:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(tracer_provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _providers.update(spans=spans, reader=reader, tracer=trace.get_tracer("tests"))
    return _providers


@pytest.fixture
def otel() -> Iterator[dict[str, Any]]:
    """``spans`` (InMemorySpanExporter, cleared), ``reader`` (InMemoryMetricReader), ``tracer``."""
    found = _otel()
    found["spans"].clear()
    yield found
    found["spans"].clear()


@pytest.fixture
def redis_to_stop(tmp_path: Path) -> Iterator[Server]:
    """A Redis server of this test alone: the test may kill it (an outage) and start it again."""
    server = start_single(tmp_path / "redis")
    yield server
    server.stop()
