"""The lease across processes: 8 processes miss one key on Redis and memcached, one computes."""

from __future__ import annotations

import multiprocessing
import uuid

import pytest

from tests.stampede_support import BOUND, eventually, process_reader

PROCESSES = 8


@pytest.mark.slow  # 8 spawned processes
@pytest.mark.parametrize("url_fixture", ["redis_url", "memcached_url"])
def test_one_compute_across_processes(url_fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(url_fixture)
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded test process
    barrier = ctx.Barrier(PROCESSES)
    computes, waiting = ctx.Value("i", 0), ctx.Value("i", 0)
    release, out = ctx.Event(), ctx.Queue()
    namespace = f"procs{uuid.uuid4().hex[:8]}"
    args = (url, namespace, barrier, computes, waiting, release, out)
    procs = [ctx.Process(target=process_reader, args=args) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    try:
        eventually(lambda: waiting.value == PROCESSES - 1, "every other process waiting")
        eventually(lambda: computes.value == 1, "the lease holder's compute")
    finally:
        release.set()
    results = [out.get(timeout=BOUND) for _ in procs]
    for p in procs:
        p.join(BOUND)
        assert p.exitcode == 0
    assert results == ["computed once"] * PROCESSES
    assert computes.value == 1
