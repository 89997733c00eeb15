"""The sync Redis transport's shared connection: the single commands of many threads go out in
one write, each thread gets its own reply, and a failed batch fails (and retries) per command."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.servers.proc import Server
from tests.servers.redis import start_single
from tsot import Storage
from tsot.backends.redis.transport_sync import Shared

pytestmark = pytest.mark.server

THREADS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_single(Path(tmp_path_factory.mktemp("redis-shared")))
    yield srv
    srv.stop()


@pytest.fixture
def store(server: Server) -> Iterator[Storage]:
    s = Storage.from_url(f"redis://127.0.0.1:{server.port}/0", namespace="shared", secret=None)
    yield s
    s.clear()
    s.close()


def shared_of(store: Storage) -> Shared:
    return store.backend._t._shared  # type: ignore[attr-defined,no-any-return]


def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait for ``check`` (other threads reaching a point), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.001)


def gate(shared: Shared, queued: int, before: Callable[[], None] | None = None) -> list[bytes]:
    """Hold the first write on the shared connection until ``queued`` commands wait behind it;
    ``before`` runs just before the second write. Returns every write's bytes."""
    conn = shared.conn
    original = conn.send_packed_command
    writes: list[bytes] = []

    def gated(command: list[bytes], check_health: bool = True) -> None:
        if not writes:
            until(lambda: len(shared._queue) >= queued, f"{queued} queued commands")
        elif len(writes) == 1 and before is not None:
            before()
        writes.append(b"".join(command))
        original(command, check_health=check_health)

    conn.send_packed_command = gated
    return writes


def in_threads(call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` for i in range(THREADS), each in its own thread; results or exceptions."""

    def guarded(i: int) -> Any:
        try:
            return call(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(guarded, range(THREADS)))


def test_queued_commands_go_out_in_one_write_each_with_its_reply(store: Storage) -> None:
    for i in range(THREADS):
        store.store(f"k{i}", f"value {i}")
    writes = gate(shared_of(store), THREADS - 1)
    got = in_threads(lambda i: store.load(f"k{i}"))
    assert got == [f"value {i}" for i in range(THREADS)]
    # the leader's own command, then every command that queued while it was written
    assert [w.count(b"GET\r\n") for w in writes] == [1, THREADS - 1]


def test_one_error_reply_in_a_batch_raises_in_its_own_thread_only(store: Storage) -> None:
    transport = store.backend._t  # type: ignore[attr-defined]
    transport.execute("SET", "shared:text", "abc")
    transport.execute("SET", "shared:n", "10")
    writes = gate(shared_of(store), THREADS - 1)
    got = in_threads(
        lambda i: transport.execute("INCRBY", "shared:text" if i == 3 else "shared:n", 1)
    )
    assert isinstance(got[3], redis.ResponseError)
    assert sorted(g for i, g in enumerate(got) if i != 3) == list(range(11, 11 + THREADS - 1))
    assert len(writes) == 2
    assert transport.execute("GET", "shared:n") == b"17"  # the connection stayed in step


def test_one_thread_leads_alone_and_leaves_the_connection_idle(store: Storage) -> None:
    shared = shared_of(store)
    store.store("a", 1)
    assert store.load("a") == 1
    assert not shared._lead.locked() and not shared._queue
    done = threading.Event()

    def other() -> None:
        store.load("a")
        done.set()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert done.is_set() and not shared._lead.locked()


def test_many_threads_each_get_their_own_replies_and_none_is_left_waiting(store: Storage) -> None:
    """Lost wake-ups would leave a thread asleep with its command queued: every thread must
    finish, with exactly its own increments counted."""
    calls = 300
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(1, calls + 1):
                assert store.incr(f"c{i}") == n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not [t for t in threads if t.is_alive()], "a thread never got its reply"
    assert errors == []
    assert [store.load_int(f"c{i}") for i in range(THREADS)] == [calls] * THREADS
    assert not shared_of(store)._queue
