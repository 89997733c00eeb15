"""A frozen memcached (SIGSTOP) under an incr, two servers, through the core API (sync and
asyncio), Django (sync and async) and Flask.

Before: the incr timed out on the owner, which was marked dead, and was run again on the other
server: it answered 1 (a new counter there), and the owner, once resumed, also applied the
increment it had queued. Now the caller gets BackendUnavailable saying the outcome is unknown,
no counter appears anywhere else, and the owner holds 1001 when it is back.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from flask import Flask
from flask_caching import Cache

from tests.helpers import FakeClock, LoopThread, SyncView
from tests.servers.memcached import own_servers
from tests.servers.proc import Server
from tsot import AsyncStorage, BackendUnavailable, Storage

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc"),
]

UNKNOWN = "outcome is unknown"
OPTIONS = "timeout=0.3&dead_timeout=10"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[list[Server]]:
    with own_servers(tmp_path, 2, "pair") as servers:
        yield servers


def freeze(server: Server) -> None:
    """SIGSTOP ``server`` and wait until every thread of it is stopped: the signal is
    delivered asynchronously, and a worker thread already running answers a request or two
    first on a busy machine."""
    server.signal(signal.SIGSTOP)
    tasks = Path(f"/proc/{server.pid}/task")
    deadline = time.monotonic() + 5
    while not all("T (stopped)" in (t / "status").read_text() for t in tasks.iterdir()):
        assert time.monotonic() < deadline, "memcached did not stop within 5 s"
        time.sleep(0.001)


def eventually(check: Callable[[], bool], what: str) -> None:
    """Require ``check()`` within 5 s (a resumed server runs what it had queued on its own
    schedule, concurrently with the new connection's requests)."""
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within 5 s"
        time.sleep(0.01)


@dataclass
class Api:
    """One way to reach the counter: incr, read, write, and the Storage underneath."""

    incr: Callable[[str], Any]
    get: Callable[[str], Any]
    put: Callable[[str, int], Any]
    storage: Storage | AsyncStorage
    storage_key: Callable[[str], str]


def core_sync(url: str, loop: LoopThread) -> Iterator[Api]:
    store = Storage.from_url(url, namespace=f"s{uuid.uuid4().hex[:8]}")
    yield Api(store.incr, store.load_int, store.store_int, store, str)


def core_async(url: str, loop: LoopThread) -> Iterator[Api]:
    target = AsyncStorage.from_url(url, namespace=f"a{uuid.uuid4().hex[:8]}")
    view: Any = SyncView(target, loop)
    yield Api(view.incr, view.load_int, view.store_int, target, str)


def _django_cache(url: str) -> Iterator[Any]:
    setting = {
        "default": {
            "BACKEND": "tsot_django.TsotCache",
            "LOCATION": url,
            "KEY_PREFIX": uuid.uuid4().hex[:8],
        }
    }
    with override_settings(CACHES=setting):
        yield caches["default"]


def django_sync(url: str, loop: LoopThread) -> Iterator[Api]:
    for cache in _django_cache(url):
        yield Api(
            cache.incr, cache.get, cache.set, cache.storage, lambda k, c=cache: c.tsot_key(k, None)
        )


def django_async(url: str, loop: LoopThread) -> Iterator[Api]:
    for cache in _django_cache(url):
        yield Api(
            lambda k, c=cache: loop.run(c.aincr(k)),
            lambda k, c=cache: loop.run(c.aget(k)),
            lambda k, v, c=cache: loop.run(c.aset(k, v)),
            cache.storage,
            lambda k, c=cache: c.tsot_key(k, None),
        )


def flask(url: str, loop: LoopThread) -> Iterator[Api]:
    app = Flask(__name__)
    cache = Cache(
        app,
        config={
            "CACHE_TYPE": "tsot_flask.TsotCache",
            "CACHE_TSOT_URL": url,
            "CACHE_KEY_PREFIX": f"fl{uuid.uuid4().hex[:8]}",
        },
    )
    with app.app_context():
        yield Api(cache.cache.inc, cache.get, cache.set, cache.cache.storage, str)


@pytest.mark.parametrize("api", [core_sync, core_async, django_sync, django_async, flask])
def test_incr_on_a_frozen_server_is_not_run_on_another(
    pair: list[Server], api: Callable[[str, LoopThread], Iterator[Api]], loop_thread: LoopThread
) -> None:
    url = "memcached://" + ",".join(f"127.0.0.1:{s.port}" for s in pair) + "?" + OPTIONS
    for a in api(url, loop_thread):
        cluster = a.storage.backend.loc.cluster  # type: ignore[attr-defined]
        clock = FakeClock()
        cluster.clock = clock
        keys = a.storage._keys  # type: ignore[union-attr]
        names = [f"c{i}" for i in range(20)]
        owners = {n: cluster.route(keys.make(a.storage_key(n)), [0, 1]) for n in names}
        for n in names:
            a.put(n, 1000)
        key = next(n for n in names if owners[n] == 0)
        freeze(pair[0])
        try:
            with pytest.raises(BackendUnavailable, match=UNKNOWN):
                a.incr(key)
            assert cluster.is_dead(0)
            assert a.get(key) is None  # now routed to the other server: no counter made there
            other = next(n for n in names if owners[n] == 1)
            assert a.incr(other) == 1001  # the other server's counters work meanwhile
        finally:
            pair[0].signal(signal.SIGCONT)
        clock.advance(11)  # dead_timeout is over: the owner is asked again
        eventually(lambda a=a, key=key: a.get(key) != 1000, "the queued incr")
        assert a.get(key) == 1001  # it ran the one increment it received, once
        assert not cluster._dead
