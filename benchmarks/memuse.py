"""Memory held by an in-process cache per 100,000 entries (tracemalloc, after a full GC).

Keys and values are made inside the measured window, so each contender is charged for what it
keeps: a dict keeps the objects, the caches keep their own encoded copies.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from .cases import Probe
from .contenders import Kind
from .ops import STR

PER = 100_000


def measure(kind: Kind, probe: Probe, entries: int) -> list[dict[str, Any]]:
    """One row per memory contender: bytes per ``PER`` entries of a distinct 100-byte str."""
    rows: list[dict[str, Any]] = []
    for c in kind.memory_contenders:
        api = probe.api(c, is_async=False)
        if api is None:
            continue
        set_, head = api.set, STR[:92]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(entries):
                set_(f"mem:{i}", f"{head}{i:08d}")
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        got = api.get(f"mem:{entries - 1}")
        for i in range(entries):
            api.delete(f"mem:{i}")
        rows.append(
            {
                "contender": c.name,
                "role": c.role,
                "entries": entries,
                "bytes_per_100k": round(used * PER / entries),
                "error": None if got == f"{head}{entries - 1:08d}" else f"lost entries: {got!r}",
            }
        )
    return rows
