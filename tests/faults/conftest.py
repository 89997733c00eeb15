"""Fixtures of the fault-injection suite: a TCP proxy in front of a real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.faults.proxy import FaultProxy


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[int], FaultProxy]]:
    """``fault_proxy(port)``: a started FaultProxy in front of 127.0.0.1:port, stopped after
    the test (every socket closed, every thread joined)."""
    proxies: list[FaultProxy] = []

    def make(upstream_port: int) -> FaultProxy:
        proxy = FaultProxy(upstream_port).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
