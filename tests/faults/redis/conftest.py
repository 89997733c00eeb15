"""Redis fault fixtures: a server of the test's own behind a fault proxy, opened sync or async.

``opener`` is parametrized over the two APIs: ``opener(url, **options)`` returns a Storage, or
an AsyncStorage seen through SyncView (its coroutines run on one event loop thread), so each
test states a fault once and checks both twins.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.faults.proxy import FaultProxy
from tests.helpers import LoopThread, SyncView
from tests.servers.proc import Server, free_port, need_program, wait_for
from tests.servers.redis import SERVICE, start_single
from tsot import AsyncStorage, BackendUnavailable, Storage

# short timeouts and quick retries: every fault here costs well under a second
FAST = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retry_backoff": 0.01}


@dataclass
class Proxied:
    server: Server
    proxy: FaultProxy

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.proxy.port}/0"

    def raw(self) -> Any:
        """A redis-py client straight to the server (behind the proxy's back)."""
        return redis.Redis(host="127.0.0.1", port=self.server.port, socket_timeout=5)


@pytest.fixture
def proxied(tmp_path: Path, fault_proxy: Callable[[int], FaultProxy]) -> Iterator[Proxied]:
    server = start_single(tmp_path / "redis")
    try:
        yield Proxied(server, fault_proxy(server.port))
    finally:
        server.stop()


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(api: str) -> Iterator[Callable[..., Any]]:
    """``opener(url, **options)``: a Storage (sync) or a SyncView of an AsyncStorage (async),
    with a fresh namespace and the FAST options unless overridden."""
    loop = LoopThread() if api == "async" else None

    def open_store(url: str, **options: Any) -> Any:
        options = {"namespace": f"f{uuid.uuid4().hex[:8]}", **FAST, **options}
        if loop is None:
            return Storage.from_url(url, **options)
        return SyncView(AsyncStorage.from_url(url, **options), loop)

    yield open_store
    if loop is not None:
        loop.stop()


@dataclass
class ProxiedSentinel(Proxied):
    sentinel: Server

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{SERVICE}/0"


@pytest.fixture
def proxied_sentinel(tmp_path: Path, proxied: Proxied) -> Iterator[ProxiedSentinel]:
    """A primary behind a fault proxy and one Sentinel that monitors it *through* the proxy, so
    the address clients are given is the proxy's."""
    sdir = tmp_path / "sentinel"
    sdir.mkdir()
    port = free_port()
    conf = sdir / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {sdir}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {proxied.proxy.port} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 5000\n"
    )
    sentinel = Server(
        [need_program("redis-server"), str(conf), "--sentinel"],
        port,
        sdir / "sentinel.log",
        cwd=sdir,
    ).start()
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        wait_for(
            lambda: (
                int(client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1])
                == proxied.proxy.port
            ),
            15,
            "the Sentinel",
        )
        client.close()
        yield ProxiedSentinel(proxied.server, proxied.proxy, sentinel)
    finally:
        sentinel.stop()


def timed(call: Callable[[], Any]) -> tuple[float, BaseException]:
    """How long ``call`` took to raise BackendUnavailable (printed: ``pytest -s``)."""
    start = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        call()
    took = time.monotonic() - start
    print(f"\n{took:.2f}s: {type(info.value).__name__}: {info.value}")
    return took, info.value
