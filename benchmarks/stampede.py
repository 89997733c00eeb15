"""Stampede benchmark: one hot key, a slow compute, many concurrent readers (docs/stampede.md).

    .venv/bin/python -m benchmarks.stampede                      # the full run (long)
    .venv/bin/python -m benchmarks.stampede --seconds 3 --only tsot-memory,locmem --n 8

Each scenario runs ``--n`` workers (threads, asyncio tasks or processes) that read the key in a
loop with ``--think`` seconds between reads, for ``--seconds``; the key's TTL is ``--ttl`` and
its compute sleeps ``--compute`` seconds. Paths: Django ``get_or_set`` (tsot and Django's own
backends, django-redis with its default and HerdClient), ``cache_page`` (tsot's on tsot
backends, Django's on the others), Flask-Caching ``@cached`` (through ``tsot_flask.Cache``),
diskcache ``memoize_stampede`` and tsot's ``get_or_compute`` (processes). Reported per
scenario: recomputes per expiry, peak concurrent computes, slow requests (> 50 ms) after the
first TTL, p50 / p99.9 / max latency, stale responses served (older than the TTL) and their
maximum age, errors. ``--raises`` makes every compute after the first raise (with tsot's grace
on: stale-if-error). Timings depend on the machine: no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLOW = 0.050
KEY = "hot"


@dataclass
class Params:
    seconds: float = 10.0
    ttl: float = 1.0
    compute: float = 0.1
    think: float = 0.005
    raises: bool = False
    grace: float = 0.0


@dataclass
class Tally:
    """What the computes and the readers saw (thread-safe through ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    computes: int = 0
    inflight: int = 0
    peak: int = 0
    latencies: list[float] = field(default_factory=list)
    slow: int = 0
    stale: int = 0
    max_age: float = 0.0
    errors: int = 0


class Compute:
    """The hot key's compute: sleeps, counts itself, returns its finish time (the value's age)."""

    def __init__(self, p: Params, tally: Tally) -> None:
        self.p, self.tally = p, tally

    def _enter(self) -> None:
        t = self.tally
        with t.lock:
            t.computes += 1
            t.inflight += 1
            t.peak = max(t.peak, t.inflight)
            failing = self.p.raises and t.computes > 1
        if failing:
            with t.lock:
                t.inflight -= 1
            raise RuntimeError("the compute failed")

    def _leave(self) -> float:
        with self.tally.lock:
            self.tally.inflight -= 1
        return time.time()

    def __call__(self) -> float:
        self._enter()
        time.sleep(self.p.compute)
        return self._leave()

    async def acall(self) -> float:
        self._enter()
        await asyncio.sleep(self.p.compute)
        return self._leave()


def _record(p: Params, tally: Tally, started: float, t0: float, value: Any, error: bool) -> None:
    now = time.time()
    took = time.perf_counter() - t0
    with tally.lock:
        if error:
            tally.errors += 1
            return
        tally.latencies.append(took)
        if time.monotonic() - started > p.ttl and took > SLOW:  # after warm-up
            tally.slow += 1
        if isinstance(value, bytes):  # a page: its body is the compute's finish time
            value = float(value)
        if isinstance(value, float):
            age = now - value
            if age > p.ttl:
                tally.stale += 1
                tally.max_age = max(tally.max_age, age)


def _warmed(tally: Tally) -> None:
    """Forget the warm-up read's compute: every contender starts with the key cached (the
    first request for a page, which teaches Django its Vary headers, is not a stampede)."""
    with tally.lock:
        tally.computes = tally.peak = 0


def run_threads(
    read: Callable[[], Any],
    p: Params,
    n: int,
    tally: Tally,
    ready: Callable[[], Any] | None = None,
) -> None:
    """``n`` threads read for ``p.seconds`` after one warm-up read (and ``ready()``, which
    processes use to start together)."""
    read()
    if ready is not None:
        ready()
    _warmed(tally)
    started = time.monotonic()
    stop = started + p.seconds

    def worker() -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                value, error = read(), False
            except Exception:
                value, error = None, True
            _record(p, tally, started, t0, value, error)
            time.sleep(p.think)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_tasks(aread: Callable[[], Any], p: Params, n: int, tally: Tally) -> None:
    async def main() -> None:
        await aread()
        _warmed(tally)
        started = time.monotonic()
        stop = started + p.seconds

        async def worker() -> None:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    value, error = await aread(), False
                except Exception:
                    value, error = None, True
                _record(p, tally, started, t0, value, error)
                await asyncio.sleep(p.think)

        await asyncio.gather(*(worker() for _ in range(n)))

    asyncio.run(main())


# -- contenders --------------------------------------------------------------------------------


def django_caches(redis: str | None, memcached: str | None, rocks: str) -> dict[str, Any]:
    caches: dict[str, Any] = {
        "tsot-memory": {"BACKEND": "tsot_django.TsotCache", "LOCATION": "memory://stampede"},
        "tsot-rocksdb": {"BACKEND": "tsot_django.TsotCache", "LOCATION": f"rocksdb://{rocks}"},
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    if redis:
        caches["tsot-redis"] = {"BACKEND": "tsot_django.TsotCache", "LOCATION": redis}
        caches["django-redis"] = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis,
        }
        caches["django_redis"] = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis}
        caches["django_redis-herd"] = {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.HerdClient"},
        }
    if memcached:
        caches["tsot-memcached"] = {"BACKEND": "tsot_django.TsotCache", "LOCATION": memcached}
    return caches


