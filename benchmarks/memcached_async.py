"""Memcached under concurrency: tsot's pipelined asyncio connection against raw sync pymemcache.

Run from the repository root: ``.venv/bin/python -m benchmarks.memcached_async [N]`` (N
operations per figure, default 20 000; ``--profile`` prints a cProfile of tsot at 50 tasks).
It starts its own memcached on a free loopback port (``-u root`` when run as root) and prints:

- gets/s and sets/s (100-byte values, distinct keys) with 1, 10, 50 and 200 asyncio tasks for
  tsot ``AsyncStorage`` (``load_raw``/``store_raw``), the previous asyncio transport (one
  write per request, loaded from git history when available) and raw sync pymemcache (one
  ``Client`` in a plain loop), with ratios to the raw client;
- the sync API from 8 threads: raw pymemcache ``PooledClient``, tsot ``Storage`` (pymemcache
  pool), and tsot ``Storage`` calls handed to one background event-loop thread that owns the
  pipelined connection (the "shared multiplexed connection" candidate).

No assertions: figures, not tests. Best of three runs each.
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import importlib.util
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pymemcache.client.base import Client, PooledClient

from tests.servers.memcached import start_memcached
from tsot import AsyncStorage, Storage

ROOT = Path(__file__).resolve().parent.parent
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
N = int(ARGS[0]) if ARGS else 20_000
PROFILE = "--profile" in sys.argv
RAW_GUESS = 43_000.0  # with --threads alone: raw sync gets/s assumed for the ratios
TASKS = (1, 10, 50, 200)
THREADS = 8
VALUE = b"v" * 100
KEYS = [f"key:{i}" for i in range(N)]
PREVIOUS_COMMIT = "8a70228"  # the last commit with the one-write-per-request transport
MOVED = (
    (b"memcached_cluster", b"cluster"),
    (b"memcached_ops", b"commands"),
    (b"memcached_proto", b"protocol"),
)
"""Its modules then, named as in tsot/backends/memcached/ now."""

Runner = Callable[[str], Awaitable[Any]]


ROUNDS = 5


# -- raw sync pymemcache ----------------------------------------------------------------------


def raw_sync(client: Client, kind: str) -> float:
    """Seconds for N gets or sets on one plain pymemcache Client."""
    start = time.perf_counter()
    if kind == "get":
        for k in KEYS:
            client.get(k)
    else:
        for k in KEYS:
            client.set(k, VALUE)
    return time.perf_counter() - start


# -- asyncio ----------------------------------------------------------------------------------


async def spread(op: Runner, tasks: int) -> float:
    """Seconds for N calls of ``op`` spread over ``tasks`` tasks (distinct keys each)."""
    share = N // tasks

    async def worker(i: int) -> None:
        for k in KEYS[i * share : (i + 1) * share]:
            await op(k)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return (time.perf_counter() - start) * N / (share * tasks)


def previous_transport() -> ModuleType | None:
    """The one-write-per-request asyncio transport, loaded from git history (None if absent)."""
    try:
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS_COMMIT}:tsot/backends/memcached_aio.py"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    name = "tsot.backends._memcached_aio_previous"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "tsot.backends.memcached"
    # the old module's flat imports, as the package spells them
    for old, new in MOVED:
        source = source.replace(b"from ." + old + b" ", b"from ." + new + b" ")
    exec(compile(source, f"{PREVIOUS_COMMIT}:memcached_aio.py", "exec"), module.__dict__)
    return module


def stores(port: int) -> dict[str, AsyncStorage]:
    url = f"memcached://127.0.0.1:{port}"
    out = {"tsot AsyncStorage": AsyncStorage.from_url(url, namespace="abench")}
    prev = previous_transport()
    if prev is not None:
        # its own location (a distinct option value), its transport swapped for the old one
        old = AsyncStorage.from_url(url, namespace="abench", dead_timeout=10.25)
        loc = old.backend.loc  # type: ignore[attr-defined]
        loc.aio = prev.AsyncTransport(loc.cluster, 1.0, 1.0)
        loc.aio.ready = lambda server: None  # no one-command path: every call as it was
        out["previous transport"] = old
    return out


def print_async(port: int) -> tuple[float, float]:
    """Print the asyncio table; return raw sync pymemcache's (gets/s, sets/s).

    Every figure is measured once per round, rounds interleaved, best round kept: a busy
    machine slows all of them alike instead of whichever ran during a burst.
    """
    client = Client(("127.0.0.1", port), no_delay=True, default_noreply=False)
    best: dict[tuple[str, int, str], float] = {}

    def keep(name: str, tasks: int, kind: str, seconds: float) -> None:
        best[(name, tasks, kind)] = max(best.get((name, tasks, kind), 0.0), N / seconds)

    async def run() -> None:
        candidates = stores(port)
        for store in candidates.values():
            await store.store_many(dict.fromkeys(KEYS, VALUE))
        for _ in range(ROUNDS):
            for kind in ("set", "get"):
                keep("raw sync pymemcache", 1, kind, raw_sync(client, kind))
                for name, store in candidates.items():
                    for tasks in TASKS:
                        op = store.load_raw if kind == "get" else _setter(store)
                        keep(name, tasks, kind, await spread(op, tasks))

    asyncio.run(run())
    client.close()
    raw = best[("raw sync pymemcache", 1, "get")], best[("raw sync pymemcache", 1, "set")]
    print(f"\n{'asyncio, ops/s (x raw sync)':<28}{'tasks':>6}{'gets/s':>18}{'sets/s':>18}")
    print(f"{'raw sync pymemcache':<28}{'-':>6}{raw[0]:>18,.0f}{raw[1]:>18,.0f}")
    for name in dict.fromkeys(n for n, _, _ in best):
        if name == "raw sync pymemcache":
            continue
        for tasks in TASKS:
            g, st = best[(name, tasks, "get")], best[(name, tasks, "set")]
            cells = f"{g:,.0f} ({g / raw[0]:.1f}x)", f"{st:,.0f} ({st / raw[1]:.1f}x)"
            print(f"{name:<28}{tasks:>6}{cells[0]:>18}{cells[1]:>18}")
    return raw


def _setter(store: AsyncStorage) -> Runner:
    async def set_(k: str) -> None:
        await store.store_raw(k, VALUE)

    return set_


def profile(port: int) -> None:
    async def run() -> None:
        store = AsyncStorage.from_url(f"memcached://127.0.0.1:{port}", namespace="abench")
        await store.store_many(dict.fromkeys(KEYS, VALUE))
        prof = cProfile.Profile()
        prof.enable()
        await spread(store.load_raw, 50)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)

    asyncio.run(run())


# -- the sync API from threads ----------------------------------------------------------------


class LoopOwner:
    """A background event loop owning the pipelined connection (the shared-multiplexed-
    connection candidate for the sync API): callers queue calls under a mutex, the loop is
    woken once per batch of them, each caller blocks on its own lock until its result."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = AsyncStorage.from_url(url, namespace="tbench")
        self.mutex = threading.Lock()
        self.pending: list[tuple[str, threading.Lock, list[Any]]] = []
        self.woken = False
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def load_raw(self, key: str) -> Any:
        done = threading.Lock()
        done.acquire()
        box: list[Any] = []
        with self.mutex:
            self.pending.append((key, done, box))
            wake, self.woken = not self.woken, True
        if wake:
            self.loop.call_soon_threadsafe(self._drain)
        done.acquire()  # released by the loop thread with the result in ``box``
        return box[0]

    def _drain(self) -> None:
        with self.mutex:
            batch, self.pending, self.woken = self.pending, [], False
        for key, done, box in batch:
            task = self.loop.create_task(self.store.load_raw(key))
            task.add_done_callback(functools.partial(_hand_over, done, box))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def _hand_over(done: threading.Lock, box: list[Any], task: asyncio.Task[Any]) -> None:
    box.append(task.result())
    done.release()


