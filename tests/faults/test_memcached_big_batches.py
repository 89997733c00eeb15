"""Many-key calls far bigger than the socket buffers: 250,000 keys in one get_many/set_many.

Before, the sync transport wrote a whole request before reading any reply: from about 150,000
keys of 100 B the server stopped reading (its replies filled both sides' buffers) while the
client was still writing, so the call stalled until ``timeout`` and the server was marked dead
(memcached.stream says when exactly). Every one of these failed with BackendUnavailable at the
default 1 s timeout; each now finishes in a few seconds, sync and asyncio, one server and three.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from flask import Flask
from flask_caching import Cache

from tests.helpers import LoopThread, SyncView
from tests.servers.memcached import start_memcached
from tests.servers.proc import Server
from tsot import AsyncStorage, Storage

pytestmark = [pytest.mark.server, pytest.mark.slow]

KEYS = 250_000
BOUND = 60.0  # seconds for the two calls (a few on an idle machine, CI runs beside them): a
# hang shows as BackendUnavailable and a dead server long before this
VALUE = b"v" * 100


@pytest.fixture(scope="module")
def big_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Server]]]:
    """One memcached of 256 MB and three of 128 MB: room for every key, nothing evicted."""
    log_dir = tmp_path_factory.mktemp("big")
    started: list[Server] = []
    try:
        started.append(start_memcached(log_dir, "big-1", "-m", "256"))
        for i in range(3):
            started.append(start_memcached(log_dir, f"big-3-{i}", "-m", "128"))
        yield {"one": started[:1], "three": started[1:]}
    finally:
        for server in started:
            server.stop()


def url_of(servers: list[Server]) -> str:
    return "memcached://" + ",".join(f"127.0.0.1:{s.port}" for s in servers)


@pytest.fixture(params=["one", "three"])
def big_url(request: pytest.FixtureRequest, big_servers: dict[str, list[Server]]) -> str:
    return url_of(big_servers[request.param])


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_quarter_million_keys_in_one_call(
    big_url: str, api: str, loop_thread: LoopThread
) -> None:
    ns = f"b{uuid.uuid4().hex[:8]}"
    core: Any = (
        Storage.from_url(big_url, namespace=ns)
        if api == "sync"
        else AsyncStorage.from_url(big_url, namespace=ns)
    )
    store = core if api == "sync" else SyncView(core, loop_thread)
    data = {f"key-{i}": VALUE for i in range(KEYS)}
    _, wrote = timed(lambda: store.store_many(data))
    got, read = timed(lambda: store.load_many(list(data)))
    assert got == data
    assert wrote + read < BOUND
    assert not core.backend.loc.cluster._dead  # no server was taken for dead


def test_django_get_many_of_200000_keys(big_servers: dict[str, list[Server]]) -> None:
    setting = {
        "default": {
            "BACKEND": "tsot_django.TsotCache",
            "LOCATION": url_of(big_servers["one"]),
            "KEY_PREFIX": uuid.uuid4().hex[:8],
        }
    }
    data = {f"key-{i}": VALUE for i in range(200_000)}
    with override_settings(CACHES=setting):
        cache = caches["default"]
        _, wrote = timed(lambda: cache.set_many(data))
        got, read = timed(lambda: cache.get_many(list(data)))
    assert got == data
    assert wrote + read < BOUND


def test_flask_get_many_of_200000_keys(big_servers: dict[str, list[Server]]) -> None:
    app = Flask(__name__)
    cache = Cache(
        app,
        config={
            "CACHE_TYPE": "tsot_flask.TsotCache",
            "CACHE_TSOT_URL": url_of(big_servers["one"]),
            "CACHE_KEY_PREFIX": f"fl{uuid.uuid4().hex[:8]}",
        },
    )
    data = {f"key-{i}": VALUE for i in range(200_000)}
    keys = list(data)
    with app.app_context():
        _, wrote = timed(lambda: cache.set_many(data))
        got, read = timed(lambda: cache.get_many(*keys))
    assert got == [VALUE] * len(keys)
    assert wrote + read < BOUND
