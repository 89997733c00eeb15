"""A batch of many threads' commands on the shared sync connection loses its replies: every
command in it is in doubt, so what must not run twice raises and what may is sent again."""

from __future__ import annotations

import pytest

from tests.backends.test_redis_shared import THREADS, gate, in_threads, shared_of
from tests.faults.proxy import Fault
from tests.faults.redis.conftest import Proxied
from tsot import OutcomeUnknown, Storage

pytestmark = pytest.mark.server


def drop(proxied: Proxied, command: bytes, faults: list[Fault]) -> None:
    """Drop the reply of the next write holding ``command`` (armed just before the batch's)."""
    faults.append(proxied.proxy.drop_reply(match=command))


def test_increments_of_a_lost_batch_are_not_resent(proxied: Proxied) -> None:
    store = Storage.from_url(proxied.url, namespace="shared", secret=None)
    store.store_int("n", 100)
    faults: list[Fault] = []
    writes = gate(shared_of(store), THREADS - 1, before=lambda: drop(proxied, b"INCRBY", faults))
    got = in_threads(lambda i: store.incr("n"))
    assert [g for g in got if isinstance(g, int)] == [101]  # the first write, alone
    assert sum(isinstance(g, OutcomeUnknown) for g in got) == THREADS - 1  # the whole batch
    assert len(writes) == 2 and faults[0].hits == 1
    assert store.incr("n") == 100 + THREADS + 1  # each ran once; the next call reconnects


def test_reads_of_a_lost_batch_are_retried_one_by_one(proxied: Proxied) -> None:
    store = Storage.from_url(proxied.url, namespace="shared", secret=None)
    for i in range(THREADS):
        store.store(f"r{i}", i * 10)
    faults: list[Fault] = []
    writes = gate(shared_of(store), THREADS - 1, before=lambda: drop(proxied, b"GET", faults))
    assert in_threads(lambda i: store.load(f"r{i}")) == [i * 10 for i in range(THREADS)]
    assert len(writes) == 2 and faults[0].hits == 1