def scenario_get_or_set(alias: str, p: Params, n: int, mode: str) -> Tally:
    from django.core.cache import caches

    cache = caches[alias]
    cache.clear()
    tally = Tally()
    compute = Compute(p, tally)
    if mode == "tasks" and not alias.startswith("tsot"):
        # Django's own aget_or_set calls the default without awaiting it (it would store the
        # coroutine): its algorithm (get, compute, add), awaited
        async def peer() -> Any:
            value = await cache.aget(KEY)
            if value is None:
                value = await compute.acall()
                await cache.aadd(KEY, value, p.ttl)
            return value

        run_tasks(peer, p, n, tally)
    elif mode == "tasks":
        run_tasks(lambda: cache.aget_or_set(KEY, compute.acall, p.ttl), p, n, tally)
    else:
        run_threads(lambda: cache.get_or_set(KEY, compute, p.ttl), p, n, tally)
    return tally


def scenario_cache_page(alias: str, p: Params, n: int, tsot: bool) -> Tally:
    from django.core.cache import caches
    from django.http import HttpResponse
    from django.test import RequestFactory

    if tsot:
        from tsot_django import cache_page
    else:
        from django.views.decorators.cache import cache_page  # type: ignore[assignment]

    caches[alias].clear()
    tally = Tally()
    compute = Compute(p, tally)
    ttl = max(1, round(p.ttl))

    @cache_page(ttl, cache=alias)
    def view(request: Any) -> HttpResponse:
        return HttpResponse(repr(compute()).encode())

    factory = RequestFactory()
    run_threads(lambda: view(factory.get("/hot/")).content, p, n, tally)
    return tally


def scenario_flask(url: str, p: Params, n: int) -> Tally:
    from flask import Flask

    from tsot_flask import Cache  # flask_caching.Cache refreshing in the background

    app = Flask("stampede")
    app.config.update(
        CACHE_TYPE="tsot_flask.TsotCache",
        CACHE_TSOT_URL=url,
        CACHE_TSOT_STAMPEDE=True,
        CACHE_TSOT_GRACE=p.grace,
        SECRET_KEY="benchmark-only-not-secret",
    )
    cache = Cache(app)
    tally = Tally()
    compute = Compute(p, tally)

    @cache.cached(timeout=max(1, round(p.ttl)), key_prefix="hot")
    def hot() -> float:
        return compute()

    def read() -> Any:
        with app.app_context():
            return hot()

    with app.app_context():
        cache.clear()
    run_threads(read, p, n, tally)
    with app.app_context():
        cache.cache.storage.close()  # before its directory goes (RocksDB)
    return tally


