"""The auto-pipelined asyncio Redis connection: batching, cancellation, failures, bounds, Cluster.

Every test runs against real servers; the ones that stop, kill or reshard a server start their
own (function-scoped) so nothing else sees it. Those about server behaviour (kill and restart,
a stalled server, ACL users, MOVED/ASK) run on Redis and on Valkey (``each_program``).
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot
from redis.exceptions import ResponseError

from tests.servers.proc import Server
from tests.servers.redis import (
    Cluster,
    Program,
    each_program,
    start_cluster,
    start_single,
    url_of,
)
from tsot import AsyncStorage, WrongType
from tsot.backends.redis.pipeline import PipelinedConnection
from tsot.errors import BackendUnavailable

pytestmark = pytest.mark.server


def raw(port: int, **kwargs: Any) -> redis.Redis[bytes]:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, **kwargs)


async def connection(store: AsyncStorage) -> PipelinedConnection:
    """The live pipelined connection behind ``store`` (one server)."""
    transport = await store.backend._tp()  # type: ignore[attr-defined]
    conn = transport._ep.conn
    assert conn is not None and conn.lost is None
    return conn  # type: ignore[no-any-return]


async def until(check: Any, what: str, iterations: int = 10_000) -> None:
    """Let the loop run until ``check()`` (bounded: a number of iterations, not a time)."""
    for _ in range(iterations):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def own(tmp_path: Path, server_program: Program) -> Iterator[Server]:
    """A server this test may stop, kill and restart (Redis unless parametrised)."""
    server = start_single(tmp_path / server_program.name, program=server_program)
    yield server
    server.stop()


def restart(server: Server) -> Server:
    """A fresh process on the same port (the old one must be dead)."""
    return Server(server.argv, server.port, server.log, cwd=server.cwd).start()


# -- batching ------------------------------------------------------------------------------------


async def test_concurrent_commands_share_one_write_and_one_connection(redis_url: str) -> None:
    store = AsyncStorage.from_url(redis_url, namespace="batch")
    await store.store_many({f"k{i}": i for i in range(100)})
    conn = await connection(store)
    writes: list[int] = []
    transport = conn._transport
    assert transport is not None
    original = transport.write

    def counting(data: Any) -> None:
        writes.append(bytes(data).count(b"*2\r\n$3\r\nGET"))
        original(data)

    transport.write = counting  # type: ignore[method-assign]
    try:
        values = await asyncio.gather(*(store.load(f"k{i}") for i in range(100)))
    finally:
        del transport.write
    assert values == list(range(100))
    assert writes == [100]  # one write for the 100 GETs of one loop iteration
    assert await connection(store) is conn
    await store.clear()


async def test_stateful_commands_are_refused(redis_url: str) -> None:
    store = AsyncStorage.from_url(redis_url, namespace="state")
    await store.load("warm")
    conn = await connection(store)
    for cmd in (("MULTI",), ("watch", b"k"), (b"BLPOP", b"k", 0), ("SUBSCRIBE", "c")):
        with pytest.raises(ValueError, match="shared connection"):
            conn.send(cmd)
    with pytest.raises(ValueError, match="shared connection"):
        conn.send_many([("GET", b"k"), ("CLIENT", "TRACKING", "on")])
    assert conn.pending == 0  # nothing was queued


# -- cancellation --------------------------------------------------------------------------------


async def test_cancelled_waiters_never_shift_the_stream(redis_url: str) -> None:
    store = AsyncStorage.from_url(redis_url, namespace="cancel")
    n = 1000
    await store.store_many({f"k{i}": f"value-{i}" for i in range(n)})
    await store.store_many({f"n{i}": i * 1000 for i in range(n)})
    conn = await connection(store)
    rng = random.Random(12)

    async def one(i: int) -> Any:  # a mix of single commands, batches and incr
        if i % 3 == 0:
            return await store.load(f"k{i}")
        if i % 3 == 1:
            return await store.incr(f"n{i}")
        return await store.load_many([f"k{i}", f"k{(i + 1) % n}"])

    def expected(i: int) -> Any:
        if i % 3 == 0:
            return f"value-{i}"
        if i % 3 == 1:
            return i * 1000 + 1
        return {f"k{i}": f"value-{i}", f"k{(i + 1) % n}": f"value-{(i + 1) % n}"}

    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    await until(lambda: conn.pending == n, "every command queued")
    cancelled = set(rng.sample(range(n), n // 2))
    for i in cancelled:
        tasks[i].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(results):
        if i in cancelled:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result == expected(i), i
    assert conn.pending == 0
    assert await connection(store) is conn  # still in step: no reconnect was needed
    # the cancelled commands were sent all the same (a cancel does not un-send an INCRBY)
    for i in range(1, n, 3):
        assert await store.load(f"n{i}") == i * 1000 + 1
    again = await asyncio.gather(*(store.load(f"k{i}") for i in range(n)))
    assert again == [f"value-{i}" for i in range(n)]
    await store.clear()


# -- failures ------------------------------------------------------------------------------------


async def test_one_failing_command_fails_only_its_waiter(redis_url: str) -> None:
    store = AsyncStorage.from_url(redis_url, namespace="onefail")
    await store.store_many({f"n{i}": i for i in range(50)})
    await store.store("text", "not a number")
    calls = [store.incr(f"n{i}") for i in range(25)]
    calls += [store.incr("text")]
    calls += [store.incr(f"n{i}") for i in range(25, 50)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[25], WrongType)
    assert results[:25] + results[26:] == [i + 1 for i in range(50)]
    conn = await connection(store)
    # at the connection: an error reply inside one batch stays in its place
    replies = await conn.send_many(
        [("GET", b"onefail:n0"), ("INCR", b"onefail:text"), ("GET", b"onefail:n1")]
    )
    assert replies[0] == b"1" and replies[2] == b"2"
    assert isinstance(replies[1], ResponseError) and "not an integer" in str(replies[1])
    await store.clear()


@each_program
async def test_kill_mid_batch_then_restart(own: Server, server_program: Program) -> None:
    url = url_of(own, server_program)
    store = AsyncStorage.from_url(url, namespace="kill", retries=5, retry_backoff=0.05)
    n = 300
    await store.store_many({f"k{i}": f"value-{i}" for i in range(n)})
    conn = await connection(store)
    own.signal(signal.SIGSTOP)  # the batch is written but never answered...
    tasks = [asyncio.ensure_future(store.load(f"k{i}")) for i in range(n)]
    await until(lambda: conn.pending == n and not conn._wbuf, "the batch written")
    await asyncio.sleep(0.05)
    own.kill()  # ...then the server dies with every command in flight
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, BackendUnavailable) for r in results), results[:3]
    assert conn.lost is not None and conn.pending == 0
    with pytest.raises(BackendUnavailable):  # down: reconnecting fails after the retries
        await store.load("k0")

    restarted = restart(own)
    try:
        await store.store_many({f"k{i}": f"value-{i}" for i in range(n)})
        # concurrent loads straight after the restart: each value is its own key's
        values = await asyncio.gather(*(store.load(f"k{i}") for i in range(n)))
        assert values == [f"value-{i}" for i in range(n)]
        assert await connection(store) is not conn
    finally:
        restarted.stop()


@each_program
async def test_kill_while_busy_never_mixes_replies(own: Server, server_program: Program) -> None:
    """Kill and restart under a steady load: every value read belongs to the key asked for."""
    url = url_of(own, server_program)
    store = AsyncStorage.from_url(url, namespace="mix", retries=3, retry_backoff=0.02)
    keys = [f"k{i}" for i in range(50)]
    await store.store_many({k: f"value-{k}" for k in keys})
    seen = {"ok": 0, "down": 0, "miss": 0}
    stop = asyncio.Event()

    async def reader(i: int) -> None:
        while not stop.is_set():
            key = keys[(i * 7 + seen["ok"]) % len(keys)]
            try:
                got = await store.load(key)
            except BackendUnavailable:
                seen["down"] += 1
                await asyncio.sleep(0.01)
                continue
            if got is None:
                seen["miss"] += 1  # the restarted server starts empty
            else:
                assert got == f"value-{key}"
                seen["ok"] += 1

    readers = [asyncio.ensure_future(reader(i)) for i in range(40)]
    await until(lambda: seen["ok"] > 500, "a steady load", iterations=1_000_000)
    own.kill()
    restarted = None
    try:
        await until(lambda: seen["down"] > 0, "callers seeing the outage", iterations=1_000_000)
        restarted = restart(own)
        await store.store_many({k: f"value-{k}" for k in keys})
        ok = seen["ok"]
        await until(lambda: seen["ok"] > ok + 500, "reads after the restart", iterations=10**6)
    finally:
        stop.set()
        await asyncio.gather(*readers)
        if restarted is not None:
            restarted.stop()


@each_program
async def test_stalled_server_times_out_then_recovers(own: Server, server_program: Program) -> None:
    url = url_of(own, server_program)
    store = AsyncStorage.from_url(url, namespace="stall", socket_timeout=0.3)
    await store.store("k", 1)
    own.signal(signal.SIGSTOP)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(
            *(store.load("k") for _ in range(20)), return_exceptions=True
        )
        elapsed = loop.time() - started
        assert all(isinstance(r, BackendUnavailable) and "Timeout" in str(r) for r in results)
        assert 0.25 < elapsed < 1.5
    finally:
        own.signal(signal.SIGCONT)
    assert await store.load("k") == 1  # a new connection


async def test_inflight_bound_applies_back_pressure(own: Server) -> None:
    url = f"redis://127.0.0.1:{own.port}/0"
    store = AsyncStorage.from_url(url, namespace="bound", max_inflight=4)
    await store.store_many({f"k{i}": i for i in range(50)})
    conn = await connection(store)
    own.signal(signal.SIGSTOP)
    try:
        tasks = [asyncio.ensure_future(store.load(f"k{i}")) for i in range(50)]
        await until(lambda: len(conn._room) == 46, "46 callers waiting for room")
        assert conn.pending == 4
    finally:
        own.signal(signal.SIGCONT)
    assert await asyncio.gather(*tasks) == list(range(50))
    # a batch larger than the bound still goes when nothing else is in flight
    assert await store.load_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
    await store.clear()


# -- connection set-up ---------------------------------------------------------------------------


@each_program
async def test_acl_user_db_and_resp3(own: Server, server_program: Program) -> None:
    admin = raw(own.port)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw!", "~app:*", "+@all")
    base = f"{server_program.name}://app:pw%21@127.0.0.1:{own.port}/3"
    for protocol in (2, 3):
        store = AsyncStorage.from_url(base, namespace="app", protocol=protocol)
        await store.store("k", {"p": protocol})
        assert await store.load("k") == {"p": protocol}
        assert await store.incr("n") >= 1
        assert await store.load("absent") is None
        assert await store.ttl("k") == float("inf")
        assert await store.load_many(["k", "absent"]) == {"k": {"p": protocol}}
        users = [c for c in admin.client_list() if c.get("user") == "app"]
        assert str(protocol) in {c.get("resp") for c in users}
    assert raw(own.port, db=3).exists(b"app:k") == 1
    assert raw(own.port, db=0).exists(b"app:k") == 0
    wrong = AsyncStorage.from_url(
        f"{server_program.name}://app:nope@127.0.0.1:{own.port}/0", retries=3
    )
    with pytest.raises(BackendUnavailable) as info:
        await wrong.load("k")
    assert "nope" not in str(info.value)


async def test_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "r.sock"
    server = start_single(tmp_path / "redis", "--unixsocket", str(sock), "--unixsocketperm", "700")
    try:
        store = AsyncStorage.from_url(f"unix://{sock}?db=2", namespace="ux")
        await asyncio.gather(*(store.store(f"k{i}", i) for i in range(20)))
        assert await asyncio.gather(*(store.load(f"k{i}") for i in range(20))) == list(range(20))
        assert raw(server.port, db=2).exists(b"ux:k3") == 1
    finally:
        server.stop()


# -- a model of the cache under concurrent tasks ---------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["get", "set", "incr", "delete", "add"]),
        st.integers(0, 3),
        st.integers(-5, 5),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(programs=st.lists(OPS, min_size=2, max_size=12))
def test_interleaved_tasks_match_a_model(redis_url: str, programs: list[Any]) -> None:
    async def run() -> None:
        store = AsyncStorage.from_url(redis_url, namespace="model")
        await store.clear()

        async def task(t: int, program: list[Any]) -> None:
            model: dict[str, int] = {}
            for op, k, n in program:
                key = f"t{t}:{k}"  # each task's own keys: its model is exact
                if op == "get":
                    assert await store.load(key) == model.get(key)
                elif op == "set":
                    await store.store(key, n)
                    model[key] = n
                elif op == "incr":
                    model[key] = model.get(key, 0) + n
                    assert await store.incr(key, n) == model[key]
                    assert await store.incr("shared", 1) >= 1  # every task's counter
                elif op == "add":
                    assert await store.add(key, n) == (key not in model)
                    model.setdefault(key, n)
                else:
                    assert await store.delete(key) == (key in model)
                    model.pop(key, None)
            for key, value in model.items():
                assert await store.load(key) == value

        await asyncio.gather(*(task(t, p) for t, p in enumerate(programs)))
        increments = sum(1 for p in programs for op, _, _ in p if op == "incr")
        assert await store.load("shared") == (increments or None)
        await store.clear()

    asyncio.run(run())


# -- Cluster: MOVED and ASK ------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path, server_program: Program) -> Iterator[Cluster]:
    c = start_cluster(tmp_path, program=server_program)
    yield c
    c.stop()


def _node_ids(c: Cluster) -> dict[int, bytes]:
    out = {}
    for node in c.nodes:
        out[node.port] = raw(node.port).execute_command("CLUSTER", "MYID")
    return out


@pytest.mark.slow
@each_program
async def test_cluster_follows_ask_and_moved(cluster: Cluster) -> None:
    store = AsyncStorage.from_url(cluster.url, namespace="{mv}")
    await store.store("a", "first")
    slot = key_slot(b"{mv}:a")
    ids = _node_ids(cluster)
    clients = {n.port: raw(n.port) for n in cluster.nodes}
    source = next(
        p for p, c in clients.items() if c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    )
    target = next(p for p in clients if p != source)
    transport = await store.backend._tp()  # type: ignore[attr-defined]
    assert transport._slots[slot]._locate is not None

    clients[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
    clients[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
    for c in clients.values():
        c.config_resetstat()
    # a key the source does not hold: ASK -> ASKING + SET on the importing node
    await store.store("b", "second")
    assert clients[target].info("commandstats")["cmdstat_asking"]["calls"] == 1
    clients[source].execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", b"{mv}:a")
    assert await store.load_many(["a", "b"]) == {"a": "first", "b": "second"}  # via ASK
    for c in clients.values():
        c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
    # the slot now belongs to the target: the source answers MOVED, the map follows
    assert await asyncio.gather(*(store.load("a") for _ in range(20))) == ["first"] * 20
    assert await store.incr("n", 5) == 5
    moved_to = transport._slots[slot]
    assert (await moved_to.connect()).name == f"127.0.0.1:{target}"
    assert clients[target].get(b"{mv}:n") == b"5"
    await store.clear()
    assert not any(c.keys(b"{mv}*") for c in clients.values())
