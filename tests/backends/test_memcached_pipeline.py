"""The auto-pipelined asyncio memcached connection under faults, on real memcached processes:
cancelled waiters, a server killed mid-batch, per-command errors, back-pressure, a model."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import FakeClock
from tests.servers.memcached import start_memcached
from tests.servers.proc import Server, wait_for
from tsot import AsyncStorage, BackendUnavailable, WrongType
from tsot.backends.memcached import protocol as proto
from tsot.backends.memcached.pipeline import OutOfStep, Pipeline
from tsot.keys import Key

pytestmark = pytest.mark.server


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A memcached of this test's own (it gets stopped, killed and restarted)."""
    server = start_memcached(tmp_path, "pipeline")
    yield server
    server.stop()


def freeze(server: Server) -> None:
    """SIGSTOP the server and wait until every thread of it has stopped (bounded)."""
    server.signal(signal.SIGSTOP)
    tasks = Path(f"/proc/{server.pid}/task")

    def stopped() -> bool:
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
        return all(state in ("T", "t") for state in states)

    wait_for(stopped, 10, f"memcached {server.pid} to stop")


def open_store(url: str, **options: Any) -> AsyncStorage:
    return AsyncStorage.from_url(url, namespace=f"pl{uuid.uuid4().hex[:10]}", **options)


def connection(store: AsyncStorage, server: int = 0) -> Pipeline:
    conn = store.backend.loc.aio.ready(server)  # type: ignore[attr-defined]
    assert isinstance(conn, Pipeline)
    return conn


def wire_key(store: AsyncStorage, key: str) -> bytes:
    b: Any = store.backend
    gen = b.loc.cluster.gens[(0, b.ns.prefix)]
    return b.ns.wire(f"{store.namespace}:{key}".encode(), gen)  # type: ignore[no-any-return]


async def turns(until: Any, limit: int = 10_000) -> None:
    """Let the loop run until ``until()`` holds (bounded: fails instead of hanging)."""
    for _ in range(limit):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def unique_values(n: int, size: int = 0) -> dict[Key, bytes]:
    tag = uuid.uuid4().hex
    return {f"k{i}": f"{tag}:{i}:".encode().ljust(size, b"x") for i in range(n)}


# -- cancellation ----------------------------------------------------------------------------


@pytest.mark.parametrize("max_inflight", [1024, 64])
async def test_cancelling_half_the_waiters_never_shifts_the_stream(
    memcached_url: str, max_inflight: int
) -> None:
    store = open_store(memcached_url, max_inflight=max_inflight)
    values = unique_values(1000)
    await store.store_many(values)
    conn = connection(store)
    tasks = {k: asyncio.create_task(store.load_raw(k)) for k in values}
    await turns(lambda: conn.inflight > 0)
    rng = random.Random(12)
    doomed = set(rng.sample(sorted(values), 500))
    early, late = sorted(doomed)[::2], sorted(doomed)[1::2]
    for k in early:  # queued, written or held back by max_inflight
        tasks[k].cancel()
    await turns(lambda: any(t.done() and not t.cancelled() for t in tasks.values()))
    for k in late:  # some of these are mid-run: their replies are already arriving
        tasks[k].cancel()
    results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    for k, result in zip(tasks, results, strict=True):
        if k in doomed and isinstance(result, asyncio.CancelledError):
            continue
        assert result == values[k], k  # every other reply is exactly its key's value
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) >= 250
    assert conn.inflight == 0 and conn.waiting == 0 and not conn.closed
    # the stream is still in step: the same connection answers everything right
    assert await store.load_many(list(values)) == values
    assert connection(store) is conn


# -- connection loss -------------------------------------------------------------------------


