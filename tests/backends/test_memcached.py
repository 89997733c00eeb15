"""The memcached rules, each pinned on real servers (sync and asyncio), plus URLs and options."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymemcache.client.base import Client

from tests.helpers import LoopThread, SyncView
from tests.servers.memcached import start_memcached
from tests.servers.proc import Server, free_port
from tsot import (
    AsyncStorage,
    BackendUnavailable,
    ConfigurationError,
    OutcomeUnknown,
    Storage,
    ValueTooLarge,
)
from tsot.backends.memcached import commands as ops
from tsot.backends.memcached import protocol as proto
from tsot.backends.memcached import transport_sync
from tsot.backends.memcached.backend import MemcachedSync

pytestmark = pytest.mark.server


@pytest.fixture(params=["sync", "async"])
def opener(request: pytest.FixtureRequest, memcached_url: str) -> Iterator[Callable[..., Any]]:
    """``opener(url=None, namespace=None, **options)``: a Storage or an AsyncStorage view."""
    loop = LoopThread() if request.param == "async" else None

    def open_store(url: str | None = None, namespace: str | None = None, **options: Any) -> Any:
        ns = namespace if namespace is not None else f"mc{uuid.uuid4().hex[:10]}"
        if loop is None:
            return Storage.from_url(url or memcached_url, namespace=ns, **options)
        return SyncView(AsyncStorage.from_url(url or memcached_url, namespace=ns, **options), loop)

    yield open_store
    if loop is not None:
        loop.stop()


@pytest.fixture
def rawmc(memcached_server: Server) -> Iterator[Client]:
    """A plain pymemcache client on the one-server fixture."""
    client = Client(("127.0.0.1", memcached_server.port), default_noreply=False)
    yield client
    client.close()


def backend(store: Any) -> Any:
    return store.backend if isinstance(store, Storage) else store._target.backend


def wire_key(store: Any, key: str, server: int = 0) -> bytes:
    """The key memcached holds for ``key`` of ``store`` (its namespace generation included)."""
    b = backend(store)
    final = (store.namespace + ":" + key).encode()
    return proto.wire_key(final, len(b.ns.prefix), b.loc.cluster.gens[(server, b.ns.prefix)])


# -- URLs and options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached://", "names no server"),
        ("memcached://h:11211/db", "path"),
        ("memcached://user:pw@h:11211", "no user or password"),
        ("memcached://h:1,h:1", "twice"),
        ("memcached://h:11211?timeout=soon", "'timeout'"),
        ("memcached://h:11211?connect_timeout=0", "'connect_timeout'"),
        ("memcached://h:11211?max_pool_size=0", "'max_pool_size'"),
        ("memcached://h:11211?retries=-1", "'retries'"),
        ("memcached://h:11211?dead_timeout=x", "'dead_timeout'"),
        ("memcached://h:11211?pool=3", "'pool'"),
    ],
)
def test_bad_urls_and_options_name_the_problem(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Storage.from_url(url)


def test_defaults_and_url_forms(memcached_url: str) -> None:
    store = Storage.from_url(memcached_url, namespace="defaults")
    loc = backend(store).loc
    assert loc.policy.timeout == 1.0 and loc.policy.retries == 1
    assert loc.cluster.dead_timeout == 10.0 and loc.sync.max_pool_size == 64
    assert loc.sync.pools[0].connect_timeout == 1.0
    other = Storage.from_url("memcached://localhost,127.0.0.1:1")
    assert backend(other).loc.cluster.names == ["localhost:11211", "127.0.0.1:1"]
    socket_form = Storage.from_url("memcached://%2Ftmp%2Fmc.sock,h2:11311")
    assert backend(socket_form).loc.cluster.names == ["/tmp/mc.sock", "h2:11311"]


def test_unix_socket_url(memcached_unix_socket: str, opener: Callable[..., Any]) -> None:
    store = opener(f"memcached://{memcached_unix_socket}")
    store.store("k", {"v": 1})
    assert store.load("k") == {"v": 1}
    assert store.incr("n", 5) == 5


# -- TTLs ------------------------------------------------------------------------------------


def test_exptime_rules() -> None:
    clock = lambda: 1_700_000_000.5  # noqa: E731
    assert proto.exptime(None, clock) == 0
    assert proto.exptime(1, clock) == 1  # 1 ms rounds up to a second
    assert proto.exptime(1500, clock) == 2
    assert proto.exptime(30 * 86_400_000, clock) == 30 * 86_400  # still relative
    assert proto.exptime(30 * 86_400_000 + 1, clock) == 1_700_000_000 + 30 * 86_400 + 1
    assert proto.exptime(90 * 365 * 86_400_000, clock) == 2**31 - 1  # memcached's int32 cap
    assert proto.remaining_ms(-1) == -1
    assert proto.remaining_ms(1) == 500
    assert proto.remaining_ms(40 * 86_400) == (40 * 86_400 - 2) * 1000


def test_sub_second_ttl_is_one_second(opener: Callable[..., Any]) -> None:
    store = opener()
    store.store("k", "v", ttl=0.2)
    assert store.load("k") == "v"
    assert store.ttl("k") == 0.5  # held for one memcached second, reported mid-window


def test_long_ttl_is_sent_as_a_unix_time(
    rawmc: Client, memcached_url: str, opener: Callable[..., Any]
) -> None:
    store = opener()
    store.store("k", "v", ttl=45 * 86400)
    # sent relative, 45 days would be a 1970 date and expire at once
    assert store.load("k") == "v"
    assert 45 * 86400 - 5 <= store.ttl("k") <= 45 * 86400
    t = rawmc.raw_command(b"mg " + wire_key(store, "k") + b" t")
    assert 45 * 86400 - 5 <= int(t.split(b"t")[-1]) <= 45 * 86400 + 2


def test_expire_is_touch_and_persist_is_touch_0(opener: Callable[..., Any]) -> None:
    store = opener()
    store.store("k", "v", ttl=5)
    assert store.expire("k", 40 * 86400)
    assert store.ttl("k") > 39 * 86400
    assert store.persist("k") and store.ttl("k") == math.inf


# -- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["x" * 300, "with space", "tab\t", "ctrl\x01", "del\x7f"])
def test_unusable_keys_become_stable_digests(
    rawmc: Client, memcached_url: str, opener: Callable[..., Any], key: str
) -> None:
    store = opener()
    store.store(key, "v")
    wk = wire_key(store, key)
    assert proto.valid_key(wk) and wk.startswith(store.namespace.encode() + b":")
    assert b"#" in wk and len(wk) < 120
    assert rawmc.get(wk) == b"sv"
    again = opener(namespace=store.namespace)  # another Storage computes the same key
    assert again.load(key) == "v"
    store.clear()  # digested keys carry the generation: clear reaches them
    assert again.load(key) is None


def test_digest_and_plain_forms_never_collide() -> None:
    plain = proto.wire_key(b"ns:k", 3, 255)
    assert plain == b"ns:ff|k"
    long_key = proto.wire_key(b"ns:" + b"k" * 300, 3, 255)
    assert long_key.startswith(b"ns:ff#") and proto.valid_key(long_key)
    assert proto.wire_key(b"ns:" + b"k" * 300, 3, 255) == long_key
    assert proto.wire_key(b"bad ns:k", 7, 1).startswith(b"1#")  # unusable prefix: digested too


# -- values ----------------------------------------------------------------------------------


def test_item_size_limit_comes_from_the_server(tmp_path: Path) -> None:
    server = start_memcached(tmp_path, "small", "-I", "512k")
    try:
        store = Storage.from_url(f"memcached://127.0.0.1:{server.port}", namespace="small")
        store.store("fits", b"x" * 500_000)
        store.store("big", "old")
        with pytest.raises(ValueTooLarge, match=r"big.*524288 bytes \(item_size_max\)"):
            store.store("big", b"x" * 700_000)  # under the default 1 MB: asked, not assumed
        assert store.load("big") == "old"
        with pytest.raises(ValueTooLarge, match="c2"):
            store.store_many({"c1": 1, "c2": b"y" * 700_000, "c3": 3})
        assert store.load_many(["c1", "c2", "c3"]) == {}  # checked first: nothing written
    finally:
        server.stop()


# -- incr ------------------------------------------------------------------------------------


def test_wide_ints_are_stored_so_memcached_refuses_them(
    rawmc: Client, memcached_url: str, opener: Callable[..., Any]
) -> None:
    store = opener()
    store.store("n", 2**63 - 1)
    assert store.incr("n") == 2**63  # native incr, then rewritten
    mc = rawmc
    assert mc.get(wire_key(store, "n")) == b"9_223372036854775808"
    assert store.load("n") == 2**63
    store.store("neg", -(2**63) - 1)
    assert mc.get(wire_key(store, "neg")) == b"-9_223372036854775809"
    assert store.incr("neg", 2) == -(2**63) + 1
    assert mc.get(wire_key(store, "neg")) == b"-9223372036854775807"


def test_memcached_refuses_incr_of_wide_values(rawmc: Client, memcached_url: str) -> None:
    mc = rawmc
    mc.set(b"wide-probe", b"9_223372036854775808")
    with pytest.raises(Exception, match="non-numeric"):
        mc.incr(b"wide-probe", 1)


def test_decrements_below_zero_are_exact_under_contention(opener: Callable[..., Any]) -> None:
    store = opener()
    store.store("n", 50, ttl=100)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                store.decr("n", 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert store.load("n") == 50 - 200
    assert 97 <= store.ttl("n") <= 100  # the compare-and-swap path keeps the TTL


def test_native_decr_padding_is_removed(
    rawmc: Client, memcached_url: str, opener: Callable[..., Any]
) -> None:
    store = opener()
    store.store("n", 100)
    assert store.decr("n") == 99  # memcached rewrites "100" in place as "99 "
    assert rawmc.get(wire_key(store, "n")) == b"99 "
    sync = Storage.from_url(memcached_url, namespace=store.namespace)
    assert sync.backend.get((store.namespace + ":n").encode()) == b"99"
    assert store.load_int("n") == 99


def test_incr_create_is_atomic(opener: Callable[..., Any]) -> None:
    store = opener()
    barrier = threading.Barrier(6)
    results: list[int] = []

    def work(delta: int) -> None:
        barrier.wait(10)
        results.append(store.incr("new", delta))

    threads = [threading.Thread(target=work, args=(d,)) for d in (1, 2, 3, -1, -2, 2**70)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.load("new") == 1 + 2 + 3 - 1 - 2 + 2**70
    assert len(results) == 6


def test_ints_stay_readable_by_other_clients(
    rawmc: Client, memcached_url: str, opener: Callable[..., Any]
) -> None:
    store = opener()
    store.store("n", 41)
    mc = rawmc
    assert mc.incr(wire_key(store, "n"), 1) == 42
    assert store.load("n") == 42


# -- clear: namespace generations ------------------------------------------------------------


def test_clear_is_seen_by_another_process(memcached_url: str) -> None:
    ns = f"gen{uuid.uuid4().hex[:8]}"
    here = Storage.from_url(memcached_url, namespace=ns)
    here.store_many({"a": 1, "b": 2})
    here.incr("c", 5)
    assert here.load("a") == 1  # the generation is now cached here
    code = (
        "from tsot import Storage;"
        f"s = Storage.from_url({memcached_url!r}, namespace={ns!r});"
        "assert s.load('a') == 1; s.clear(); assert s.load('a') is None"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert here.load("a") is None  # no stale value from the cached generation
    assert here.replace("b", "new") is False  # nor a stale key taken for a present one
    assert here.add("a", "new") is True  # nor a stale key blocking add
    assert here.incr("c") == 1  # nor a stale counter
    assert here.load_many(["a", "b"]) == {"a": "new"}
    assert here.replace("a", "newer") is True


def test_stale_writer_writes_into_the_new_generation(memcached_url: str) -> None:
    ns = f"gen{uuid.uuid4().hex[:8]}"
    a = Storage.from_url(memcached_url, namespace=ns)
    b = Storage.from_url(memcached_url, namespace=ns, dead_timeout=9)  # own state: "process"
    b.store("k", "old")
    a.clear()
    b.store("k", "new")  # b's cached generation is stale; the write must not be lost
    assert a.load("k") == "new"


def test_clear_never_flushes_the_server(rawmc: Client, memcached_url: str) -> None:
    mc = rawmc
    mc.set(b"foreign-key", b"kept")
    other = Storage.from_url(memcached_url, namespace=f"o{uuid.uuid4().hex[:8]}")
    other.store("k", 1)
    everything = Storage.from_url(memcached_url)  # empty namespace: a generation too
    everything.store("k", 2)
    everything.clear()
    assert everything.load("k") is None
    assert mc.get(b"foreign-key") == b"kept" and other.load("k") == 1


def test_evicted_generation_starts_a_newer_one(rawmc: Client, memcached_url: str) -> None:
    store = Storage.from_url(memcached_url, namespace=f"ev{uuid.uuid4().hex[:8]}")
    store.store("k", "v")
    b = backend(store)
    before = b.loc.cluster.gens[(0, b.ns.prefix)]
    rawmc.delete(b.ns.gen_key)  # as if memcached evicted it
    assert store.load("k") is None  # old keys never come back under a reused number
    assert b.loc.cluster.gens[(0, b.ns.prefix)] > before


# -- one request per server ------------------------------------------------------------------


def _steps(store: Storage, make: Callable[[], ops.Op[Any]]) -> list[dict[int, int]]:
    """Run an operation on the real transport; the commands it sent, per step and server."""
    b = backend(store)
    assert isinstance(b, MemcachedSync)
    seen: list[dict[int, int]] = []
    op = make()
    try:
        step = next(op)
        while True:
            seen.append({s: len(c) for s, c in step.items()})
            step = op.send(b.loc.sync.execute(step))
    except StopIteration:
        return seen


def test_many_key_operations_are_one_request_per_server(memcached3_url: str) -> None:
    store = Storage.from_url(memcached3_url, namespace=f"one{uuid.uuid4().hex[:8]}")
    store.store_many({f"w{i}": 1 for i in range(30)})  # learns generations and item sizes
    b = backend(store)
    keys = [f"{store.namespace}:k{i}".encode() for i in range(60)]
    items = [(k, b"v") for k in keys]
    for make in (
        lambda: ops.set_many(b.ns, items, None),
        lambda: ops.get_many(b.ns, keys),
        lambda: ops.delete_many(b.ns, keys),
    ):
        steps = _steps(store, make)
        assert len(steps) == 1 and len(steps[0]) == 3  # one request to each server
        assert sum(steps[0].values()) == 60 + 3  # each with its generation check


# -- failures --------------------------------------------------------------------------------


def test_unreachable_server_is_unavailable_then_skipped() -> None:
    url = f"memcached://127.0.0.1:{free_port()}?dead_timeout=30"
    store = Storage.from_url(url, namespace="x")
    with pytest.raises(BackendUnavailable, match="cannot talk to memcached") as first:
        store.load("k")
    assert isinstance(first.value.__cause__, OSError)
    with pytest.raises(BackendUnavailable, match="skipped for up to 30 s"):
        store.load("k")


def test_one_of_three_servers_dies(
    memcached_fresh3: list[Server], opener: Callable[..., Any]
) -> None:
    url = "memcached://" + ",".join(f"127.0.0.1:{s.port}" for s in memcached_fresh3)
    store = opener(url, dead_timeout=60)
    data = {f"k{i}": i for i in range(60)}
    store.store_many(data)
    cluster = backend(store).loc.cluster
    owner = {k: cluster.route(f"{store.namespace}:{k}".encode(), [0, 1, 2]) for k in data}
    memcached_fresh3[1].kill()
    survivors = {k: v for k, v in data.items() if owner[k] != 1}
    assert store.load_many(list(data)) == survivors  # first call fails over, others intact
    assert cluster.is_dead(1)
    for k in survivors:
        assert store.load(k) == data[k]
    lost = [k for k in data if owner[k] == 1]
    store.store_many({k: -1 for k in lost})  # their keys now live on the other two
    assert store.load_many(lost) == {k: -1 for k in lost}
    assert store.incr(lost[0]) == 0


class Blackhole:
    """A TCP listener that accepts and never answers; counts the requests it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fileobj is self.sock:
                    try:
                        conn, _ = self.sock.accept()
                    except OSError:
                        return
                    self.conns.append(conn)
                    sel.register(conn, selectors.EVENT_READ)
                elif key.fileobj.recv(65536):  # type: ignore[union-attr]
                    self.requests += 1
                else:
                    sel.unregister(key.fileobj)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_hanging_server_costs_one_timeout_per_dead_timeout(
    memcached_server: Server, opener: Callable[..., Any]
) -> None:
    hole = Blackhole()
    try:
        url = f"memcached://127.0.0.1:{memcached_server.port},127.0.0.1:{hole.port}"
        store = opener(url, timeout=0.2, dead_timeout=0.5, retries=0)
        keys = [f"k{i}" for i in range(40)]
        store.store_many(dict.fromkeys(keys, 1))  # one timeout, then all on the live server
        assert hole.requests == 1
        for _ in range(5):
            assert store.load_many(keys) == dict.fromkeys(keys, 1)
        assert hole.requests == 1  # skipped, not asked again
        deadline = time.monotonic() + 10
        while hole.requests == 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            store.load_many(keys)  # after dead_timeout one request probes it again
        assert hole.requests == 2
    finally:
        hole.close()


