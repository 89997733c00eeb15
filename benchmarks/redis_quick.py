"""Quick Redis figures: tsot against raw redis-py (hiredis) on one local server, sync and async.

    .venv/bin/python benchmarks/redis_quick.py            # starts its own redis-server
    .venv/bin/python benchmarks/redis_quick.py redis://127.0.0.1:7000/0

Prints microseconds per operation (best of several rounds: wall time and this process's CPU).
No assertions: timings depend on the machine.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from benchmarks.servers import running
from tsot import AsyncStorage, Storage

ROUNDS, N, N_MANY = 5, 3000, 300


@contextmanager
def server() -> Iterator[str]:
    """A redis-server of this run's own (benchmarks.servers starts and stops it by PID)."""
    with tempfile.TemporaryDirectory() as d, running("redis", Path(d)) as address:
        yield f"redis://{address}/0"


def bench(name: str, fn: Callable[[], Any], n: int) -> None:
    for _ in range(min(n, 300)):
        fn()
    best_wall = best_cpu = float("inf")
    for _ in range(ROUNDS):
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        best_wall = min(best_wall, (time.perf_counter() - w) / n * 1e6)
        best_cpu = min(best_cpu, (time.process_time() - c) / n * 1e6)
    print(f"  {name:<44} {best_wall:8.1f} us wall {best_cpu:8.1f} us cpu")


async def abench(name: str, fn: Callable[[], Awaitable[Any]], n: int) -> None:
    for _ in range(min(n, 300)):
        await fn()
    best_wall = best_cpu = float("inf")
    for _ in range(ROUNDS):
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            await fn()
        best_wall = min(best_wall, (time.perf_counter() - w) / n * 1e6)
        best_cpu = min(best_cpu, (time.process_time() - c) / n * 1e6)
    print(f"  {name:<44} {best_wall:8.1f} us wall {best_cpu:8.1f} us cpu")


def sync_figures(url: str) -> None:
    r = redis.Redis.from_url(url)
    store = Storage.from_url(url, namespace="bq")
    b = store.backend
    value = b"v" * 100
    keys = [f"k{i}" for i in range(100)]
    bkeys = [f"bq:k{i}".encode() for i in range(100)]
    mapping = {k: value for k in keys}
    bitems = [(k, value) for k in bkeys]

    def raw_set_many() -> None:
        p = r.pipeline(transaction=False)
        for k in bkeys:
            p.set(k, value, px=60_000)
        p.execute()

    print("sync, one key (100-byte value)")
    bench("redis-py r.set(k, v)", lambda: r.set(b"bq:k", value), N)
    bench("tsot backend.set (bytes)", lambda: b.set(b"bq:k", value, None), N)
    bench("tsot Storage.store_raw", lambda: store.store_raw("k", value), N)
    bench("redis-py r.get(k)", lambda: r.get(b"bq:k"), N)
    bench("tsot backend.get (bytes)", lambda: b.get(b"bq:k"), N)
    bench("tsot Storage.load_raw", lambda: store.load_raw("k"), N)
    bench("redis-py r.incr(k)", lambda: r.incr(b"bq:n"), N)
    bench("tsot Storage.incr", lambda: store.incr("n"), N)
    print("sync, 100 keys")
    bench("redis-py r.mget(100)", lambda: r.mget(bkeys), N_MANY)
    bench("tsot backend.get_many(100)", lambda: b.get_many(bkeys), N_MANY)
    bench("tsot Storage.load_many(100)", lambda: store.load_many(keys), N_MANY)
    bench("redis-py pipeline 100 x SET PX", raw_set_many, N_MANY)
    bench("tsot backend.set_many(100, ttl)", lambda: b.set_many(bitems, 60_000), N_MANY)
    bench("tsot Storage.store_many(100, ttl=60)", lambda: store.store_many(mapping, 60), N_MANY)
    bench("redis-py r.mset(100)", lambda: r.mset(dict(bitems)), N_MANY)
    bench("tsot Storage.store_many(100, ttl=None)", lambda: store.store_many(mapping, None), N_MANY)
    store.clear()
    r.close()


async def async_figures(url: str) -> None:
    r = redis.asyncio.Redis.from_url(url)
    store = AsyncStorage.from_url(url, namespace="bqa")
    value = b"v" * 100
    keys = [f"k{i}" for i in range(100)]
    bkeys = [f"bqa:k{i}".encode() for i in range(100)]
    print("asyncio, one task")
    await abench("redis.asyncio r.set(k, v)", lambda: r.set(b"bqa:k", value), N)
    await abench("tsot AsyncStorage.store_raw", lambda: store.store_raw("k", value), N)
    await abench("redis.asyncio r.get(k)", lambda: r.get(b"bqa:k"), N)
    await abench("tsot AsyncStorage.load_raw", lambda: store.load_raw("k"), N)
    await abench("redis.asyncio r.mget(100)", lambda: r.mget(bkeys), N_MANY)
    await abench("tsot AsyncStorage.load_many(100)", lambda: store.load_many(keys), N_MANY)
    await store.clear()
    await r.aclose()


def main() -> None:
    import hiredis

    print(
        f"redis-py {redis.__version__}, hiredis {hiredis.__version__}, "
        f"parser {redis.connection.DefaultParser.__name__}"
    )
    if len(sys.argv) > 1:
        sync_figures(sys.argv[1])
        asyncio.run(async_figures(sys.argv[1]))
        return
    with server() as url:
        sync_figures(url)
        asyncio.run(async_figures(url))


if __name__ == "__main__":
    main()
