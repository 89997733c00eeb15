"""Helpers of the memcached fault tests: stores behind fault proxies, sync or asyncio."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.faults.proxy import FaultProxy
from tests.helpers import FakeClock, LoopThread, SyncView
from tests.servers.proc import Server
from tsot import AsyncStorage, Storage


def backend(store: Any) -> Any:
    """The memcached backend of a Storage or of a SyncView over an AsyncStorage (under
    fail_open, the backend inside the guard)."""
    found = store.backend if isinstance(store, Storage) else store._target.backend
    return getattr(found, "inner", found)


@dataclass
class Rig:
    """Memcached servers, a fault proxy in front of each, and a way to open stores on them."""

    servers: list[Server]
    proxies: list[FaultProxy]
    loop: LoopThread | None
    clock: FakeClock = field(default_factory=FakeClock)

    @property
    def url(self) -> str:
        return "memcached://" + ",".join(f"127.0.0.1:{p.port}" for p in self.proxies)

    def open(self, **options: Any) -> Any:
        """A Storage (sync) or a SyncView over an AsyncStorage, in a namespace of its own, on
        a location whose dead-server clock is ``clock``."""
        ns = f"f{uuid.uuid4().hex[:10]}"
        if self.loop is None:
            store: Any = Storage.from_url(self.url, namespace=ns, **options)
        else:
            store = SyncView(AsyncStorage.from_url(self.url, namespace=ns, **options), self.loop)
        backend(store).loc.cluster.clock = self.clock
        return store

    def owner(self, store: Any, key: str) -> int:
        """The index of the server (and proxy) that holds ``key`` of ``store`` now."""
        cluster = backend(store).loc.cluster
        return int(cluster.route(f"{store.namespace}:{key}".encode(), cluster.live()))


def make_rig(
    servers: list[Server], fault_proxy: Callable[[int], FaultProxy], loop: LoopThread | None
) -> Rig:
    return Rig(servers, [fault_proxy(s.port) for s in servers], loop)