def threaded(op: Callable[[str], Any]) -> float:
    """Seconds for N calls of ``op`` spread over THREADS threads."""
    share = N // THREADS
    barrier = threading.Barrier(THREADS + 1)

    def worker(i: int) -> None:
        barrier.wait()
        for k in KEYS[i * share : (i + 1) * share]:
            op(k)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return (time.perf_counter() - start) * N / (share * THREADS)


def print_threads(raw: tuple[float, float], port: int) -> None:
    url = f"memcached://127.0.0.1:{port}"
    pooled = PooledClient(("127.0.0.1", port), no_delay=True, max_pool_size=THREADS)
    store = Storage.from_url(url, namespace="tbench")
    store.store_many(dict.fromkeys(KEYS, VALUE))
    owner = LoopOwner(url)
    rows: dict[str, Callable[[str], Any]] = {
        "raw pymemcache PooledClient": pooled.get,
        "tsot Storage (own pool)": store.load_raw,
        "tsot via one loop thread": owner.load_raw,
    }
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, op in rows.items():
            best[name] = max(best.get(name, 0.0), N / threaded(op))
    print(f"\n{THREADS} threads, sync API gets (x raw sync 1 thread){'':<4}{'gets/s':>12}")
    for name, rate in best.items():
        print(f"{name:<46}{rate:>12,.0f} ({rate / raw[0]:.1f}x)")
    owner.close()
    pooled.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_memcached(Path(tmp), "bench", "-t", "1")
        try:
            print(f"memcached on 127.0.0.1:{server.port}, N={N}, Python {sys.version.split()[0]}")
            if PROFILE:
                profile(server.port)
                return
            raw = print_async(server.port) if "--threads" not in sys.argv else (RAW_GUESS, 0.0)
            print_threads(raw, server.port)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
