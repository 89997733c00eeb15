"""``aget_or_set`` awaits an async default, on every class and storage kind (Django's base class
calls the default without awaiting it and fails to pickle the coroutine)."""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings

import pytest
from django.core.cache import caches
from django.test import override_settings

from tsot_django import TsotCache


async def test_an_async_def_default_is_awaited_once_and_stored(cache: TsotCache) -> None:
    calls: list[str] = []

    async def compute() -> dict[str, int]:
        calls.append("compute")
        await asyncio.sleep(0)  # really asynchronous
        return {"answer": 42}

    assert await cache.aget_or_set("report", compute, timeout=60) == {"answer": 42}
    assert await cache.aget("report") == {"answer": 42}
    assert await cache.aget_or_set("report", compute) == {"answer": 42}
    assert calls == ["compute"]  # the hit did not call it again
    assert cache.get("report") == {"answer": 42}  # sync sees what async stored


async def test_an_awaitable_default_and_a_callable_returning_one(cache: TsotCache) -> None:
    async def value(v: str) -> str:
        return v

    assert await cache.aget_or_set("coro", value("from a coroutine")) == "from a coroutine"
    assert await cache.aget_or_set("lambda", lambda: value("from a lambda")) == "from a lambda"
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    future.set_result(7)
    assert await cache.aget_or_set("future", future) == 7
    assert await cache.aget_many(["coro", "lambda", "future"]) == {
        "coro": "from a coroutine",
        "lambda": "from a lambda",
        "future": 7,
    }


async def test_a_coroutine_default_not_needed_on_a_hit_is_closed(cache: TsotCache) -> None:
    async def never() -> str:
        raise AssertionError("a hit must not run the default")

    await cache.aset("hit", "cached")
    coro = never()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would be an error
        assert await cache.aget_or_set("hit", coro) == "cached"
    assert coro.cr_frame is None  # closed, never started


async def test_sync_defaults_and_errors_of_an_async_default(cache: TsotCache) -> None:
    assert await cache.aget_or_set("plain", "value") == "value"
    assert await cache.aget_or_set("callable", lambda: 5) == 5

    async def broken() -> str:
        raise LookupError("the default failed")

    with pytest.raises(LookupError, match="the default failed"):
        await cache.aget_or_set("broken", broken)
    assert await cache.ahas_key("broken") is False  # nothing stored


async def test_an_async_default_awaited_on_a_timeout_of_zero_is_not_stored(
    cache: TsotCache,
) -> None:
    async def compute() -> str:
        return "fresh"

    assert await cache.aget_or_set("zero", compute, timeout=0) == "fresh"
    assert await cache.ahas_key("zero") is False


# -- the load of issue #24: a hot key, blocking computes, a busy loop ----------------------------


@pytest.mark.server
@pytest.mark.parametrize("fail_open", [False, True], ids=["raise", "fail_open"])
@pytest.mark.parametrize("kind", ["redis", "memcached"])
async def test_blocking_computes_on_a_hot_key_fail_no_request(
    kind: str, fail_open: bool, request: pytest.FixtureRequest
) -> None:
    """32 tasks ``aget_or_set`` one key whose default blocks the loop for a quarter of the read
    timeout: the adds queued meanwhile wait 8 read timeouts to be written, on a healthy server.
    None may fail, and with fail_open the breaker must stay closed (a probe write is kept)."""
    url = request.getfixturevalue(f"{kind}_url")
    read_timeout = 0.3
    options = {
        "NAMESPACE": f"hot{uuid.uuid4().hex[:10]}",
        "socket_timeout" if kind == "redis" else "timeout": read_timeout,
        "retries": 0,
        "FAIL_OPEN": fail_open,
        # the lease would let one task compute and the others wait: this test wants the stall
        "stampede": False,
    }
    setting = {"default": {"BACKEND": "tsot_django.TsotCache", "LOCATION": url, "OPTIONS": options}}
    with override_settings(CACHES=setting):
        cache = caches["default"]
        assert await cache.aget("warm") is None  # connected: the 32 reads go out together
        computed: list[int] = []

        def compute() -> str:
            computed.append(1)
            time.sleep(read_timeout / 4)  # a sync ORM call, a template: the loop is blocked
            return "fresh"

        results = await asyncio.gather(
            *(cache.aget_or_set("hot", compute, timeout=60) for _ in range(32)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"{len(failures)} failed, first: {failures[0]!r}"
        assert results == ["fresh"] * 32
        assert len(computed) == 32  # every task missed: the stall was 32 computes long
        await cache.aset("probe", "kept")
        assert await cache.aget("probe") == "kept"  # no breaker opened: the write went through
        await cache.aclear()
