"""asyncio Redis at 1, 10, 50 and 200 concurrent tasks: GET/SET of 100 B against sync redis-py.

    .venv/bin/python -m benchmarks.redis_async                 # starts its own redis-server
    .venv/bin/python -m benchmarks.redis_async --profile       # cProfile tsot_django aget, 50 tasks
    .venv/bin/python -m benchmarks.redis_async --threads       # the sync API from 8 threads

Contenders: raw sync redis-py with hiredis (1.0x, one thread), raw ``redis.asyncio`` (its own
pool), tsot ``AsyncStorage``, and ``tsot_django`` ``aget``/``aset`` on a ``TsotCache`` alias.
django-vcache needs Python >= 3.12: when ``.venv-dj61`` exists, this script re-runs itself there
(``--child``) for django-vcache (``SERIALIZER: pickle``), tsot_django and the sync baseline of
that interpreter, so every ratio compares figures of one process and one run.
Throughput is operations per second, best of several rounds. No assertions: timings depend on
the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.servers import running

TASKS = (1, 10, 50, 200)
ROUNDS = 5
TOTAL = 20_000
VALUE = b"v" * 100
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def server() -> Iterator[str]:
    """A redis-server of this run's own (benchmarks.servers starts and stops it by PID)."""
    with tempfile.TemporaryDirectory() as d, running("redis", Path(d)) as address:
        yield f"redis://{address}/0"


