"""``local_cache=true`` on real servers (Redis 7 and Valkey 9, sync and asyncio): each coherence
rule of docs/backends/redis.md#local-cache with a test.

Invalidations arrive on another connection, so a test waits for them (``until``, bounded); it
never sleeps a fixed time and never asserts on durations. Deadlines run on an injected clock.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.faults.proxy import FaultProxy
from tests.helpers import FakeClock, LoopThread, SyncView, until
from tests.servers.proc import Server
from tests.servers.redis import PROGRAMS, Program, start_single
from tsot import AsyncStorage, Storage
from tsot.backends.redis.cached import close_all
from tsot.errors import BackendUnavailable, ConfigurationError
from tsot.events import Event

pytestmark = pytest.mark.server


@pytest.fixture(autouse=True)
def _stop_listeners() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture(params=PROGRAMS, ids=[p.name for p in PROGRAMS])
def program(request: pytest.FixtureRequest) -> Program:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server(program: Program, request: pytest.FixtureRequest) -> Server:
    """The session's server of ``program`` (tests here never break it)."""
    return request.getfixturevalue(f"{program.name}_server")  # type: ignore[no-any-return]


@pytest.fixture
def own_server(program: Program, tmp_path: Path) -> Iterator[Server]:
    """A server for one test, free to flush, kill and restart."""
    srv = start_single(tmp_path / "srv", program=program)
    yield srv
    srv.stop()


@pytest.fixture(params=["sync", "async"])
def opener(request: pytest.FixtureRequest, loop_thread: LoopThread) -> Callable[..., Any]:
    """Open a Storage, or an AsyncStorage driven through a SyncView, with the local cache on."""

    def open_(url: str, namespace: str, **options: Any) -> Any:
        options.setdefault("local_cache", True)
        if request.param == "sync":
            return Storage.from_url(url, namespace=namespace, secret=None, **options)
        aio = AsyncStorage.from_url(url, namespace=namespace, secret=None, **options)
        return SyncView(aio, loop_thread)

    return open_


def url_of(program: Program, srv: Server) -> str:
    return f"{program.name}://127.0.0.1:{srv.port}/0"


def raw(srv: Server) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=5)


def live(store: Any) -> Any:
    """Wait until the store's tracking is up; return the store."""
    until(lambda: store.stats()["local_live"] == 1, "tracking up")
    return store


def stat(store: Any, name: str) -> int:
    return store.stats()[f"local_{name}"]  # type: ignore[no-any-return]


def served_locally(store: Any, key: str) -> Any:
    """``load(key)``, requiring that it came from the local table."""
    before = stat(store, "hits")
    value = store.load(key)
    assert stat(store, "hits") == before + 1, f"{key!r} was not served locally"
    return value


def write(store: Any, key: str, value: Any, **kw: Any) -> None:
    """``store(key, value)``, then wait for the server's invalidation of that write: it drops
    whatever was kept for the key, so a test that wants a local hit reads after it."""
    before = stat(store, "invalidations")
    store.store(key, value, **kw)
    until(lambda: stat(store, "invalidations") > before, f"the invalidation of {key!r}")


def ns() -> str:
    return f"lc{uuid.uuid4().hex[:8]}"


# -- the basic promise ----------------------------------------------------------------------------


def test_hot_reads_are_served_locally(
    opener: Callable[..., Any], program: Program, server: Server
) -> None:
    store = live(opener(url_of(program, server), ns()))
    write(store, "k", {"a": 1})
    assert store.load("k") == {"a": 1}  # from the server, kept
    assert served_locally(store, "k") == {"a": 1}
    assert store.load_many(["k", "missing"]) == {"k": {"a": 1}}
    assert stat(store, "entries") == 1


def test_another_clients_write_is_seen(
    opener: Callable[..., Any], program: Program, server: Server
) -> None:
    space = ns()
    store = live(opener(url_of(program, server), space))
    write(store, "k", "v1")
    assert store.load("k") == "v1"
    assert served_locally(store, "k") == "v1"
    raw(server).set(f"{space}:k".encode(), b"sv2")  # tsot's str format: "s" + UTF-8
    until(lambda: store.load("k") == "v2", "the other client's value")
    assert stat(store, "entries") in (0, 1)


