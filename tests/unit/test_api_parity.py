"""Storage and AsyncStorage are twins: the same public methods, signatures and docs intent."""

from __future__ import annotations

import inspect

from tsot import AsyncStorage, Storage
from tsot.locks import AsyncLock, Lock

SYNC_ONLY = {"__enter__", "__exit__"}
ASYNC_ONLY = {"__aenter__", "__aexit__"}
NOT_AWAITED = {"iter_keys", "lock"}
"""Methods whose result is used with ``async for`` / ``async with`` rather than awaited."""


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in vars(cls).items()
        if callable(member) and (not name.startswith("_") or name in SYNC_ONLY | ASYNC_ONLY)
    }


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