async def test_server_killed_mid_batch_then_restarted(own_server: Server) -> None:
    url = f"memcached://127.0.0.1:{own_server.port}"
    store = open_store(url, dead_timeout=5.5, max_inflight=100)
    clock = FakeClock()
    store.backend.loc.cluster.clock = clock  # type: ignore[attr-defined]
    values = unique_values(1000, size=4000)  # a write's replies span several reads
    await store.store_many(values)
    conn = connection(store)
    tasks = {k: asyncio.create_task(store.load_raw(k)) for k in values}
    writes_keys = [f"w{i}" for i in range(100)]
    writes = [asyncio.create_task(store.store_raw(k, b"new")) for k in writes_keys]

    def mid_batch() -> bool:
        return sum(t.done() for t in tasks.values()) >= 200 and conn.partial > 0

    await turns(mid_batch)
    own_server.kill()  # SIGKILL while a write's replies are half read, and more are queued
    results = await asyncio.gather(*tasks.values(), *writes, return_exceptions=True)
    got, failed = 0, 0
    for k, result in zip([*tasks, *writes_keys], results, strict=True):
        if isinstance(result, BaseException):
            assert isinstance(result, BackendUnavailable), repr(result)
            failed += 1
        elif k in writes_keys:
            assert result is None
        else:
            assert result == values[k], k  # never another key's value
            got += 1
    assert got >= 200 and failed >= 100
    # within dead_timeout the server is skipped without a connection attempt
    with pytest.raises(BackendUnavailable, match="skipped"):
        await store.load_raw("k0")
    own_server.start()  # the same port
    clock.advance(6)
    assert await store.load_raw("k0") is None  # a restarted memcached is empty
    await store.store_many(values)
    assert await asyncio.gather(*(store.load_raw(k) for k in values)) == list(values.values())


async def test_stopped_server_fails_every_waiter_at_the_timeout(own_server: Server) -> None:
    store = open_store(f"memcached://127.0.0.1:{own_server.port}", timeout=0.3, retries=0)
    await store.store_raw("k", b"v")
    freeze(own_server)
    try:
        results = await asyncio.gather(
            *(store.load_raw(f"k{i}") for i in range(200)), return_exceptions=True
        )
    finally:
        own_server.signal(signal.SIGCONT)
    assert all(isinstance(r, BackendUnavailable) for r in results)
    assert "did not answer within 0.3 s" in str(results[0])


# -- errors of one command -------------------------------------------------------------------


async def test_a_server_error_reaches_only_its_waiter(memcached_url: str) -> None:
    store = open_store(memcached_url)
    values = unique_values(300)
    await store.store_many(values)
    await store.store("text", "not a number")
    gets = [asyncio.create_task(store.load_raw(k)) for k in values]
    bad = asyncio.create_task(store.incr("text"))  # memcached: CLIENT_ERROR non-numeric
    more = [asyncio.create_task(store.load_raw(k)) for k in values]
    with pytest.raises(WrongType, match="text"):
        await bad
    assert await asyncio.gather(*gets) == list(values.values())
    assert await asyncio.gather(*more) == list(values.values())


async def test_error_replies_in_one_write_go_to_their_own_requests(memcached_url: str) -> None:
    store = open_store(memcached_url)
    await store.store_raw("a", b"A")
    conn = connection(store)
    wk = wire_key(store, "a")
    long_key = b"x" * 300  # memcached refuses the command line
    futures = [
        conn.request(proto.mg(wk, b"v"), 1),
        conn.request(proto.mg(long_key, b"v"), 1),
        conn.request(b"bogus\r\n", 1),
        conn.request(proto.mg(wk, b"v") * 2, 2),
    ]
    first, refused, unknown, pair = await asyncio.gather(*futures)
    assert [r.value for r in first] == [b"bA"]  # the codec's bytes tag, then the value
    assert refused[0].code == b"CLIENT_ERROR"
    assert unknown[0].code == b"ERROR"
    assert [r.value for r in pair] == [b"bA", b"bA"]
    assert not conn.closed


async def test_replies_out_of_step_fail_the_write_instead_of_shifting(memcached_url: str) -> None:
    store = open_store(memcached_url)
    await store.store_raw("a", b"A")
    conn = connection(store)
    wk = wire_key(store, "a")
    # a request that claims one command but sends two: the mn marker comes a reply late
    futures = [conn.request(proto.mg(wk, b"v") * 2, 1), conn.request(proto.mg(wk, b"v"), 1)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, OutOfStep) for r in results)  # nobody got a wrong reply
    assert conn.closed
    assert await store.load_raw("a") == b"A"  # the next call reconnects