def test_resp3_data_connections(
    opener: Callable[..., Any], program: Program, server: Server
) -> None:
    """The listener speaks RESP2 pub/sub whatever the data connections speak."""
    space = ns()
    store = live(opener(url_of(program, server), space, protocol=3))
    write(store, "k", "v1")
    assert store.load("k") == "v1"
    assert served_locally(store, "k") == "v1"
    raw(server).set(f"{space}:k".encode(), b"sv2")
    until(lambda: store.load("k") == "v2", "the other client's value")


def test_sync_and_async_share_one_table(
    loop_thread: LoopThread, program: Program, server: Server
) -> None:
    space = ns()
    url = url_of(program, server)
    sync = live(Storage.from_url(url, namespace=space, secret=None, local_cache=True))
    aio = SyncView(
        AsyncStorage.from_url(url, namespace=space, secret=None, local_cache=True), loop_thread
    )
    write(sync, "k", "v")
    assert aio.load("k") == "v"  # the asyncio read fills the one table ...
    assert served_locally(sync, "k") == "v"  # ... that the sync API reads
    assert sync.stats()["local_hits"] == aio.stats()["local_hits"]


def test_own_writes_are_read_back_at_once(
    opener: Callable[..., Any], program: Program, server: Server
) -> None:
    store = live(opener(url_of(program, server), ns()))
    for i in range(50):
        store.store("k", i)
        assert store.load("k") == i
        assert store.load("k") == i
    store.store("n", 1)
    assert store.load("n") == 1
    assert store.incr("n") == 2
    assert store.load("n") == 2
    assert store.add("a", "x") is True
    assert store.load("a") == "x"
    store.delete("a")
    assert store.load("a") is None
    store.store_many({"m1": 1, "m2": 2})
    assert store.load_many(["m1", "m2"]) == {"m1": 1, "m2": 2}
    store.store_many({"m1": 3, "m2": 4})
    assert store.load_many(["m1", "m2"]) == {"m1": 3, "m2": 4}
    store.delete_many(["m1"])
    assert store.load("m1") is None
    store.clear()
    assert store.load("m2") is None


def test_local_ttl_and_the_server_ttl_bound_local_entries(
    opener: Callable[..., Any], program: Program, server: Server
) -> None:
    clock = FakeClock()
    store = live(opener(url_of(program, server), ns(), local_clock=clock, local_ttl=30))
    write(store, "server-ttl", "v", ttl=10)
    write(store, "capped", "v")
    assert store.load("server-ttl") == "v"
    assert store.load("capped") == "v"
    clock.advance(9.9)
    assert served_locally(store, "server-ttl") == "v"
    clock.advance(0.2)  # past the server's TTL on our clock: the server is asked again
    hits = stat(store, "hits")
    assert store.load("server-ttl") == "v"  # (the server's own clock has hardly moved)
    assert stat(store, "hits") == hits
    clock.advance(20)  # 30.1 s: past local_ttl
    assert store.load("capped") == "v"
    assert stat(store, "hits") == hits


def test_lru_bounds_hold(opener: Callable[..., Any], program: Program, server: Server) -> None:
    store = live(opener(url_of(program, server), ns(), local_max_entries=5))
    store.store_many({f"k{i}": i for i in range(19)})
    write(store, "k19", 19)  # invalidations arrive in order: the others' came before
    for i in range(20):
        assert store.load(f"k{i}") == i
    assert stat(store, "entries") == 5
    assert served_locally(store, "k19") == 19


# -- the server's own changes ----------------------------------------------------------------------


def test_server_expiry_invalidates(
    opener: Callable[..., Any], program: Program, server: Server
) -> None:
    space = ns()
    clock = FakeClock()  # never moves: only the server's expiry can remove the entry
    store = live(opener(url_of(program, server), space, local_clock=clock))
    for _ in range(5):  # a slow machine may see the 300 ms go by before the read is kept
        seen = stat(store, "invalidations")
        raw(server).set(f"{space}:k".encode(), b"sv", px=300)
        until(lambda s=seen: stat(store, "invalidations") > s, "the SET's own invalidation")  # type: ignore[misc]
        if store.load("k") == "v" and stat(store, "entries") == 1:
            break
    else:
        pytest.fail("the value was never kept locally")
    until(lambda: stat(store, "entries") == 0, "the server's expiry of k")
    assert store.load("k") is None