def scenario_diskcache(directory: str, p: Params, n: int) -> Tally:
    import diskcache  # type: ignore[import-untyped]
    from diskcache.recipes import memoize_stampede  # type: ignore[import-untyped]

    tally = Tally()
    compute = Compute(p, tally)
    cache = diskcache.Cache(directory)
    cache.clear()

    @memoize_stampede(cache, expire=p.ttl)  # type: ignore[misc]
    def hot() -> float:
        return compute()

    run_threads(hot, p, n, tally)
    cache.close()
    return tally


def _process_reader(url: str, p: Params, out: Any, start: Any) -> None:
    from tsot import Storage

    tally = Tally()
    compute = Compute(p, tally)
    with Storage.from_url(url, namespace="stampede", secret="benchmark-only-not-secret!") as s:
        read = lambda: s.get_or_compute(KEY, compute, p.ttl, grace=p.grace)  # noqa: E731
        # every process warms up, then all count over the same seconds (spawning them takes
        # a while: without the barrier the first ones would count computes the others miss)
        run_threads(read, p, 1, tally, ready=lambda: start.wait(p.seconds + 120))
    out.put((tally.computes, tally.latencies, tally.slow, tally.stale, tally.max_age))


def scenario_processes(url: str, p: Params, n: int) -> Tally:
    ctx = multiprocessing.get_context("spawn")
    out, start = ctx.Queue(), ctx.Barrier(n)
    procs = [ctx.Process(target=_process_reader, args=(url, p, out, start)) for _ in range(n)]
    for proc in procs:
        proc.start()
    tally = Tally()
    for _ in procs:
        computes, latencies, slow, stale, max_age = out.get(timeout=p.seconds + 120)
        tally.computes += computes
        tally.latencies += latencies
        tally.slow += slow
        tally.stale += stale
        tally.max_age = max(tally.max_age, max_age)
    for proc in procs:
        proc.join()
    tally.peak = -1  # not tracked across processes
    return tally


def hit_cost(url: str, rounds: int = 40, n: int = 1000) -> str:
    """A row: microseconds per plain ``load`` of an unsigned str, per ``load`` of a signed
    entry (what ``get_or_compute`` wrote) and per ``get_or_compute`` hit of that entry, and the
    hit's cost over each ``load``. The three are interleaved round by round (best of
    ``rounds``), so a busy machine slows them alike."""
    from tsot import Storage

    with Storage.from_url(url, namespace="hitcost", secret="benchmark-only-not-secret!") as s:
        s.store("plain", "v" * 100, 600)
        s.get_or_compute("entry", lambda: "v" * 100, 600)
        calls: dict[str, Callable[[], Any]] = {
            "plain": lambda: s.load("plain"),
            "entry": lambda: s.load("entry"),
            "hit": lambda: s.get_or_compute("entry", str, 600),
        }
        best = dict.fromkeys(calls, float("inf"))
        for _ in range(rounds):
            for name, fn in calls.items():
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                best[name] = min(best[name], (time.perf_counter() - t0) / n * 1e6)
    plain, entry, hit = best["plain"], best["entry"], best["hit"]
    scheme = url.partition(":")[0]
    return (
        f"| {scheme} | {plain:.2f} | {entry:.2f} | {hit:.2f} | "
        f"{(hit / entry - 1) * 100:+.0f} % | {(hit / plain - 1) * 100:+.0f} % |"
    )


HIT_HEADER = (
    "| storage | `load` unsigned str µs | `load` of the entry µs | `get_or_compute` hit µs | "
    "hit vs `load` of the entry | hit vs `load` unsigned str |\n|---|---|---|---|---|---|"
)


# -- report ------------------------------------------------------------------------------------


def row(name: str, p: Params, tally: Tally) -> str:
    lat = sorted(tally.latencies) or [0.0]
    expiries = max(1.0, p.seconds / p.ttl)
    p999 = lat[min(len(lat) - 1, int(len(lat) * 0.999))]
    peak = "n/a" if tally.peak < 0 else str(tally.peak)
    return (
        f"| {name} | {tally.computes / expiries:.2f} | {peak} | {tally.slow} | "
        f"{statistics.median(lat) * 1e3:.2f} | {p999 * 1e3:.1f} | {lat[-1] * 1e3:.1f} | "
        f"{tally.stale} | {tally.max_age:.2f} | {tally.errors} | {len(tally.latencies)} |"
    )