# -- fast paths ------------------------------------------------------------------------------


def test_hot_operations_are_one_request_without_the_operation_machinery(
    memcached_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Storage.from_url(memcached_url, namespace=f"hot{uuid.uuid4().hex[:8]}")
    store.store("warm", 1)  # learns the generation and the item size
    transport = backend(store).loc.sync
    steps: list[dict[int, list[bytes]]] = []
    real = transport.execute
    monkeypatch.setattr(transport, "execute", lambda step: steps.append(step) or real(step))
    store.store("k", "v")
    assert store.load("k") == "v"
    assert store.add("k", "other") is False and store.add("a", 1) is True
    assert store.replace("k", "w") is True and store.replace("absent", 1) is False
    assert store.incr("n", 5) == 5 and store.incr("n") == 6
    assert store.delete("k") is True and store.delete("k") is False
    assert store.load("k") is None
    assert steps == []  # every one of them went through ``SyncTransport.one``
    store.store_many({"m1": 1, "m2": 2})
    assert store.load_many(["m1", "m2", "m3"]) == {"m1": 1, "m2": 2}
    assert len(steps) == 2  # one step each, straight from the batch
    assert [len(cmds) for step in steps for cmds in step.values()] == [3, 4]


def test_sync_fast_paths_retry_a_connection_the_restarted_server_closed(tmp_path: Path) -> None:
    """Each hot operation meets the idle connection of a server that restarted: incr and add
    find it closed before writing (so they run on a new connection, once), the idempotent ones
    retry on a new connection. With one pooled connection at most, any dropped connection not
    given back to the pool's count would make the next call fail with max_pool_size."""
    server = start_memcached(tmp_path, "restart")
    try:
        url = f"memcached://127.0.0.1:{server.port}?max_pool_size=1"
        store = Storage.from_url(url, namespace="r")
        checks: list[Callable[[], bool]] = [
            lambda: store.load("a") is None,
            lambda: store.incr("n", 3) == 3,
            lambda: store.add("a", 1) is True,
            lambda: store.replace("a", 2) is False,  # the restarted server holds nothing
            lambda: store.delete("gone") is False,
            lambda: store.load_many(["a", "b"]) == {},
            lambda: store.store_many({"a": 1, "b": 2}) is None,
            lambda: store.store("c", 3) is None and store.load("c") == 3,
        ]
        for check in checks:
            store.store("warm", 1)  # generation, item size and one idle connection known
            server.kill()
            server.start()  # same port: the pooled connection is now closed by its peer
            assert check()
    finally:
        server.stop()


def test_a_connection_proven_open_just_now_is_not_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within ``PROVEN`` of its last checked checkout an idle connection is used without a
    poll (here the window is made an hour): a server that closed it meanwhile makes an incr's
    outcome unknown, as a failure during the request would, and the incr is not sent again.
    The connection is dropped; the next incr runs on a new one."""
    monkeypatch.setattr(transport_sync, "PROVEN", 3600.0)
    server = start_memcached(tmp_path, "proven")
    try:
        url = f"memcached://127.0.0.1:{server.port}"
        store = Storage.from_url(url, namespace="p", secret=None)
        assert store.incr("n") == 1  # checked out fresh: proven open from now on
        server.kill()
        server.start()  # same port: the pooled connection is now closed by its peer
        with pytest.raises(OutcomeUnknown):
            store.incr("n")
        assert store.incr("n") == 1  # the restarted server lost n; the failed incr never ran
    finally:
        server.stop()


def test_pool_exhaustion_names_the_option(memcached_url: str) -> None:
    store = Storage.from_url(memcached_url, namespace="pool", max_pool_size=1, pool_timeout=0.1)
    store.store("k", 1)
    pool = backend(store).loc.sync.pools[0]
    held = pool.get()
    assert held is not None
    try:
        with pytest.raises(BackendUnavailable, match="max_pool_size"):
            store.load("k")
    finally:
        pool.idle.append(held)
    assert store.load("k") == 1


def test_stats_and_shared_state(memcached_url: str) -> None:
    a = Storage.from_url(memcached_url, namespace="st")
    b = Storage.from_url(memcached_url, namespace="st2")
    assert backend(a).loc is backend(b).loc  # one pool per location, whatever the namespace
    stats = a.stats()
    assert isinstance(stats["hits"], int) and isinstance(stats["keys"], int)


def test_a_one_key_request_past_the_send_buffer_is_written_whole(memcached_url: str) -> None:
    """A one-key request is written straight to the socket (no poll first); what the send
    buffer does not take at once must still go out, whole and in order."""
    store = Storage.from_url(
        memcached_url, namespace=f"big-{uuid.uuid4().hex}", secret=None, timeout=30
    )  # a long timeout: a busy machine must not make it a retry on another connection
    store.store("warm", 1)  # learns the generation and item size: the next store is one request
    (conn,) = store.backend.loc.sync.pools[0].idle
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    value = os.urandom(400_000)
    store.store("big", value)
    assert store.backend.loc.sync.pools[0].idle == [conn]  # the same connection, in step
    assert store.load("big") == value
    assert store.incr("warm") == 2