def test_flushdb_and_flushall_empty_the_table(
    opener: Callable[..., Any], program: Program, own_server: Server
) -> None:
    store = live(opener(url_of(program, own_server), ns()))
    for command in ("flushdb", "flushall"):
        write(store, "k", "v")
        assert store.load("k") == "v"
        flushes = stat(store, "flushes")
        getattr(raw(own_server), command)()
        until(lambda f=flushes: stat(store, "flushes") > f, command)  # type: ignore[misc]
        assert stat(store, "entries") == 0
        assert store.load("k") is None


def test_server_eviction_invalidates(
    opener: Callable[..., Any], program: Program, own_server: Server
) -> None:
    space = ns()
    store = live(opener(url_of(program, own_server), space))
    client = raw(own_server)
    write(store, "k", "v")
    assert store.load("k") == "v"
    client.config_set("maxmemory-policy", "allkeys-random")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 2_000_000))
    filler = b"x" * 10_000
    n = 0
    while client.exists(f"{space}:k".encode()):
        client.set(f"filler:{n}".encode(), filler)
        n += 1
        assert n < 10_000, "the server never evicted k"
    until(lambda: stat(store, "entries") == 0, "the invalidation of the evicted key")
    assert store.load("k") is None


# -- the tracking connection ----------------------------------------------------------------------


def test_a_killed_tracking_connection_empties_the_table_and_comes_back(
    opener: Callable[..., Any], program: Program, own_server: Server
) -> None:
    space = ns()
    store = live(opener(url_of(program, own_server), space))
    client = raw(own_server)
    write(store, "k", "v1")
    assert store.load("k") == "v1"
    assert client.client_kill_filter(_type="pubsub") == 1
    until(lambda: stat(store, "live") == 0 or stat(store, "entries") == 0, "the lost connection")
    assert stat(store, "entries") == 0
    client.set(f"{space}:k".encode(), b"sv2")  # perhaps while tracking is down
    assert store.load("k") == "v2"
    live(store)
    assert store.load("k") == "v2"
    assert served_locally(store, "k") == "v2"
    client.set(f"{space}:k".encode(), b"sv3")  # tracked again
    until(lambda: store.load("k") == "v3", "the write after the reconnection")


def test_a_server_restart_empties_the_table(
    opener: Callable[..., Any], program: Program, own_server: Server
) -> None:
    space = ns()
    store = live(opener(url_of(program, own_server), space, socket_timeout=0.5))
    write(store, "k", "v1")
    assert store.load("k") == "v1"
    events: list[Event] = []
    store.listen(events.append)
    own_server.stop()
    lost = [("local", "lost")]
    until(lambda: [(e.kind, e.fields.get("reason")) for e in events][-1:] == lost, "tracking down")
    with pytest.raises(BackendUnavailable):  # as without the local cache (docs: Counters)
        store.stats()
    own_server.start()
    assert stat(store, "entries") == 0  # emptied when tracking went down
    raw(own_server).set(f"{space}:k".encode(), b"sv2")
    live(store)
    until(lambda: _loads(store, "k") == "v2", "the value written after the restart")


def _loads(store: Any, key: str) -> Any:
    try:
        return store.load(key)
    except ConnectionError:  # the data connection notices the restart on its first use
        return None


def test_another_namespace_is_not_tracked(
    opener: Callable[..., Any], program: Program, server: Server
) -> None:
    space = ns()
    store = live(opener(url_of(program, server), space))
    write(store, "k", "v")
    assert store.load("k") == "v"
    invalidations = stat(store, "invalidations")
    raw(server).set(b"elsewhere:k", b"x")
    store.store("k", "v")  # our own write: its invalidation comes after the other one
    until(lambda: stat(store, "invalidations") > invalidations, "our own invalidation")
    assert stat(store, "invalidations") == invalidations + 1


# -- configuration --------------------------------------------------------------------------------


def test_off_by_default_and_then_no_listener(server: Server, program: Program) -> None:
    store = Storage.from_url(url_of(program, server), namespace=ns(), secret=None)
    assert "local_hits" not in store.stats()


def test_bad_local_options_are_refused(server: Server, program: Program) -> None:
    url = url_of(program, server)
    with pytest.raises(ConfigurationError, match="local_max_entries"):
        Storage.from_url(f"{url}?local_cache=true&local_max_entries=0")
    with pytest.raises(ConfigurationError, match="local_clock"):
        Storage.from_url(f"{url}?local_cache=true&local_clock=x")
    with pytest.raises(ConfigurationError, match="read_from_replicas"):
        Storage.from_url(
            f"{program.name}+sentinel://127.0.0.1:1/mymaster?local_cache=true",
            read_from_replicas=True,
        )


