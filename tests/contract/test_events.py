"""The event hook on every backend, sync and async: one op event per backend call, counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tsot.events import Event


def _ops(events: list[Event]) -> list[tuple[str, int, int | None, int, str | None]]:
    return [(e.operation, e.keys, e.hits, e.bytes, e.error) for e in events if e.kind == "op"]


def test_listener_sees_each_operation(opener: Callable[..., Any]) -> None:
    store = opener()
    seen: list[Event] = []
    detach = store.listen(seen.append)
    store.store("a", "xyz")  # "s" tag + 3 bytes (unsigned: no secret here)
    assert store.load("a") == "xyz"
    assert store.load("missing") is None
    assert store.load_many(["a", "missing", "also-missing"]) == {"a": "xyz"}
    assert store.delete("a") is True
    size = len(store.codec.encode("xyz"))  # 4; 3 in process memory (the str itself)
    assert _ops(seen) == [
        ("set", 1, None, size, None),
        ("get", 1, 1, size, None),
        ("get", 1, 0, 0, None),
        ("get_many", 3, 1, size, None),
        ("delete", 1, None, 0, None),
    ]
    assert all(e.duration >= 0 and e.source.namespace == store.namespace for e in seen)
    detach()
    store.load("a")
    assert len(_ops(seen)) == 5  # detached: no more events for it
    ops = store.stats()["operations"]  # the counters go on
    assert ops["get"] == {**ops["get"], "calls": 3, "hits": 1, "misses": 2, "errors": 0}
    assert ops["get_many"]["misses"] == 2


def test_errors_are_reported_and_raised(opener: Callable[..., Any]) -> None:
    store = opener()
    seen: list[Event] = []
    store.listen(seen.append)
    store.store("text", "not a number")
    try:
        store.incr("text")
    except TypeError:
        pass
    else:
        raise AssertionError("incr of a str must raise")
    assert _ops(seen)[-1] == ("incr", 1, None, 0, "WrongType")
    assert store.stats()["operations"]["incr"]["errors"] == 1


def test_a_failing_listener_never_fails_the_call(opener: Callable[..., Any]) -> None:
    store = opener()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    store.listen(broken)
    store.listen(seen.append)
    store.store("k", 1)
    assert store.load("k") == 1
    # op events only: the Redis local cache adds "local" ones (its server's invalidations)
    assert [e.operation for e in seen if e.kind == "op"] == ["set", "get"]


def test_without_a_listener_the_backend_is_not_wrapped(opener: Callable[..., Any]) -> None:
    """The hook costs nothing until used: the storage calls the backend object it opened."""
    store = opener()
    backend = store.backend
    assert type(backend).__name__ not in ("Observed", "AsyncObserved")
    assert store.stats().get("operations") is None
    store.listen(lambda event: None)
    assert store.backend is not backend


def test_replace_is_one_backend_call(opener: Callable[..., Any]) -> None:
    """``replace`` is one atomic primitive on every backend, never ``exists`` then ``set``:
    the hook sees exactly one call per replace, present key or absent."""
    store = opener()
    seen: list[Event] = []
    store.listen(seen.append)
    assert store.replace("a", "xyz") is False
    store.store("a", "old")
    assert store.replace("a", "xyz") is True
    size = len(store.codec.encode("xyz"))
    assert _ops(seen) == [
        ("replace", 1, None, size, None),
        ("set", 1, None, len(store.codec.encode("old")), None),
        ("replace", 1, None, size, None),
    ]
    assert store.stats()["operations"]["replace"]["calls"] == 2
