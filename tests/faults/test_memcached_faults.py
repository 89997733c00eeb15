"""Memcached under injected faults (a TCP proxy in front of each real server), one server and
three, sync and asyncio: commands that are not idempotent run at most once, the others are
retried, error replies are errors on every try, and a server that failed comes back fully."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from flask import Flask
from flask_caching import Cache

from tests.faults.memcached_support import Rig, backend, make_rig
from tests.faults.proxy import FaultProxy
from tests.helpers import LoopThread
from tests.servers.memcached import start_memcached
from tests.servers.proc import Server
from tsot import BackendUnavailable, OutcomeUnknown, TsotError

pytestmark = pytest.mark.server

UNKNOWN = "outcome is unknown"


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> Iterator[LoopThread | None]:
    loop = LoopThread() if request.param == "async" else None
    yield loop
    if loop is not None:
        loop.stop()


@pytest.fixture(params=["one", "three"])
def rig(
    request: pytest.FixtureRequest,
    memcached_server: Server,
    memcached_servers3: list[Server],
    fault_proxy: Callable[[int], FaultProxy],
    mode: LoopThread | None,
) -> Rig:
    servers = [memcached_server] if request.param == "one" else memcached_servers3
    return make_rig(servers, fault_proxy, mode)


def taken(fault: object) -> None:
    assert getattr(fault, "hits", 0) == 1, "the fault was never injected: the test proves nothing"


# -- at most once ----------------------------------------------------------------------------


def test_incr_whose_reply_is_lost_is_not_sent_again(rig: Rig) -> None:
    """The server ran the incr, the reply was lost: 101 on the server, and the caller is told
    the outcome is unknown (it used to be sent again: 102)."""
    store = rig.open()
    store.store_int("n", 100)
    fault = rig.proxies[rig.owner(store, "n")].drop_reply(match=b"ma ")
    with pytest.raises(OutcomeUnknown, match=UNKNOWN):
        store.incr("n")
    taken(fault)
    assert store.load_int("n") == 101
    assert store.incr("n") == 102  # the next call opens a new connection


def test_incr_cut_mid_reply_is_not_sent_again(rig: Rig) -> None:
    store = rig.open()
    store.store_int("n", 100)
    fault = rig.proxies[rig.owner(store, "n")].cut_reply(after=3, match=b"ma ")
    with pytest.raises(OutcomeUnknown, match=UNKNOWN):
        store.incr("n", 5)
    taken(fault)
    assert store.load_int("n") == 105


def test_decr_by_compare_and_swap_is_not_sent_again(rig: Rig) -> None:
    """A decrement is a read then a compare-and-swap (memcached's decr stops at 0): a lost
    reply to the swap is an unknown outcome too."""
    store = rig.open()
    store.store_int("n", 100)
    fault = rig.proxies[rig.owner(store, "n")].drop_reply(match=b" MD ")
    with pytest.raises(OutcomeUnknown, match=UNKNOWN):
        store.decr("n", 3)
    taken(fault)
    assert store.load_int("n") == 97


def test_add_whose_reply_is_lost_never_reports_its_own_value_as_taken(rig: Rig) -> None:
    """A lock taken with add: the retried add used to answer False (the key holds the
    caller's own value), so the lock looked taken by someone else for its whole TTL."""
    store = rig.open()
    fault = rig.proxies[rig.owner(store, "lock")].drop_reply(match=b" ME")
    with pytest.raises(OutcomeUnknown, match=UNKNOWN):
        store.add("lock", "me", 60)
    taken(fault)
    assert store.load("lock") == "me"
    assert store.add("lock", "other") is False


def test_under_fail_open_a_lost_reply_is_still_an_unknown_outcome(rig: Rig) -> None:
    """fail_open turns outages into misses and skipped writes, but an add or incr that may have
    run is neither: it raises, so a lock is never reported taken by someone else while the key
    holds the caller's own value, and no counter value is made up."""
    store = rig.open(fail_open=True, probe_interval=0)
    fault = rig.proxies[rig.owner(store, "lock")].drop_reply(match=b" ME")
    with pytest.raises(OutcomeUnknown, match=UNKNOWN):
        store.add("lock", "me", 60)
    taken(fault)
    assert store.load("lock") == "me"
    store.store_int("n", 100)
    fault = rig.proxies[rig.owner(store, "n")].drop_reply(match=b"ma ")
    with pytest.raises(OutcomeUnknown, match=UNKNOWN):
        store.incr("n")
    taken(fault)
    assert store.load_int("n") == 101


# -- idempotent commands are retried ---------------------------------------------------------


def test_idempotent_commands_are_retried_after_a_lost_reply(rig: Rig) -> None:
    store = rig.open()
    store.store("warm", 1)  # generation and item size known: the fast paths are used

    def lose(key: str, verb: bytes) -> object:
        return rig.proxies[rig.owner(store, key)].drop_reply(match=verb + b" ")

    fault = lose("a", b"ms")
    store.store("a", "one")
    taken(fault)
    assert store.load("a") == "one"
    fault = lose("a", b"mg")
    assert store.load("a") == "one"
    taken(fault)
    fault = lose("a", b"ms")
    assert store.replace("a", "two") is True  # never creates the key: sent again
    taken(fault)
    assert store.load("a") == "two"
    fault = lose("absent", b"ms")
    assert store.replace("absent", "x") is False
    taken(fault)
    assert not store.exists("absent")
    fault = lose("a", b"md")
    store.delete("a")  # True or False: the first try deleted it, the retry found nothing
    taken(fault)
    assert store.load("a") is None
    store.store("t", 1)
    fault = lose("t", b"mg")
    assert store.expire("t", 100) is True
    taken(fault)
    assert 90 < (store.ttl("t") or 0) <= 100


def test_many_key_calls_are_retried_after_a_lost_or_cut_reply(rig: Rig) -> None:
    store = rig.open()
    data = {f"k{i}": i for i in range(200)}
    store.store_many({"warm": 1})
    last = rig.proxies[-1]
    fault = last.drop_reply(match=b"ms ")
    store.store_many(data)
    taken(fault)
    fault = last.cut_reply(after=100, match=b"mg ")
    assert store.load_many(list(data)) == data
    taken(fault)


# -- errors are errors -----------------------------------------------------------------------


@pytest.fixture
def full_rig(
    tmp_path: Path, fault_proxy: Callable[[int], FaultProxy], mode: LoopThread | None
) -> Iterator[Rig]:
    """One memcached of 2 MB that refuses writes when full (-M) instead of evicting."""
    server = start_memcached(tmp_path, "full", "-m", "2", "-M")
    try:
        yield make_rig([server], fault_proxy, mode)
    finally:
        server.stop()


def test_a_refused_write_raises_on_the_first_try_and_on_the_retry(full_rig: Rig) -> None:
    store = full_rig.open()
    big = "x" * 100_000
    with pytest.raises(TsotError, match="out of memory"):  # fill it until it refuses
        for i in range(100):
            store.store(f"fill{i}", big)
    with pytest.raises(TsotError, match="out of memory"):
        store.store("one-more", big)
    fault = full_rig.proxies[0].drop_reply(match=b"ms ")
    with pytest.raises(TsotError, match="out of memory"):  # the retry's reply is an error too
        store.store("one-more", big)
    taken(fault)
    fault = full_rig.proxies[0].drop_reply(match=b"ms ")
    with pytest.raises(TsotError, match="out of memory"):
        store.store_many({f"m{i}": big for i in range(5)})
    taken(fault)
    assert store.load("one-more") is None


# -- timeouts --------------------------------------------------------------------------------


def test_a_timeout_is_not_retried_on_its_server(rig: Rig) -> None:
    """A reply that never comes costs one ``timeout``: an incr run by the server but never
    answered is not sent again (101), and the server is then skipped."""
    store = rig.open(timeout=0.3, dead_timeout=60)
    store.store_int("n", 100)
    owner = rig.owner(store, "n")
    proxy = rig.proxies[owner]
    fault = proxy.blackhole(count=None, match=b"ma ")  # every incr request it sees
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown, match=UNKNOWN):
        store.incr("n")
    elapsed = time.monotonic() - started
    taken(fault)  # sent once: not again on a new connection
    assert 0.3 <= elapsed < 0.3 + 1.5
    assert backend(store).loc.cluster.is_dead(owner)
    proxy.clear()
    rig.clock.advance(61)  # dead_timeout is over: asked again
    assert store.load_int("n") == 101
    assert not backend(store).loc.cluster._dead  # and known alive again


# -- a server that failed comes back fully ---------------------------------------------------


def test_the_many_key_fast_path_returns_after_a_transient_failure(rig: Rig) -> None:
    """Cluster.mark_alive was never called: after one failure the many-key fast path stayed
    off for the life of the process."""
    store = rig.open(retries=0, dead_timeout=5)
    keys = [f"k{i}" for i in range(30)]
    store.store_many(dict.fromkeys(keys, 1))
    b = backend(store)
    wire = [f"{store.namespace}:{k}".encode() for k in keys]
    assert b.batch(wire) is not None
    proxy = rig.proxies[-1]
    proxy.refuse(None)
    proxy.cut_all()  # the last server's connections are reset, new ones refused
    for _ in range(2):  # one server: BackendUnavailable; three: the others answer
        with contextlib.suppress(BackendUnavailable):
            store.load_many(keys)
    assert b.loc.cluster.is_dead(len(rig.servers) - 1)
    assert b.batch(wire) is None  # the fast path is off while a server is skipped
    proxy.clear()
    rig.clock.advance(6)  # dead_timeout is over: the next call probes the server
    assert store.load_many(keys) == dict.fromkeys(keys, 1)
    assert not b.loc.cluster._dead
    assert b.batch(wire) is not None  # the fast path is back


def test_a_reply_that_keeps_coming_is_not_cut_by_the_timeout(rig: Rig) -> None:
    """``timeout`` bounds a wait without any byte, not a whole reply: a get_many whose reply
    trickles in over several timeouts completes (asyncio used to fail it after ``timeout``
    counted from the write, so a big batch on a busy server timed out while answered)."""
    store = rig.open(timeout=0.5, dead_timeout=60)
    data = {f"k{i}": "v" * 100 for i in range(6000)}
    store.store_many(data)
    for proxy in rig.proxies:  # every reply chunk is held 0.15 s
        proxy.delay(0.15, count=None, match=b"mg ")
    started = time.monotonic()
    assert store.load_many(list(data)) == data
    assert time.monotonic() - started > 0.5  # it took longer than one timeout in all
    assert not backend(store).loc.cluster._dead
    for proxy in rig.proxies:
        proxy.clear()


# -- through Django and Flask ----------------------------------------------------------------


def test_django_add_lock_and_incr_under_a_lost_reply(
    memcached_server: Server, fault_proxy: Callable[[int], FaultProxy], loop_thread: LoopThread
) -> None:
    """Django's ``cache.add`` lock (sync and ``aadd``) and ``incr``: a lost reply raises
    BackendUnavailable, the lock holds the caller's own value, the counter ran once."""
    proxy = fault_proxy(memcached_server.port)
    setting = {
        "default": {
            "BACKEND": "tsot_django.TsotCache",
            "LOCATION": f"memcached://127.0.0.1:{proxy.port}",
            "KEY_PREFIX": f"dj{time.monotonic_ns()}",
        }
    }
    with override_settings(CACHES=setting):
        cache = caches["default"]
        fault = proxy.drop_reply(match=b" ME")
        with pytest.raises(OutcomeUnknown, match=UNKNOWN):
            cache.add("lock", "me", 60)
        taken(fault)
        assert cache.get("lock") == "me"
        fault = proxy.drop_reply(match=b" ME")
        with pytest.raises(OutcomeUnknown, match=UNKNOWN):
            loop_thread.run(cache.aadd("alock", "me", 60))
        taken(fault)
        assert cache.get("alock") == "me"
        cache.set("n", 100)
        fault = proxy.drop_reply(match=b"ma ")
        with pytest.raises(OutcomeUnknown, match=UNKNOWN):
            cache.incr("n")
        taken(fault)
        assert cache.get("n") == 101


def test_flask_add_and_inc_under_a_lost_reply(
    memcached_server: Server, fault_proxy: Callable[[int], FaultProxy]
) -> None:
    proxy = fault_proxy(memcached_server.port)
    app = Flask(__name__)
    cache = Cache(
        app,
        config={
            "CACHE_TYPE": "tsot_flask.TsotCache",
            "CACHE_TSOT_URL": f"memcached://127.0.0.1:{proxy.port}",
            "CACHE_KEY_PREFIX": f"fl{time.monotonic_ns()}",
        },
    )
    with app.app_context():
        fault = proxy.drop_reply(match=b" ME")
        with pytest.raises(OutcomeUnknown, match=UNKNOWN):
            cache.add("lock", "me")
        taken(fault)
        assert cache.get("lock") == "me"
        cache.set("n", 100)
        fault = proxy.drop_reply(match=b"ma ")
        with pytest.raises(OutcomeUnknown, match=UNKNOWN):
            cache.cache.inc("n")
        taken(fault)
        assert cache.get("n") == 101


@pytest.mark.parametrize("framework", ["django", "flask"])
def test_the_many_key_fast_path_returns_through_django_and_flask(
    framework: str, memcached_servers3: list[Server], fault_proxy: Callable[[int], FaultProxy]
) -> None:
    """Django's get_many and Flask's get_many after one server failed and came back: the
    cluster forgets the failure and the many-key fast path is used again."""
    rig = make_rig(memcached_servers3, fault_proxy, None)
    url = rig.url + "?retries=0&dead_timeout=5"
    keys = [f"k{i}" for i in range(30)]
    with contextlib.ExitStack() as stack:
        if framework == "django":
            stack.enter_context(
                override_settings(
                    CACHES={
                        "default": {
                            "BACKEND": "tsot_django.TsotCache",
                            "LOCATION": url,
                            "KEY_PREFIX": f"dj{time.monotonic_ns()}",
                        }
                    }
                )
            )
            cache: Any = caches["default"]
            storage, set_many, get_many = cache.storage, cache.set_many, cache.get_many
            wire = [storage._keys.make(cache.tsot_key(k, None)) for k in keys]
        else:
            app = Flask(__name__)
            flask_cache = Cache(
                app,
                config={
                    "CACHE_TYPE": "tsot_flask.TsotCache",
                    "CACHE_TSOT_URL": url,
                    "CACHE_KEY_PREFIX": f"fl{time.monotonic_ns()}",
                },
            )
            stack.enter_context(app.app_context())
            storage, set_many = flask_cache.cache.storage, flask_cache.set_many

            def get_many(keys: list[str]) -> dict[str, Any]:
                return dict(zip(keys, flask_cache.get_many(*keys), strict=True))

            wire = [storage._keys.make(k) for k in keys]
        b = storage.backend
        b.loc.cluster.clock = rig.clock
        set_many(dict.fromkeys(keys, 1))
        assert b.batch(wire) is not None
        rig.proxies[2].refuse(None)
        rig.proxies[2].cut_all()
        get_many(keys)  # the third server fails; the others answer
        assert b.loc.cluster.is_dead(2)
        rig.proxies[2].clear()
        rig.clock.advance(6)
        assert get_many(keys) == dict.fromkeys(keys, 1)
        assert not b.loc.cluster._dead
        assert b.batch(wire) is not None
