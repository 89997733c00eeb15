"""Listeners of tsot.events that export elsewhere: Prometheus, OpenTelemetry metrics and traces.

``attach`` wires the ones a storage's ``metrics`` and ``tracing`` options name; each exporter
module imports its library only when used (``tsot[prometheus]``, ``tsot[otel]``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..events import attach as attach_hub


def attach(storage: Any, core: Mapping[str, Any]) -> None:
    """Attach to ``storage`` the listeners its options name."""
    metrics = core["metrics"] or ()
    if "stats" in metrics:  # the counters of stats() only: instrumented, no listener
        attach_hub(storage, None, inspect.iscoroutinefunction(storage.load))
    if "prometheus" in metrics:
        from .prometheus import PrometheusListener

        listener = PrometheusListener.for_registry(core["prometheus_registry"])
        storage.listen(listener)
        listener.opened(storage._hub.source, fail_open=core["fail_open"])
    if "otel" in metrics:
        from .otel import OtelMetrics

        storage.listen(OtelMetrics.shared())
    if core["tracing"]:
        from .otel import OtelTracing

        storage.listen(OtelTracing.shared())