def sync_rate(op: Callable[[], Any], total: int = TOTAL // 2) -> float:
    for _ in range(500):
        op()
    best = 0.0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(total):
            op()
        best = max(best, total / (time.perf_counter() - started))
    return best


async def async_rate(op: Callable[[], Awaitable[Any]], tasks: int, total: int = TOTAL) -> float:
    per = max(1, total // tasks)
    if tasks == 1:
        per //= 2

    async def worker() -> None:
        for _ in range(per):
            await op()

    await asyncio.gather(*(worker() for _ in range(tasks)))  # warm up: connections, pools
    best = 0.0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        best = max(best, per * tasks / (time.perf_counter() - started))
    return best


def django_caches(url: str, vcache: bool) -> dict[str, Any]:
    """Configure Django in this process and return the cache aliases to measure."""
    import django
    from django.conf import settings

    caches = {"default": {"BACKEND": "tsot_django.TsotCache", "LOCATION": url, "TIMEOUT": 300}}
    if vcache:
        caches["vcache"] = {
            "BACKEND": "django_vcache.backend.ValkeyCache",
            "LOCATION": url.replace("redis://", "valkey://", 1),
            "OPTIONS": {"SERIALIZER": "pickle"},
            "TIMEOUT": 300,
        }
    settings.configure(CACHES=caches, SECRET_KEY="benchmark-secret", USE_TZ=True)
    django.setup()
    from django.core.cache import caches as django_cache_handler

    return {name: django_cache_handler[name] for name in caches}


def measure(url: str, child: bool) -> dict[str, dict[str, float]]:
    """{contender: {"sync" or tasks: ops/s}} for this interpreter."""
    import redis

    out: dict[str, dict[str, float]] = {}
    r = redis.Redis.from_url(url)
    r.set(b"bench:k", VALUE)
    out["redis-py sync get"] = {"sync": sync_rate(lambda: r.get(b"bench:k"))}
    out["redis-py sync set"] = {"sync": sync_rate(lambda: r.set(b"bench:k", VALUE, ex=300))}
    vcache = False
    if child:
        try:
            import django_vcache  # type: ignore[import-not-found]  # noqa: F401

            vcache = True
        except ImportError:
            pass
    caches = django_caches(url, vcache)

    async def run() -> None:
        from tsot import AsyncStorage

        dj = caches["default"]
        await dj.aset("k", VALUE)
        rows: dict[str, Callable[[], Awaitable[Any]]] = {}
        if not child:
            import redis.asyncio

            ra = redis.asyncio.Redis.from_url(url, max_connections=max(TASKS))
            store = AsyncStorage.from_url(url, namespace="bench")
            await store.store("k", VALUE)
            rows["redis.asyncio get"] = lambda: ra.get(b"bench:k")
            rows["tsot AsyncStorage.load"] = lambda: store.load("k")
            rows["tsot AsyncStorage.store"] = lambda: store.store("k", VALUE, ttl=300)
        rows["tsot_django aget"] = lambda: dj.aget("k")
        rows["tsot_django aset"] = lambda: dj.aset("k", VALUE)
        if vcache:
            vc = caches["vcache"]
            await vc.aset("k", VALUE)
            rows["django-vcache aget"] = lambda: vc.aget("k")
            rows["django-vcache aset"] = lambda: vc.aset("k", VALUE)
        for name, op in rows.items():
            out[name] = {str(n): await async_rate(op, n) for n in TASKS}
        if not child:
            await ra.aclose()  # type: ignore[attr-defined]

    asyncio.run(run())
    return out


def table(figures: dict[str, dict[str, float]], title: str) -> None:
    base = {
        "get": figures["redis-py sync get"]["sync"],
        "set": figures["redis-py sync set"]["sync"],
    }
    print(f"\n{title}")
    print(f"  {'contender':<28}" + "".join(f"{n:>9} tasks  " for n in TASKS))
    for name, row in figures.items():
        kind = "set" if ("set" in name.split()[-1] or "store" in name) else "get"
        if "sync" in row:
            print(f"  {name:<28}{row['sync']:>9,.0f}/s  1.0x (one thread)")
            continue
        cells = "".join(f"{row[str(n)]:>8,.0f} {row[str(n)] / base[kind]:4.1f}x" for n in TASKS)
        print(f"  {name:<28}{cells}")


def profile(url: str) -> None:
    import cProfile
    import pstats

    caches = django_caches(url, False)
    dj = caches["default"]

    async def run() -> None:
        await dj.aset("k", VALUE)
        await async_rate(lambda: dj.aget("k"), 50, 5000)
        prof = cProfile.Profile()
        prof.enable()
        await async_rate(lambda: dj.aget("k"), 50, 20000)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)

    asyncio.run(run())


def threads(url: str, n_threads: int = 8, per: int = 5000) -> None:
    """The sync API from ``n_threads`` threads: redis-py, the tsot pool, a multiplexed loop."""
    import redis

    from tsot import AsyncStorage, Storage

    def rate(op: Callable[[], Any]) -> float:
        best = 0.0
        for _ in range(3):
            barrier = threading.Barrier(n_threads + 1)

            def work(barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                for _ in range(per):
                    op()

            pool = [threading.Thread(target=work) for _ in range(n_threads)]
            for t in pool:
                t.start()
            barrier.wait()
            started = time.perf_counter()
            for t in pool:
                t.join()
            best = max(best, n_threads * per / (time.perf_counter() - started))
        return best

    r = redis.Redis.from_url(url)
    r.set(b"bench:k", VALUE)
    base = sync_rate(lambda: r.get(b"bench:k"))
    rows = {"redis-py, 1 thread": base, "redis-py pool": rate(lambda: r.get(b"bench:k"))}
    pool = Storage.from_url(url, namespace="bench")
    pool.store("k", VALUE)
    rows["tsot Storage (own pool)"] = rate(lambda: pool.load("k"))
    # The shared multiplexed connection for sync callers: a loop thread owns it, callers hand
    # it coroutines and block on concurrent futures (what a sync_multiplex option would do).
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    mux = AsyncStorage.from_url(url, namespace="bench")

    def via_loop() -> Any:
        return asyncio.run_coroutine_threadsafe(mux.load("k"), loop).result()

    rows["multiplexed, loop thread"] = rate(via_loop)
    asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    runner.join()
    loop.close()
    print(f"\nsync GET of 100 B from {n_threads} threads (ops/s, ratio to one redis-py thread)")
    for name, value in rows.items():
        print(f"  {name:<32}{value:>10,.0f}/s {value / base:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--threads", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.url, child=True)))
        return
    with server() if args.url is None else _given(args.url) as url:
        import hiredis
        import redis

        print(
            f"Python {sys.version.split()[0]}, redis-py {redis.__version__}, "
            f"hiredis {hiredis.__version__}; {os.cpu_count()} CPUs; GET/SET of 100 B"
        )
        if args.profile:
            profile(url)
            return
        if args.threads:
            threads(url)
            return
        table(measure(url, child=False), "this interpreter (ops/s and ratio to sync redis-py)")
        other = ROOT / ".venv-dj61" / "bin" / "python"
        if not other.exists():
            print("\n.venv-dj61 is missing: django-vcache (Python >= 3.12) not measured")
            return
        done = subprocess.run(
            [str(other), "-m", "benchmarks.redis_async", "--child", url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(f"\n.venv-dj61 run failed:\n{done.stderr[-2000:]}")
            return
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        if "django-vcache aget" not in figures:
            print("\ndjango-vcache is not installed in .venv-dj61: not measured")
        version = subprocess.run(
            [str(other), "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        table(figures, f".venv-dj61, Python {version} (same server, same run)")


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
