"""The benchmark targets, each a minimum ratio of a tsot row to a baseline row of one run."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .contenders.redis import LOCAL, MEMORY_REF
from .ops import MULTI_KEY, SINGLE_KEY

ASYNC_50 = ("aget hit 100 B, 50 tasks", "aset 100 B, 50 tasks")
THREADS_8 = "8 threads, 3 get : 1 set"


@dataclass(frozen=True)
class Target:
    """``contender`` reaches ``threshold`` x ``baseline`` on every one of ``scenarios``."""

    title: str
    kind: str
    contender: str
    baseline: str
    scenarios: Sequence[str]
    threshold: float


def _adapters(kind: str, raw: str, name: str) -> list[Target]:
    out = []
    for framework in ("django", "flask"):
        tsot = f"tsot_{framework} {name}"
        out.append(Target(f"{kind}, {tsot}, single-key ops vs {raw}", kind, tsot, raw,
                          SINGLE_KEY, 0.9))  # fmt: skip
        out.append(Target(f"{kind}, {tsot}, get_many/set_many of 100 vs {raw}", kind, tsot, raw,
                          MULTI_KEY, 0.8))  # fmt: skip
    return out


TARGETS: list[Target] = [
    *_adapters("redis", "redis-py + hiredis", "RedisCache"),
    *_adapters("memcached", "pymemcache Client", "MemcachedCache"),
    Target("redis, tsot_django get_many 100 vs redis-py + hiredis MGET", "redis",
           "tsot_django RedisCache", "redis-py + hiredis", ("get_many 100",), 0.85),
    Target("redis, tsot_django set_many 100 vs django-vcache (Python >= 3.12)", "redis",
           "tsot_django RedisCache", "django-vcache", ("set_many 100",), 1.0),
    Target("redis, tsot_django aget/aset, 50 tasks vs redis.asyncio", "redis",
           "tsot_django RedisCache", "redis.asyncio", ASYNC_50, 0.8),
    Target("redis, tsot_django aget/aset, 50 tasks vs django-redis", "redis",
           "tsot_django RedisCache", "django-redis", ASYNC_50, 2.5),
    Target("redis, tsot_django aget/aset, 50 tasks vs django-vcache", "redis",
           "tsot_django RedisCache", "django-vcache", ASYNC_50, 1.3),
    Target("redis, tsot_django mixed get/set from 8 threads vs django-vcache", "redis",
           "tsot_django RedisCache", "django-vcache", (THREADS_8,), 1.0),
    Target("memory, tsot_django MemoryCache 100 B get and set vs LocMemCache", "memory",
           "tsot_django MemoryCache", "Django LocMemCache",
           ("get hit 100 B str", "set 100 B str"), 5.0),
    Target("memory, tsot_django MemoryCache get 10 KB dict vs LocMemCache", "memory",
           "tsot_django MemoryCache", "Django LocMemCache", ("get hit 10 KB dict",), 1.0),
    Target("memory, Django cache_page and {% cache %}, MemoryCache vs LocMemCache", "memory",
           "tsot_django MemoryCache", "Django LocMemCache",
           ("Django cache_page", "Django {% cache %}"), 1.1),
    Target("rocksdb, tsot_django RocksDBCache get 100 B vs diskcache DjangoCache", "rocksdb",
           "tsot_django RocksDBCache", "diskcache DjangoCache", ("get hit 100 B str",), 3.0),
    Target("rocksdb, tsot_django RocksDBCache get 10 KB dict vs diskcache DjangoCache", "rocksdb",
           "tsot_django RocksDBCache", "diskcache DjangoCache", ("get hit 10 KB dict",), 1.2),
    Target("rocksdb, tsot_django RocksDBCache set vs diskcache DjangoCache", "rocksdb",
           "tsot_django RocksDBCache", "diskcache DjangoCache",
           ("set 100 B str", "set 10 KB dict"), 10.0),
    Target("redis, Django cache_page hits/s, tsot_django vs django-redis", "redis",
           "tsot_django RedisCache", "django-redis", ("Django cache_page",), 1.5),
    Target("redis, tsot_django local_cache get hit vs redis-py + hiredis", "redis",
           LOCAL, "redis-py + hiredis", ("get hit 100 B str",), 10.0),
    Target("redis, tsot_django local_cache get hit vs tsot memory", "redis",
           LOCAL, MEMORY_REF, ("get hit 100 B str",), 0.8),
    Target("redis, Django cache_page hits/s, local_cache vs without", "redis",
           LOCAL, "tsot_django RedisCache", ("Django cache_page",), 2.0),
    Target("redis, Django cache_page hits/s, local_cache vs tsot memory", "redis",
           LOCAL, MEMORY_REF, ("Django cache_page",), 0.85),
]  # fmt: skip


def _rows(results: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(kind, scenario, contender) -> its result, for the rows that ran without error."""
    return {
        (r["kind"], r["scenario"], r["contender"]): r for r in results if r["median"] is not None
    }


def paired_ratio(mine: dict[str, Any], base: dict[str, Any]) -> float:
    """The median of the per-round ratios ``mine / base``: the runner interleaves the rows of
    one scenario, so round i of each ran in the same stretch of the machine's load. Rows whose
    rounds do not pair up (one failed in some round) fall back to the ratio of the medians."""
    pairs = [m / b for m, b in zip(mine["rounds"], base["rounds"], strict=False) if b]
    if pairs and len(mine["rounds"]) == len(base["rounds"]) == len(pairs):
        return float(statistics.median(pairs))
    return float(mine["median"] / base["median"])


def evaluate(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target: per-scenario ratios (median of the per-round ratios), the worst, and "met",
    "not met" or "not measured"."""
    table = _rows(results)
    out = []
    for t in TARGETS:
        ratios: dict[str, float | None] = {}
        for s in t.scenarios:
            mine, base = table.get((t.kind, s, t.contender)), table.get((t.kind, s, t.baseline))
            ratios[s] = round(paired_ratio(mine, base), 3) if mine is not None and base else None
        known = {s: r for s, r in ratios.items() if r is not None}
        worst = min(known, key=lambda s: known[s]) if len(known) == len(ratios) else None
        ratio = known[worst] if worst is not None else None
        status = "not measured" if ratio is None else "met" if ratio >= t.threshold else "not met"
        out.append(
            {
                "title": t.title,
                "threshold": t.threshold,
                "ratio": ratio,
                "worst": worst,
                "ratios": ratios,
                "status": status,
            }
        )
    return out
