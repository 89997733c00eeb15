"""The local cache's promise under faults, with real processes and a real server.

Writer processes (raw redis-py, and tsot with the local cache on) give their keys increasing
values; reader processes (sync and asyncio, local cache on) read them all the time; meanwhile
the test kills the tracking connections (``CLIENT KILL TYPE pubsub``) and restarts the server
at seeded random moments. Afterwards: no read that began ``DELIVERY`` seconds or more after a
write was acknowledged returned an older value of that key. (A restart loses the data, so a
read may find nothing; that is not a stale value.)
"""

from __future__ import annotations

import bisect
import os
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
import redis

from tests.servers.proc import Server
from tests.servers.redis import PROGRAMS, Program, start_single

pytestmark = [pytest.mark.server, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 3.0
DELIVERY = 0.25
"""The delivery wait granted after an acknowledged write: generous, for a loaded test machine
(benchmarks/redis_local.py measures the real delay, well under a millisecond when idle)."""


def worker(role: str, url: str, ns: str, seed: int, keys: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backends.local_cache_worker", role, url, ns,
         str(SECONDS), str(seed), *keys],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def faults(server: Server, rng: random.Random, until: float) -> list[str]:
    """Kill the tracking connections or restart the server at random moments; what was done."""
    done = []
    restarts = 0
    while time.monotonic() < until - 0.5:
        time.sleep(rng.uniform(0.2, 0.5))
        if restarts < 2 and rng.random() < 0.3:
            server.stop()
            server.start()
            restarts += 1
            done.append("restart")
        else:
            client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)
            try:
                done.append(f"kill {client.client_kill_filter(_type='pubsub')}")
            except redis.RedisError:
                done.append("kill failed")
            finally:
                client.close()
    return done


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_no_reader_returns_an_older_value_after_the_delivery_wait(
    program: Program, tmp_path: Path
) -> None:
    server = start_single(tmp_path / "srv", program=program)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ns = f"prop{uuid.uuid4().hex[:6]}"
    url = f"{program.name}://127.0.0.1:{server.port}/0"
    raw_keys, tsot_keys = ["a0", "a1", "a2"], ["b0", "b1", "b2"]
    everything = raw_keys + tsot_keys
    try:
        readers = [
            worker("reader", url, ns, seed + 1, everything),
            worker("reader", url, ns, seed + 2, everything),
            worker("async-reader", url, ns, seed + 3, everything),
        ]
        for r in readers:
            assert r.stdout is not None
            line = r.stdout.readline().strip()
            assert line == "ready", (line, r.stderr.read() if r.stderr else "")
        writers = [
            worker("raw-writer", url, ns, seed + 4, raw_keys),
            worker("tsot-writer", url, ns, seed + 5, tsot_keys),
        ]
        done = faults(server, rng, time.monotonic() + SECONDS)
        outputs = []
        for p in readers + writers:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err[-3000:]
            outputs.append(out)
    finally:
        server.stop()

    acks: dict[str, list[tuple[float, int]]] = defaultdict(list)
    reads: list[tuple[str, int, float]] = []
    local_hits = 0
    for out in outputs:
        for line in out.splitlines():
            kind, *rest = line.split()
            if kind == "W":
                acks[rest[0]].append((float(rest[2]), int(rest[1])))
            elif kind == "R" and rest[1] != "-":
                reads.append((rest[0], int(rest[1]), float(rest[2])))
            elif kind == "S":
                local_hits += int(rest[0])
    assert sum(len(v) for v in acks.values()) > 50, "the writers hardly wrote"
    assert len(reads) > 500 and local_hits > 100, (len(reads), local_hits)
    newest: dict[str, tuple[list[float], list[int]]] = {}
    for key, seq in acks.items():
        seq.sort()
        running, best = [], 0
        for _, n in seq:
            best = max(best, n)
            running.append(best)
        newest[key] = ([t for t, _ in seq], running)
    stale = []
    for key, value, started in reads:
        times, best = newest.get(key, ([], []))
        i = bisect.bisect_right(times, started - DELIVERY)
        if i and value < best[i - 1]:
            stale.append((key, value, best[i - 1], started))
    assert not stale, f"seed {seed}, faults {done}: {len(stale)} stale reads, e.g. {stale[:5]}"
