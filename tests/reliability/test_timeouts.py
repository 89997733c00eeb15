"""Timeouts are on by default: a server that never answers costs one timeout, never a hang."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import Silent, Unreachable
from tsot import AsyncStorage, Storage
from tsot.errors import BackendUnavailable

pytestmark = pytest.mark.server

DOCS = Path(__file__).resolve().parents[2] / "docs"
SLACK = 1.5
"""Seconds a call may run past its timeout on a loaded 2-core CI machine: a bound on hangs,
not a benchmark."""

# (scheme, option bounding the connect, option bounding each reply) per network backend
NETWORK = {
    "redis": ("socket_connect_timeout", "socket_timeout"),
    "memcached": ("connect_timeout", "timeout"),
}


def default(scheme: str, option: str) -> float:
    """The default of ``option`` in the backend's option table (the code's own value)."""
    from tsot.config import backend_class

    (spec,) = [o for o in backend_class(scheme).OPTIONS if o.name == option]
    value = spec.default
    assert isinstance(value, float)
    return value


def documented(doc: Path, option: str) -> float:
    """The default a docs table gives ``option``: the first `value` cell after its name."""
    match = re.search(rf"^\|[^\n]*`{option}` \| `([^`]+)`", doc.read_text(), re.MULTILINE)
    assert match, f"{doc.name} has no table row for {option}"
    return float(match.group(1))


def url(scheme: str, port: int) -> str:
    return f"{scheme}://127.0.0.1:{port}" + ("/0" if scheme == "redis" else "")


@pytest.mark.parametrize("scheme", sorted(NETWORK))
def test_documented_defaults_are_the_ones_in_force(scheme: str) -> None:
    for option in NETWORK[scheme]:
        value = default(scheme, option)
        assert value is not None and 0 < value <= 5, f"{option} must be on by default"
        assert documented(DOCS / "backends" / f"{scheme}.md", option) == value
        assert documented(DOCS / "reliability.md", option) == value
    # what reaches the driver is that value when nothing is configured
    if scheme == "redis":
        from tsot.backends.redis import RedisBackend
        from tsot.config import parse_options, parse_url

        cfg = RedisBackend.config(
            parse_url("redis://127.0.0.1:1/0"), parse_options({}, RedisBackend.OPTIONS, "test")
        )
        assert cfg.connection["socket_timeout"] == default(scheme, "socket_timeout")
        assert cfg.connection["socket_connect_timeout"] == default(scheme, "socket_connect_timeout")
        assert cfg.sentinel["socket_timeout"] == default(scheme, "socket_timeout")
    else:
        store = Storage.from_url("memcached://127.0.0.1:1", namespace="defaults")
        backend: Any = store.backend
        (pool,) = backend.loc.sync.pools  # pymemcache's PooledClient
        assert pool.timeout == default(scheme, "timeout")
        assert pool.connect_timeout == default(scheme, "connect_timeout")
        assert backend.loc.aio.timeout == default(scheme, "timeout")
        assert backend.loc.aio.connect_timeout == default(scheme, "connect_timeout")


def timed(call: Any) -> tuple[float, BackendUnavailable]:
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        call()
    return time.monotonic() - started, info.value


def run_load(scheme: str, port: int, mode: str) -> tuple[float, BackendUnavailable]:
    """One ``load`` with default options against the port, sync or on a fresh event loop."""
    if mode == "sync":
        store = Storage.from_url(url(scheme, port), namespace="hang")
        return timed(lambda: store.load("k"))

    async def main() -> None:
        await AsyncStorage.from_url(url(scheme, port), namespace="hang").load("k")

    return timed(lambda: asyncio.run(main()))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("scheme", sorted(NETWORK))
def test_a_server_that_never_answers_costs_one_read_timeout(
    silent: Silent, scheme: str, mode: str
) -> None:
    limit = default(scheme, NETWORK[scheme][1])
    elapsed, error = run_load(scheme, silent.port, mode)
    assert limit * 0.9 <= elapsed <= limit + SLACK, (elapsed, error)
    assert re.search(r"[Tt]imeout|did not answer", str(error)), error
    print(f"\n{scheme} {mode}: silent server, default read timeout {limit} s: {elapsed:.3f} s")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("scheme", sorted(NETWORK))
def test_a_host_that_never_accepts_costs_one_connect_timeout(
    unreachable: Unreachable, scheme: str, mode: str
) -> None:
    limit = default(scheme, NETWORK[scheme][0])
    elapsed, error = run_load(scheme, unreachable.port, mode)
    assert limit * 0.9 <= elapsed <= limit + SLACK, (elapsed, error)
    assert re.search(r"[Cc]onnect", str(error)), error  # the message names the connect step
    print(f"\n{scheme} {mode}: no SYN-ACK, default connect timeout {limit} s: {elapsed:.3f} s")