# -- back-pressure ---------------------------------------------------------------------------


async def test_max_inflight_bounds_what_is_written(own_server: Server) -> None:
    store = open_store(f"memcached://127.0.0.1:{own_server.port}", max_inflight=8, timeout=30)
    values = unique_values(200)
    await store.store_many(values)
    conn = connection(store)
    conn.peak_inflight = 0
    freeze(own_server)  # nothing is answered: only the bound can stop writes
    try:
        tasks = [asyncio.create_task(store.load_raw(k)) for k in values]
        await turns(lambda: conn.waiting > 0 and conn.inflight > 0)
        for _ in range(100):  # plenty of turns for anything unbounded to be written
            await asyncio.sleep(0)
        assert conn.inflight <= 8
        assert conn.waiting >= 200 - 8
    finally:
        own_server.signal(signal.SIGCONT)
    assert await asyncio.gather(*tasks) == list(values.values())
    assert 0 < conn.peak_inflight <= 8
    assert conn.inflight == 0 and conn.waiting == 0


async def test_writes_are_coalesced_per_loop_iteration(memcached_url: str) -> None:
    store = open_store(memcached_url)
    values = unique_values(100)
    await store.store_many(values)
    conn = connection(store)
    conn.peak_inflight, writes = 0, conn.writes
    results = await asyncio.gather(*(store.load_raw(k) for k in values))
    assert results == list(values.values())
    # the first request goes out at once (the connection was idle); the other 99 go in the
    # next write with one shared generation check: 2 writes, not 100, and 102 commands
    assert conn.writes - writes == 2
    assert conn.peak_inflight == 2 + 1 + 99


# -- a model ---------------------------------------------------------------------------------

KEYS = 4
op_strategy = st.one_of(
    st.tuples(st.just("get"), st.integers(0, KEYS - 1)),
    st.tuples(
        st.just("set"),
        st.integers(0, KEYS - 1),
        st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=5)),
    ),
    st.tuples(st.just("incr"), st.integers(0, KEYS - 1), st.integers(-(2**65), 2**65)),
    st.tuples(st.just("delete"), st.integers(0, KEYS - 1)),
    st.tuples(st.just("get_many"), st.just(0)),
)


async def run_program(store: AsyncStorage, task: int, program: list[tuple[Any, ...]]) -> None:
    """Run one task's operations on its own keys, checking each against a dict model."""
    model: dict[str, Any] = {}
    keys = [f"{task}:{i}" for i in range(KEYS)]
    for op, i, *arg in program:
        key = keys[i]
        if op == "get":
            assert await store.load(key) == model.get(key), (op, key)
        elif op == "set":
            await store.store(key, arg[0])
            model[key] = arg[0]
        elif op == "incr":
            if isinstance(model.get(key, 0), str):
                with pytest.raises(WrongType):
                    await store.incr(key, arg[0])
            else:
                model[key] = model.get(key, 0) + arg[0]
                assert await store.incr(key, arg[0]) == model[key], (op, key)
        elif op == "delete":
            assert await store.delete(key) == (key in model), (op, key)
            model.pop(key, None)
        else:
            assert await store.load_many(keys) == model


def test_interleaved_operations_match_a_model(memcached_url: str) -> None:
    loop = asyncio.new_event_loop()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        programs=st.lists(st.lists(op_strategy, max_size=25), min_size=2, max_size=10),
        max_inflight=st.sampled_from([3, 16, 1024]),
    )
    def check(programs: list[list[tuple[Any, ...]]], max_inflight: int) -> None:
        store = open_store(memcached_url, max_inflight=max_inflight)

        async def run() -> None:
            await asyncio.gather(*(run_program(store, t, p) for t, p in enumerate(programs)))

        loop.run_until_complete(run())

    try:
        check()
    finally:
        loop.close()
