"""Many callers at once: 1 and 8 threads of mixed get/set, and N asyncio tasks of get or set.

Threads each build their own Api (Django hands every thread its own cache object) and start
together on a barrier; the clock runs from the barrier to the last join. Tasks share one Api
on the run's event loop; a contender with only a sync Api runs as one sequential caller (the
reference row of the async tables).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from .cases import Case, Probe, namespace, verify
from .contenders import Api, Contender, Kind
from .ops import POOL, STR

THREADS = (1, 8)
"""Thread counts of the mixed get/set scenario (1 shows what 8 gain over a lone caller)."""
TASKS = (50,)
"""Concurrent asyncio tasks per async scenario (benchmarks/redis_async.py and memcached_async.py
run 1, 10, 50 and 200)."""


def threads_scenario(threads: int) -> str:
    return f"{threads} thread{'s' if threads > 1 else ''}, 3 get : 1 set"


def threads_run(contender: Contender, probe: Probe, threads: int) -> Callable[[int], float]:
    assert contender.api is not None
    factory = contender.api
    keys = _pool()

    def run(n: int) -> float:
        main = probe.api(contender, is_async=False)
        assert main is not None
        for k in keys:
            main.set(k, STR)
        per_thread = max(n // threads, 1)
        barrier = threading.Barrier(threads + 1)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                api = factory()
                get, set_ = api.get, api.set
                barrier.wait()
                for i in range(per_thread):
                    if i % 4 == 3:
                        set_(keys[i % POOL], STR)
                    else:
                        get(keys[i % POOL])
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for t in workers:
            t.start()
        with contextlib.suppress(threading.BrokenBarrierError):  # a worker failed: see errors
            barrier.wait()
        start = time.perf_counter()
        for t in workers:
            t.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        got = main.get(keys[3])
        verify(got == STR, "get after the threads", got)
        return elapsed * n / (per_thread * threads)  # per requested op, whatever the rounding

    return run


def _pool() -> list[str]:
    """The keys of one case, the same on every run."""
    return [f"{namespace()}:{i}" for i in range(POOL)]


async def _tasks(api: Api, keys: list[str], tasks: int, n: int, write: bool) -> float:
    for k in keys:
        await api.set(k, STR)
    per_task = max(n // tasks, 1)
    call = api.set if write else api.get

    async def work(offset: int) -> None:
        for i in range(per_task):
            if write:
                await call(keys[(offset + i) % POOL], STR)
            else:
                await call(keys[(offset + i) % POOL])

    start = time.perf_counter()
    await asyncio.gather(*(work(t) for t in range(tasks)))
    elapsed = time.perf_counter() - start
    got = await api.get(keys[0])
    verify(got == STR, "get after the tasks", got)
    return elapsed * n / (per_task * tasks)


def _sequential(api: Api, keys: list[str], n: int, write: bool) -> float:
    for k in keys:
        api.set(k, STR)
    get, set_ = api.get, api.set
    start = time.perf_counter()
    for i in range(n):
        if write:
            set_(keys[i % POOL], STR)
        else:
            get(keys[i % POOL])
    return time.perf_counter() - start


def tasks_run(api: Api, probe: Probe, tasks: int, write: bool) -> Callable[[int], float]:
    keys = _pool()

    def run(n: int) -> float:
        if api.is_async:
            return probe.loop.run_until_complete(_tasks(api, keys, tasks, n, write))
        return _sequential(api, keys, n, write)

    return run


def concurrency_cases(kind: Kind, probe: Probe) -> list[Case]:
    cases = []
    for threads in THREADS:
        for c in kind.contenders:
            if c.api is not None and probe.api(c, is_async=False) is not None:
                cases.append(Case(kind.name, threads_scenario(threads), c.name, c.role,
                                  threads_run(c, probe, threads)))  # fmt: skip
    for c in kind.async_contenders:
        api: Any = probe.api(c, is_async=True) if c.aapi is not None else probe.api(c, False)
        if api is None:
            continue
        for tasks in TASKS:
            for write, verb in ((False, "aget hit"), (True, "aset")):
                scenario = f"{verb} 100 B, {tasks} tasks"
                cases.append(Case(kind.name, scenario, c.name, c.role,
                                  tasks_run(api, probe, tasks, write)))  # fmt: skip
    return cases
