"""Error messages name the caller's key, never the namespaced bytes key (every backend, sync and
async)."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from tsot import InvalidKey, LockError, SerializationError, ValueTooLarge, WrongType


def names_the_key(exc: BaseException, key: str, namespace: str) -> None:
    text = str(exc)
    assert repr(key) in text, text
    assert namespace not in text, text  # not the final key: namespace + ":" + key
    assert not re.search(r"(?<!\w)b'", text), text  # no bytes literal


def test_incr_of_a_non_integer(opener: Callable[..., Any]) -> None:
    store = opener(namespace="app:v1")
    store.store("counter", "not a number")
    with pytest.raises(WrongType) as info:
        store.incr("counter")
    names_the_key(info.value, "counter", "app%3Av1")
    store.store(b"bytes-counter", 1.5)  # a bytes key is shown as the str it equals
    with pytest.raises(WrongType) as info:
        store.incr(b"bytes-counter", 2)
    names_the_key(info.value, "bytes-counter", "app%3Av1")


def test_oversized_value(opener: Callable[..., Any]) -> None:
    store = opener(namespace="sized", max_value_size=100)
    with pytest.raises(ValueTooLarge) as info:
        store.store("big", "x" * 1000)
    names_the_key(info.value, "big", "sized:")
    with pytest.raises(ValueTooLarge) as info:
        store.store_many({"small": "x", "large": "y" * 1000})
    names_the_key(info.value, "large", "sized:")
    assert store.load("small") is None  # nothing was written


def test_unpicklable_value(opener: Callable[..., Any]) -> None:
    store = opener(namespace="pickles")
    with pytest.raises(SerializationError) as info:
        store.store("callback", lambda: None)
    names_the_key(info.value, "callback", "pickles:")
    with pytest.raises(SerializationError) as info:
        store.add("callback", lambda: None)
    names_the_key(info.value, "callback", "pickles:")


def test_invalid_key(opener: Callable[..., Any]) -> None:
    store = opener(namespace="keys")
    with pytest.raises(InvalidKey) as info:
        store.store("bad\ud800", 1)
    assert "'bad\\ud800'" in str(info.value)
    assert "keys:" not in str(info.value)
    with pytest.raises(InvalidKey) as info:
        store.load("k" * 70_000)
    assert "(70000 characters)" in str(info.value)
    assert "keys:" not in str(info.value)


def test_lock_errors(opener: Callable[..., Any]) -> None:
    store = opener(namespace="locks")
    lock = store.lock("nightly-job", timeout=5)  # an AsyncLock on the async targets
    with pytest.raises(LockError) as info:
        released = lock.release()
        if inspect.isawaitable(released):
            asyncio.run(released)  # an unlocked lock raises before any I/O
    names_the_key(info.value, "nightly-job", "locks:")
