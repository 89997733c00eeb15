"""The types callers see on Storage and AsyncStorage: mypy fails this file if one changes.

Never run: the functions only have to type-check (``mypy`` checks this package; see
pyproject's ``[tool.mypy]``).
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import Any

from typing_extensions import assert_type

from tsot import AsyncLock, AsyncStorage, Lock, Storage
from tsot.keys import Key


def sync_types(s: Storage, str_keys: list[str], mixed: list[Key]) -> None:
    assert_type(s.load_many(["a", "b"]), dict[str, Any])
    assert_type(s.load_many(str_keys), dict[str, Any])
    assert_type(s.load_many(k for k in str_keys), dict[str, Any])
    assert_type(s.load_many([b"a"]), dict[bytes, Any])
    assert_type(s.load_many(mixed), dict[Any, Any])
    assert_type(s.load("k"), Any)
    assert_type(s.load_string("k"), str | None)
    assert_type(s.load_int("k"), int | None)
    assert_type(s.load_raw("k"), bytes | None)
    assert_type(s.ttl("k"), float | None)
    assert_type(s.incr("k"), int)
    assert_type(s.add("k", 1), bool)
    assert_type(s.delete_many(str_keys), int)
    assert_type(s.stats(), dict[str, Any])
    assert_type(s.keys("user:*"), list[str])
    assert_type(s.lock("job"), Lock)  # defined once for both classes (tsot.storage._Core)
    assert_type(s.get_or_compute("k", lambda: 1), Any)
    remaining = s.ttl("k")
    if remaining is not None and remaining != math.inf:
        assert_type(remaining + 1.0, float)


async def async_types(s: AsyncStorage, str_keys: list[str]) -> None:
    assert_type(await s.load_many(["a"]), dict[str, Any])
    assert_type(await s.load_many(str_keys), dict[str, Any])
    assert_type(await s.load_many([b"a"]), dict[bytes, Any])
    assert_type(await s.load_string("k"), str | None)
    assert_type(await s.incr("k"), int)
    assert_type(await s.ttl("k"), float | None)
    assert_type(await s.keys(), list[str])
    assert_type(s.lock("job"), AsyncLock)
    pending = s.get_or_compute("k", lambda: 1)  # mypy flags it if never awaited
    assert_type(await assert_type(pending, Coroutine[Any, Any, Any]), Any)
