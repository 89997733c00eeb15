"""One process of the local cache's property test (test_redis_local_property.py).

    python -m tests.backends.local_cache_worker ROLE URL NAMESPACE SECONDS SEED KEY...

ROLE is ``raw-writer`` (redis-py), ``tsot-writer`` (a Storage with the local cache on: its own
writes go through the decorator), ``reader`` or ``async-reader`` (a Storage or an AsyncStorage
with the local cache on). Writers give their keys increasing values; every process prints one
line per event, with ``time.monotonic()`` (one clock for every process on the machine):
``W key n t_ack`` after an acknowledged write, ``R key n t_start`` for a read that returned a
value (``-`` for none). Errors during faults are expected and skipped.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any


def _now() -> float:
    return time.monotonic()


def raw_writer(url: str, ns: str, seconds: float, rng: random.Random, keys: list[str]) -> None:
    import redis

    # redis-py parses only redis:// URLs; the host and port are the same for valkey://
    client = redis.Redis.from_url(
        "redis://" + url.split("://", 1)[1], socket_timeout=0.5, socket_connect_timeout=0.5
    )
    n, end = 0, _now() + seconds
    out = []
    while _now() < end:
        key = rng.choice(keys)
        n += 1
        try:
            client.set(f"{ns}:{key}".encode(), b"s%d" % n)  # tsot's str format
        except redis.RedisError:
            time.sleep(0.005)
            continue
        out.append(f"W {key} {n} {_now():.6f}")
        time.sleep(rng.uniform(0, 0.002))
    print("\n".join(out), flush=True)


def tsot_writer(url: str, ns: str, seconds: float, rng: random.Random, keys: list[str]) -> None:
    from tsot import BackendUnavailable, Storage

    store = Storage.from_url(url, namespace=ns, local_cache=True, secret=None, **_FAST)
    n, end = 0, _now() + seconds
    out = []
    while _now() < end:
        key = rng.choice(keys)
        n += 1
        try:
            store.store(key, str(n))
        except BackendUnavailable:
            time.sleep(0.005)
            continue
        out.append(f"W {key} {n} {_now():.6f}")
        store.load(key)  # keeps it locally, to be invalidated by the others
        time.sleep(rng.uniform(0, 0.002))
    print("\n".join(out), flush=True)


_FAST = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retries": 0}


def _line(key: str, value: Any, started: float) -> str:
    return f"R {key} {value if value is not None else '-'} {started:.6f}"


def reader(url: str, ns: str, seconds: float, rng: random.Random, keys: list[str]) -> None:
    from tsot import BackendUnavailable, Storage

    store = Storage.from_url(url, namespace=ns, local_cache=True, secret=None, **_FAST)
    while not store.stats()["local_live"]:
        time.sleep(0.001)
    print("ready", flush=True)
    end = _now() + seconds
    out = []
    while _now() < end:
        key = rng.choice(keys)
        started = _now()
        try:
            value = store.load(key)
        except BackendUnavailable:
            time.sleep(0.005)
            continue
        out.append(_line(key, value, started))
        time.sleep(0.0002)
    print("\n".join(out), flush=True)
    print(f"S {store.stats()['local_hits']}", flush=True)


def async_reader(url: str, ns: str, seconds: float, rng: random.Random, keys: list[str]) -> None:
    from tsot import AsyncStorage, BackendUnavailable

    async def run() -> None:
        store = AsyncStorage.from_url(url, namespace=ns, local_cache=True, secret=None, **_FAST)
        while not (await store.stats())["local_live"]:
            await asyncio.sleep(0.001)
        print("ready", flush=True)
        end = _now() + seconds
        out = []
        while _now() < end:
            key = rng.choice(keys)
            started = _now()
            try:
                value = await store.load(key)
            except BackendUnavailable:
                await asyncio.sleep(0.005)
                continue
            out.append(_line(key, value, started))
            await asyncio.sleep(0.0002)
        print("\n".join(out), flush=True)
        print(f"S {(await store.stats())['local_hits']}", flush=True)

    asyncio.run(run())


ROLES = {
    "raw-writer": raw_writer,
    "tsot-writer": tsot_writer,
    "reader": reader,
    "async-reader": async_reader,
}


def main(argv: list[str]) -> None:
    role, url, ns, seconds, seed, *keys = argv
    ROLES[role](url, ns, float(seconds), random.Random(int(seed)), keys)


if __name__ == "__main__":
    main(sys.argv[1:])
