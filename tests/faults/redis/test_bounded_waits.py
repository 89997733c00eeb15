"""Timeouts are never retried: a stalled server costs one socket_timeout per call, whatever the
command (Redis, one server behind a proxy that swallows replies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.proxy import Kind
from tests.faults.redis.conftest import Proxied, timed
from tsot import OutcomeUnknown

pytestmark = pytest.mark.server

TIMEOUT = 1.0
BOUND = TIMEOUT * 1.9  # one timeout plus scheduling on a busy machine; two would be 2.0


@pytest.mark.parametrize("call", ["load", "store", "incr", "load_many", "store_many"])
def test_a_stalled_server_costs_one_timeout(
    proxied: Proxied, opener: Callable[..., Any], call: str
) -> None:
    store = opener(proxied.url, socket_timeout=TIMEOUT, retries=3)
    store.store_int("n", 1)
    fault = proxied.proxy.blackhole()
    took, error = timed(
        {
            "load": lambda: store.load("n"),
            "store": lambda: store.store("k", "v"),
            "incr": lambda: store.incr("n"),
            "load_many": lambda: store.load_many(["n", "k"]),
            "store_many": lambda: store.store_many({"a": 1, "b": 2}, ttl=30),
        }[call]
    )
    assert TIMEOUT * 0.9 <= took < BOUND, took
    assert "imeout" in str(error)
    # an incr that timed out may have run (it did, here): the caller is told so
    assert isinstance(error, OutcomeUnknown) == (call == "incr")
    assert fault.hits == 1  # sent once: not retried
    assert sum(c.faults.count(Kind.BLACKHOLE) for c in proxied.proxy.connections) == 1
