"""Quick figures for Redis ``local_cache``: hot-key hits, ``cache_page``, invalidation delay.

    .venv/bin/python -m benchmarks.redis_local            # starts its own redis-server
    .venv/bin/python -m benchmarks.redis_local --quick    # fewer calls, one round

Rows (one run, so the ratios compare like with like):

- Django ``cache.get`` of one hot key: raw redis-py + hiredis, tsot_django RedisCache without
  and with ``local_cache``, tsot_django MemoryCache;
- Django ``cache.get`` of an absent key (a miss: ``GET`` alone, or ``GET`` + ``PTTL`` pipelined
  with the local cache);
- Django ``cache_page`` hits/s: tsot Redis without and with ``local_cache``, tsot memory;
- invalidation delay: another client's acknowledged ``SET`` until this process stops serving the
  old value, p50/p99/max over many writes. The reader polls in a loop, either yielding with
  ``time.sleep(0)`` (a busy thread: CPython hands the GIL to the listener thread only when
  asked, after up to ``sys.getswitchinterval()``) or sleeping 100 us between reads (a thread
  that waits on I/O, as a web worker does; the figure then includes up to one pause).

No assertions: timings depend on the machine. The full suite (``scripts/bench``) has the same
Django rows and their targets (benchmarks/targets.py).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from benchmarks import djangosite
from benchmarks.servers import running
from tsot import Storage


def best(fn: Callable[[], Any], n: int, rounds: int) -> float:
    """Calls per second of ``fn`` (best of ``rounds``)."""
    for _ in range(min(n, 300)):
        fn()
    rate = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rate = max(rate, n / (time.perf_counter() - start))
    return rate


def row(name: str, rate: float, base: float | None = None) -> None:
    ratio = f"  {rate / base:6.2f}x" if base else ""
    print(f"  {name:<52} {1e6 / rate:8.2f} us {rate:12,.0f}/s{ratio}")


def _held(reader: Storage, expected: str) -> None:
    """Read until ``expected`` comes from the local table."""
    while True:
        before = reader.stats()["local_hits"]
        if reader.load("k") == expected and reader.stats()["local_hits"] == before + 1:
            return
        time.sleep(0)


def delays(url: str, writes: int, pause: float) -> list[float]:
    """Seconds from each acknowledged foreign write to the reader's first new value; the reader
    polls with ``time.sleep(pause)`` between reads."""
    reader = Storage.from_url(url, namespace=f"delay{pause}", local_cache=True, secret=None)
    writer = redis.Redis.from_url(url)
    while not reader.stats()["local_live"]:
        time.sleep(0.001)
    key = f"delay{pause}:k".encode()
    writer.set(key, b"s0")
    _held(reader, "0")
    out = []
    for i in range(1, writes + 1):
        writer.set(key, b"s%d" % i)
        acked = time.perf_counter()
        while reader.load("k") != str(i):
            time.sleep(pause)
        out.append(time.perf_counter() - acked)
        _held(reader, str(i))
    writer.close()
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.redis_local", description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n, rounds, writes = (2_000, 1, 200) if args.quick else (50_000, 5, 2_000)
    with tempfile.TemporaryDirectory() as d, running("redis", Path(d)) as address:
        url = f"redis://{address}/0"
        djangosite.setup(
            {
                "plain": {"BACKEND": "tsot_django.RedisCache", "LOCATION": url},
                "local": {"BACKEND": "tsot_django.TsotCache", "LOCATION": f"{url}?local_cache=1"},
                "memory": {"BACKEND": "tsot_django.MemoryCache", "LOCATION": "bench-local"},
            }
        )
        from django.core.cache import caches

        from benchmarks.pages import cache_page_run

        raw = redis.Redis.from_url(url)
        value = ("tsot benchmark value " * 5)[:100]
        for alias in ("plain", "local", "memory"):
            caches[alias].set("hot", value)
        # every row calls a bound cache: ``caches[alias]`` costs about 2 us (a thread-local look-up)
        local, plain_cache, memory_cache = caches["local"], caches["plain"], caches["memory"]
        raw.set(b"hot", pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
        print(f"Django get of one hot key (100 B str), best of {rounds}:")
        base = best(lambda: pickle.loads(raw.get(b"hot")), n, rounds)  # type: ignore[arg-type]
        row("redis-py + hiredis (get + unpickle)", base)
        plain = best(lambda: plain_cache.get("hot"), n, rounds)
        row("tsot_django RedisCache", plain, base)
        hit = best(lambda: local.get("hot"), n, rounds)
        row("tsot_django RedisCache, local_cache", hit, base)
        memory = best(lambda: memory_cache.get("hot"), n, rounds)
        row("tsot_django MemoryCache", memory, base)
        print(f"  local_cache / memory: {hit / memory:.2f}x")

        print("Django get of a key that is absent (every call reads the server):")
        absent = best(lambda: plain_cache.get("absent"), n // 5, rounds)
        row("tsot_django RedisCache (GET)", absent)
        row(
            "tsot_django RedisCache, local_cache (GET + PTTL)",
            best(lambda: local.get("absent"), n // 5, rounds),
            absent,
        )

        print("Django cache_page hits:")
        pages = {a: cache_page_run(a) for a in ("plain", "local", "memory")}
        m = max(200, n // 10)
        rates = {a: max(m / run(m) for _ in range(rounds)) for a, run in pages.items()}
        row("tsot_django RedisCache", rates["plain"])
        row("tsot_django RedisCache, local_cache", rates["local"], rates["plain"])
        row("tsot_django MemoryCache", rates["memory"], rates["plain"])
        print(f"  local_cache / memory: {rates['local'] / rates['memory']:.2f}x")

        print(f"invalidation delay over {writes} writes (another client's acked SET):")
        for pause, how in ((0.0, "sleep(0) between reads"), (1e-4, "sleep(100 us) between")):
            got = sorted(delays(url, writes, pause))
            p99 = got[min(len(got) - 1, int(len(got) * 0.99))]
            print(
                f"  reader polls with {how}: p50 {statistics.median(got) * 1e6:.0f} us, "
                f"p99 {p99 * 1e6:.0f} us, max {got[-1] * 1e6:.0f} us"
            )
        raw.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