HEADER = (
    "| scenario | recomputes/expiry | peak computes | slow (>50 ms) | p50 ms | p99.9 ms | "
    "max ms | stale | max stale age s | errors | requests |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


@contextmanager
def servers(kinds: set[str]) -> Iterator[dict[str, str | None]]:
    from benchmarks.servers import running

    with ExitStack() as stack:
        d = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        urls: dict[str, str | None] = {"redis": None, "memcached": None, "dir": str(d)}
        if "redis" in kinds:
            urls["redis"] = f"redis://{stack.enter_context(running('redis', d))}/0"
        if "memcached" in kinds:
            urls["memcached"] = f"memcached://{stack.enter_context(running('memcached', d))}"
        yield urls


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stampede", description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--ttl", type=float, default=1.0)
    ap.add_argument("--compute", type=float, default=0.1)
    ap.add_argument("--think", type=float, default=0.005)
    ap.add_argument("--n", default="8,32,128", help="thread counts (comma-separated)")
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--grace", type=float, default=0.0, help="tsot's grace option")
    ap.add_argument("--raises", action="store_true", help="every compute after the first raises")
    ap.add_argument(
        "--only", default="", help="comma-separated scenario name prefixes (default: all)"
    )
    ap.add_argument(
        "--hit-cost", action="store_true", help="only the cost of a protected hit vs a load"
    )
    args = ap.parse_args(argv)
    p = Params(args.seconds, args.ttl, args.compute, args.think, args.raises, args.grace)
    only = [o for o in args.only.split(",") if o]

    def wanted(name: str) -> bool:
        return not only or any(name.startswith(o) for o in only)

    if args.hit_cost:
        print(HIT_HEADER)
        with servers({"redis", "memcached"}) as urls:
            for url in ("memory://hitcost", urls["redis"], urls["memcached"]):
                print(hit_cost(str(url)), flush=True)
        return
    print(HEADER)
    with servers({"redis", "memcached"}) as urls:
        from benchmarks import djangosite

        rocks = f"{urls['dir']}/rocks"
        caches = django_caches(urls["redis"], urls["memcached"], rocks)
        for alias in caches:
            if alias.startswith("tsot"):
                caches[alias]["OPTIONS"] = {"grace": p.grace}
        djangosite.setup(caches)
        for alias in caches:
            for n in (int(x) for x in args.n.split(",")):
                name = f"{alias} get_or_set {n} threads"
                if wanted(name):
                    print(row(name, p, scenario_get_or_set(alias, p, n, "threads")), flush=True)
            name = f"{alias} aget_or_set {args.tasks} tasks"
            if wanted(name):
                print(row(name, p, scenario_get_or_set(alias, p, args.tasks, "tasks")), flush=True)
        counts = [int(x) for x in args.n.split(",")]
        for alias in caches:
            for n in counts:
                name = f"{alias} cache_page {n} threads"
                if wanted(name):
                    tsot = alias.startswith("tsot")
                    print(row(name, p, scenario_cache_page(alias, p, n, tsot)), flush=True)
        flask_urls = ("memory://stampede-flask", f"rocksdb://{urls['dir']}/flask-rocks")
        for kind in (*flask_urls, urls["redis"], urls["memcached"]):
            for n in counts:
                name = f"flask @cached {str(kind).partition(':')[0]} {n} threads"
                if kind and wanted(name):
                    print(row(name, p, scenario_flask(kind, p, n)), flush=True)
        name = "diskcache memoize_stampede 32 threads"
        if wanted(name):
            print(row(name, p, scenario_diskcache(f"{urls['dir']}/dc", p, 32)), flush=True)
        for kind in ("redis", "memcached"):
            url = urls[kind]
            name = f"tsot-{kind} get_or_compute {args.processes} processes"
            if url and wanted(name):
                print(row(name, p, scenario_processes(url, p, args.processes)), flush=True)


if __name__ == "__main__":
    main()