def test_a_forked_child_never_serves_the_parents_table(program: Program, server: Server) -> None:
    space = ns()
    store = live(Storage.from_url(url_of(program, server), namespace=space, local_cache=True))
    write(store, "k", "v1")
    assert store.load("k") == "v1"
    assert stat(store, "entries") == 1
    read, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        pid = os.fork()
    if pid == 0:  # the child: no listener thread here, so nothing may be served locally
        try:
            raw(server).set(f"{space}:k".encode(), b"sv2")
            got = [store.load("k") for _ in range(3)]
            child = Storage.from_url(url_of(program, server), namespace=space, local_cache=True)
            until(lambda: child.stats()["local_live"] == 1, "the child's own listener")
            ok = got == ["v2"] * 3 and stat(store, "entries") == 0 and child.load("k") == "v2"
            os.write(write_end, b"ok" if ok else repr((got, store.stats())).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read, 4096) == b"ok"
    os.close(read)


def test_a_frozen_server_is_noticed_by_the_heartbeat(program: Program, own_server: Server) -> None:
    """No reset, no close: the listener's PING goes unanswered within socket_timeout."""
    store = live(
        Storage.from_url(
            url_of(program, own_server), namespace=ns(), local_cache=True, socket_timeout=0.3
        )
    )
    write(store, "k", "v")
    assert store.load("k") == "v"
    events: list[Event] = []
    store.listen(events.append)  # stats() would time out on the frozen server: the hook does not
    own_server.signal(signal.SIGSTOP)
    try:
        until(lambda: any(e.fields.get("reason") == "lost" for e in list(events)), "the verdict")
    finally:
        own_server.signal(signal.SIGCONT)
    assert stat(store, "entries") == 0  # emptied when tracking went down
    live(store)


def test_a_user_who_may_not_track_reads_the_server_and_is_told_why(
    program: Program, own_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    raw(own_server).acl_setuser(
        "app", enabled=True, passwords=["+app-password"], keys=["*"], commands=["+@all", "-client"]
    )
    store = Storage.from_url(
        url_of(program, own_server),
        namespace=ns(),
        local_cache=True,
        username="app",
        password="app-password",
    )
    store.store("k", "v")  # the storage opens on first use
    until(lambda: "NOPERM" in caplog.text or "permission" in caplog.text, "the listener's warning")
    assert "app-password" not in caplog.text
    assert store.load("k") == "v"
    assert store.load("k") == "v"
    assert stat(store, "live") == 0
    assert stat(store, "hits") == 0


def test_a_reply_overtaken_by_its_keys_invalidation_is_not_kept(
    opener: Callable[..., Any], program: Program, server: Server
) -> None:
    """The data connection goes through a proxy that holds the reply of one GET + PTTL while
    another client overwrites the key and the invalidation arrives: the old reply is returned
    (it was the value when it was read) but not kept."""
    space = ns()
    client = raw(server)
    client.set(f"{space}:k".encode(), b"sold")
    with FaultProxy(server.port).start() as proxy:
        url = f"{program.name}://127.0.0.1:{proxy.port}/0"
        store = live(opener(url, space, socket_timeout=10))
        # stats() asks the server too: a sync Storage of the same URL and namespace shares the
        # table and reads its counters over connections of its own, not the held one
        watch = Storage.from_url(
            url, namespace=space, local_cache=True, secret=None, socket_timeout=10
        )
        held = proxy.delay(2.0, match=b"PTTL")
        result: list[Any] = []
        reader = threading.Thread(target=lambda: result.append(store.load("k")))
        reader.start()
        until(lambda: held.hits == 1, "the read reaching the proxy")
        invalidations = stat(watch, "invalidations")
        client.set(f"{space}:k".encode(), b"snew")
        until(lambda: stat(watch, "invalidations") > invalidations, "the invalidation")
        assert reader.is_alive(), "the reply was not held long enough to be overtaken"
        reader.join(10)
        assert result == ["old"]
        assert stat(watch, "refused") == 1
        assert stat(watch, "entries") == 0
        assert store.load("k") == "new"
