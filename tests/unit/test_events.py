"""The event hook's own rules: one instrumentation however many threads race to listen,
listener errors, and later event kinds."""

from __future__ import annotations

import threading

import pytest

from tsot import Storage
from tsot.events import Event, Observed, Source, notify


def test_racing_listeners_instrument_once() -> None:
    store = Storage.new_imc()
    raw = store.backend
    barrier = threading.Barrier(8)
    seen: list[Event] = []

    def listen() -> None:
        barrier.wait()
        store.listen(seen.append)

    threads = [threading.Thread(target=listen) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(store.backend, Observed) and store.backend.inner is raw
    store.load("k")
    assert len(seen) == 8  # eight listeners, one event each, one wrapper


def test_a_listener_must_be_callable() -> None:
    with pytest.raises(TypeError, match="must be callable, not int"):
        Storage.new_imc().listen(3)  # type: ignore[arg-type]


def test_later_kinds_are_counted_and_delivered() -> None:
    store = Storage.new_imc(metrics="stats", label="lbl")
    seen: list[Event] = []
    store.listen(seen.append)
    hub = store._hub
    assert hub is not None and hub.source == Source("lbl", "memory", None, None, "")
    notify(store, "stampede", "get", reason="waited")
    notify(Storage.new_imc(), "stampede", "get", reason="waited")  # no listener: nothing
    assert [(e.kind, e.operation, dict(e.fields)) for e in seen] == [
        ("stampede", "get", {"reason": "waited"})
    ]
    assert store.stats()["events"] == {"stampede:waited": 1}


def test_source_of_a_url_hides_credentials_and_query() -> None:
    from tsot import parse_url

    loc = parse_url("rediss://user:pw@cache.example:6380/2?socket_timeout=1")
    assert Source.of(loc, "ns", "") == Source(
        "rediss://cache.example:6380/2", "redis", "cache.example", 6380, "ns"
    )


def test_lock_primitives_are_observed() -> None:
    store = Storage.new_imc()
    seen: list[Event] = []
    store.listen(seen.append)
    with store.lock("job", timeout=5):
        pass
    ops = [e.operation for e in seen]
    assert ops[0] == "add" and ops[-1] == "delete_if"  # taken, then released by its owner
    assert store.stats()["operations"]["delete_if"]["calls"] == 1
