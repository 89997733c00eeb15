"""One process of the local cache's property test (test_redis_local_property.py).

    python -m tests.backends.local_cache_worker ROLE URL NAMESPACE SECONDS SEED KEY...

ROLE is ``raw-writer`` (redis-py), ``tsot-writer`` (a Storage with the local cache on: its own
writes go through the decorator), ``reader`` or ``async-reader`` (a Storage or an AsyncStorage
with the local cache on). Each prints ``ready`` once connected; writers then give their keys
increasing values for SECONDS, readers read until their stdin closes. Every process prints one
line per event, with ``time.monotonic()`` (one clock for every process on the machine):
``W key n t_ack`` after an acknowledged write, ``R key n t_start`` for a read that returned a
value (``-`` for none). Errors during faults are expected and skipped.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from typing import Any


def _now() -> float:
    return time.monotonic()


def _raw_client(url: str) -> Any:
    """redis-py for one of the test's URLs: one server, or the primary a Sentinel names."""
    import redis
    import redis.sentinel

    timeouts = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    scheme, rest = url.split("://", 1)
    if scheme.endswith("+sentinel"):
        hosts, service = rest.split("/")[:2]
        addresses = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts.split(",")]
        sentinel = redis.sentinel.Sentinel(addresses, sentinel_kwargs=timeouts, **timeouts)
        return sentinel.master_for(service, **timeouts)
    # redis-py parses only redis:// URLs; the host and port are the same for valkey://
    return redis.Redis.from_url(f"redis://{rest}", **timeouts)


def raw_writer(url: str, ns: str, seconds: float, rng: random.Random, keys: list[str]) -> None:
    import redis

    client = _raw_client(url)
    client.ping()
    print("ready", flush=True)
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
    store.exists("probe")
    print("ready", flush=True)
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
        try:
            store.load(key)  # keeps it locally, to be invalidated by the others
        except BackendUnavailable:  # the server was restarted between the write and this read
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.002))
    print("\n".join(out), flush=True)


_FAST = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retries": 0}


def _until_stdin_closes() -> threading.Event:
    """Readers run until the test closes their stdin (after the writers are done)."""
    stop = threading.Event()

    def wait() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait, daemon=True).start()
    return stop


def _line(key: str, value: Any, started: float) -> str:
    return f"R {key} {value if value is not None else '-'} {started:.6f}"


def reader(url: str, ns: str, seconds: float, rng: random.Random, keys: list[str]) -> None:
    from tsot import BackendUnavailable, Storage

    store = Storage.from_url(url, namespace=ns, local_cache=True, secret=None, **_FAST)
    while not store.stats()["local_live"]:
        time.sleep(0.001)
    print("ready", flush=True)
    stop = _until_stdin_closes()
    out = []
    while not stop.is_set():
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
        stop = _until_stdin_closes()
        out = []
        while not stop.is_set():
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
