"""What the event hook costs on the cheapest call there is: a memory-backend ``load`` hit.

Run: ``.venv/bin/python -m benchmarks.events_quick [N]``. Prints nanoseconds per ``load`` for
storages without a listener (twice: the gap between the two is the hook's cost when off, which
is nothing by construction, plus noise), with one no-op listener, with ``metrics=stats``, with
``metrics=prometheus`` (a private registry) and with ``tracing`` (the OpenTelemetry API without
an SDK: no-op spans), each best of five interleaved rounds. No assertions: figures, not tests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from tsot import Storage

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
ROUNDS = 5


def _contenders() -> dict[str, Storage]:
    out = {
        "no listener (A)": Storage.new_imc(),
        "no listener (B)": Storage.new_imc(),
    }
    listened = Storage.new_imc()
    listened.listen(lambda event: None)
    out["one no-op listener"] = listened
    out["metrics=stats"] = Storage.new_imc(metrics="stats")
    try:
        import prometheus_client

        out["metrics=prometheus"] = Storage.new_imc(
            metrics="prometheus", prometheus_registry=prometheus_client.CollectorRegistry()
        )
    except ImportError:
        pass
    try:
        import opentelemetry.trace  # noqa: F401

        out["tracing (no SDK)"] = Storage.new_imc(tracing=True)
    except ImportError:
        pass
    for store in out.values():
        store.store("key", b"v" * 100)
    return out


def _timed(load: Callable[[Any], Any]) -> float:
    start = time.perf_counter()
    for _ in range(N):
        load("key")
    return (time.perf_counter() - start) / N * 1e9


def main() -> None:
    stores = _contenders()
    best = dict.fromkeys(stores, float("inf"))
    for _ in range(ROUNDS):  # interleaved: drift of the machine hits every contender alike
        for name, store in stores.items():
            best[name] = min(best[name], _timed(store.load))
    base = min(best["no listener (A)"], best["no listener (B)"])
    print(f"{'memory load hit, ns/op (best of 5)':<36}{'ns':>8}{'vs no listener':>16}")
    for name, ns in best.items():
        print(f"{name:<36}{ns:>8.0f}{(ns / base - 1) * 100:>+15.1f}%")


if __name__ == "__main__":
    main()
