"""Storage and AsyncStorage are twins: the same public methods, signatures and docs intent."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from tsot import AsyncStorage, ConfigurationError, Storage
from tsot.locks import AsyncLock, Lock

SYNC_ONLY = {"__enter__", "__exit__"}
ASYNC_ONLY = {"__aenter__", "__aexit__"}
NOT_AWAITED = {"iter_keys", "lock", "listen"}
"""Methods whose result is used with ``async for`` / ``async with`` (or at once) rather than
awaited."""
RETURNS_COROUTINE = {"get_or_compute"}
"""Methods defined once for both classes (their signature too) that return, on AsyncStorage,
the coroutine of its asyncio twin (``_read_through``) to await."""


def _public(cls: type) -> dict[str, object]:
    """The public methods of ``cls``, inherited ones included (the shared base defines some)."""
    found: dict[str, object] = {}
    for klass in reversed(cls.__mro__[:-1]):
        for name, member in vars(klass).items():
            if callable(member) and (not name.startswith("_") or name in SYNC_ONLY | ASYNC_ONLY):
                found[name] = member
    return found


def test_same_methods_and_signatures() -> None:
    sync, aio = _public(Storage), _public(AsyncStorage)
    assert set(sync) - SYNC_ONLY == set(aio) - ASYNC_ONLY
    for name in set(sync) - SYNC_ONLY:
        s, a = sync[name], aio[name]
        if isinstance(s, classmethod):
            continue  # from_url/new_imc: same parameters, different return type
        sig_s = inspect.signature(s)  # type: ignore[arg-type]
        sig_a = inspect.signature(a)  # type: ignore[arg-type]
        assert list(sig_s.parameters) == list(sig_a.parameters), name
        if name in NOT_AWAITED:
            assert not inspect.iscoroutinefunction(a), f"AsyncStorage.{name} is not awaited"
        elif name in RETURNS_COROUTINE:
            assert s is a, f"{name} is defined once"
        else:
            assert inspect.iscoroutinefunction(a), f"AsyncStorage.{name} must be a coroutine"


def test_locks_are_twins() -> None:
    sync, aio = _public(Lock), _public(AsyncLock)
    assert set(sync) - SYNC_ONLY == set(aio) - ASYNC_ONLY
    for name in set(sync) - SYNC_ONLY:
        sig_s, sig_a = inspect.signature(sync[name]), inspect.signature(aio[name])  # type: ignore[arg-type]
        assert list(sig_s.parameters) == list(sig_a.parameters), name
        assert inspect.iscoroutinefunction(aio[name]), f"AsyncLock.{name} must be a coroutine"


def test_constructors_take_the_same_options() -> None:
    for name in ("from_url", "new_imc"):
        assert list(inspect.signature(getattr(Storage, name)).parameters) == list(
            inspect.signature(getattr(AsyncStorage, name)).parameters
        )


def test_get_or_compute_returns_a_coroutine_on_async_storage() -> None:
    """Defined once (one signature), it is awaited on AsyncStorage and does nothing until then:
    a bad TTL raises at the await, as from an ``async def``."""
    assert inspect.iscoroutinefunction(AsyncStorage._read_through)
    assert not inspect.iscoroutinefunction(Storage._read_through)

    async def main() -> None:
        async with AsyncStorage.new_imc() as s:
            pending = s.get_or_compute("k", lambda: 1, ttl="bad")  # type: ignore[arg-type]
            assert inspect.iscoroutine(pending)
            with pytest.raises(ConfigurationError):
                await pending
            assert await s.get_or_compute("k", lambda: 2) == 2

    asyncio.run(main())
    with Storage.new_imc() as s:
        assert s.get_or_compute("k", lambda: 3) == 3
