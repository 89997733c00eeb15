"""Quick memcached figures: tsot (sync and asyncio) against raw pymemcache and asyncio clients.

Run: ``.venv/bin/python -m benchmarks.memcached_quick [N] [ALT_DIR]``. Starts its own memcached,
prints microseconds per operation (100-byte values; get_many/set_many of 100 keys) and, for
asyncio, the rate with 50 concurrent tasks. ``ALT_DIR`` is an optional directory holding
aiomcache and emcache (``pip install --target ALT_DIR aiomcache emcache``) to compare with;
they are not project dependencies. No assertions: these are figures, not tests.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymemcache.client.base import Client, PooledClient

from tests.servers.memcached import start_memcached
from tsot import AsyncStorage, Storage

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
ALT = sys.argv[2] if len(sys.argv) > 2 else None
MANY = 100
VALUE = b"v" * 100
KEYS = [f"key:{i}" for i in range(N)]
GROUPS = [KEYS[i : i + MANY] for i in range(0, N, MANY)]
TASKS = 50


def per_op(fn: Callable[[], Any], ops: int) -> float:
    """Best of three runs, in microseconds per operation."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / ops * 1e6


def row(name: str, get: float, set_: float, many: float) -> None:
    print(f"{name:<34}{get:>9.1f}{set_:>9.1f}{many:>12.1f}")


def sync_figures(port: int) -> None:
    print(f"{'sync, us/op':<34}{'get':>9}{'set':>9}{'get_many100':>12}")
    for name, client in (
        ("pymemcache Client", Client(("127.0.0.1", port), no_delay=True)),
        ("pymemcache PooledClient", PooledClient(("127.0.0.1", port), no_delay=True)),
    ):
        client.set_many({k: VALUE for k in KEYS}, noreply=False)
        row(
            name,
            per_op(lambda c=client: [c.get(k) for k in KEYS], N),
            per_op(lambda c=client: [c.set(k, VALUE, noreply=False) for k in KEYS], N),
            per_op(lambda c=client: [c.get_many(g) for g in GROUPS], len(GROUPS)),
        )
        client.close()
    store = Storage.from_url(f"memcached://127.0.0.1:{port}", namespace="bench")
    store.store_many({k: VALUE for k in KEYS})
    row(
        "tsot Storage (load_raw/store_raw)",
        per_op(lambda: [store.load_raw(k) for k in KEYS], N),
        per_op(lambda: [store.store_raw(k, VALUE) for k in KEYS], N),
        per_op(lambda: [store.load_many(g) for g in GROUPS], len(GROUPS)),
    )
    b = store.backend
    finals = [f"bench:{k}".encode() for k in KEYS]
    fgroups = [finals[i : i + MANY] for i in range(0, N, MANY)]
    row(
        "tsot backend (bytes in, bytes out)",
        per_op(lambda: [b.get(k) for k in finals], N),
        per_op(lambda: [b.set(k, VALUE, None) for k in finals], N),
        per_op(lambda: [b.get_many(g) for g in fgroups], len(fgroups)),
    )


async def a_per_op(fn: Callable[[], Awaitable[Any]], ops: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        await fn()
        best = min(best, time.perf_counter() - start)
    return best / ops * 1e6


async def concurrent_rate(get: Callable[[str], Awaitable[Any]]) -> float:
    """Gets per second with TASKS tasks each reading N / TASKS keys."""
    share = N // TASKS

    async def worker(i: int) -> None:
        for k in KEYS[i * share : (i + 1) * share]:
            await get(k)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(TASKS)))
    return share * TASKS / (time.perf_counter() - start)


async def async_clients(port: int) -> list[tuple[str, Any, Any, Any]]:
    """(name, get, set, get_many) coroutine functions over str keys, per client."""
    out: list[tuple[str, Any, Any, Any]] = []
    store = AsyncStorage.from_url(f"memcached://127.0.0.1:{port}", namespace="abench")
    out.append(
        (
            "tsot AsyncStorage (own meta client)",
            store.load_raw,
            lambda k: store.store_raw(k, VALUE),
            store.load_many,
        )
    )
    pooled = PooledClient(("127.0.0.1", port), no_delay=True, max_pool_size=64)
    out.append(
        (
            "pymemcache via asyncio.to_thread",
            lambda k: asyncio.to_thread(pooled.get, k),
            lambda k: asyncio.to_thread(pooled.set, k, VALUE, 0, False),
            lambda ks: asyncio.to_thread(pooled.get_many, ks),
        )
    )
    if ALT is not None:
        sys.path.insert(0, ALT)
        try:
            import aiomcache

            aio = aiomcache.Client("127.0.0.1", port, pool_size=8)
            out.append(
                (
                    "aiomcache 0.8 (text protocol)",
                    lambda k: aio.get(k.encode()),
                    lambda k: aio.set(k.encode(), VALUE),
                    lambda ks: aio.multi_get(*(k.encode() for k in ks)),
                )
            )
        except ImportError:
            print("(aiomcache not found in ALT_DIR)")
        try:
            import emcache

            em = await emcache.create_client([emcache.MemcachedHostAddress("127.0.0.1", port)])
            out.append(
                (
                    "emcache 1.3 (Cython)",
                    lambda k: em.get(k.encode()),
                    lambda k: em.set(k.encode(), VALUE),
                    lambda ks: em.get_many([k.encode() for k in ks]),
                )
            )
        except ImportError:
            print("(emcache not found in ALT_DIR)")
    return out


async def async_figures(port: int) -> None:
    print(f"\n{'asyncio, us/op':<34}{'get':>9}{'set':>9}{'get_many100':>12}{'get/s x50':>12}")
    for name, get, set_, many in await async_clients(port):
        for k in KEYS:
            await set_(k)

        async def gets(g: Any = get) -> None:
            for k in KEYS:
                await g(k)

        async def sets(s: Any = set_) -> None:
            for k in KEYS:
                await s(k)

        async def manys(m: Any = many) -> None:
            for group in GROUPS:
                await m(group)

        g = await a_per_op(gets, N)
        s = await a_per_op(sets, N)
        m = await a_per_op(manys, len(GROUPS))
        rate = await concurrent_rate(get)
        print(f"{name:<34}{g:>9.1f}{s:>9.1f}{m:>12.1f}{rate:>12.0f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_memcached(Path(tmp), "bench", "-t", "2")
        try:
            print(f"memcached on 127.0.0.1:{server.port}, N={N}\n")
            sync_figures(server.port)
            asyncio.run(async_figures(server.port))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
