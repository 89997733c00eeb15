"""In-process memory: a plain dict (the limit), LocMemCache, SimpleCache, tsot's memory store."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .base import Api, Contender, Kind, core, django, flask, signing

# Every bounded cache gets room for the whole run, so no one is measured while culling.
ENTRIES = 2_000_000


class RawDict:
    """A dict holding references: no copy, no expiry, no eviction; the floor of any cache."""

    def __init__(self) -> None:
        self.d: dict[str, Any] = {}
        self.lock = threading.Lock()

    def api(self) -> Api:
        d = self.d

        def add(key: str, value: Any) -> bool:
            if key in d:
                return False
            d[key] = value
            return True

        def delete(key: str) -> bool:
            return d.pop(key, None) is not None

        def incr(key: str, delta: int = 1) -> int:
            with self.lock:  # the least a correct incr needs under threads
                value: int = d[key] + delta
                d[key] = value
            return value

        def get_many(keys: list[str]) -> dict[str, Any]:
            return {k: d[k] for k in keys if k in d}

        return Api(d.get, d.__setitem__, add, delete, incr, get_many, d.update)


def memory_kind(_where: str, _tmp: Path) -> Kind:
    raw = RawDict()
    caches = {
        "memory-locmem": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "bench-locmem",
            "OPTIONS": {"MAX_ENTRIES": ENTRIES},
        },
        "memory-tsot": {
            "BACKEND": "tsot_django.MemoryCache",
            "LOCATION": "bench-tsot",
            "OPTIONS": {"MAX_ENTRIES": ENTRIES},
        },
        # Fresh tables for the memory-use measurement only.
        "memuse-locmem": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "memuse-locmem",
            "OPTIONS": {"MAX_ENTRIES": ENTRIES},
        },
        "memuse-tsot": {
            "BACKEND": "tsot_django.MemoryCache",
            "LOCATION": "memuse-tsot",
            "OPTIONS": {"MAX_ENTRIES": ENTRIES},
        },
    }
    flask_simple = {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": ENTRIES}
    flask_tsot = {"CACHE_TYPE": "tsot_flask.MemoryCache", "CACHE_THRESHOLD": ENTRIES}
    # the event hook on (docs/observability.md): compare with "tsot Storage", the hook off
    events = core(
        f"memory://bench-events?max_entries={ENTRIES}", ", metrics=stats", metrics="stats"
    )
    contenders = [
        Contender("dict", "raw", api=raw.api),
        django("Django LocMemCache", "peer", "memory-locmem"),
        flask("Flask-Caching SimpleCache", "peer", flask_simple),
        *core(f"memory://bench-core?max_entries={ENTRIES}"),
        *signing(f"memory://bench-signed?max_entries={ENTRIES}"),
        *events,
        django("tsot_django MemoryCache", "tsot", "memory-tsot"),
        flask("tsot_flask MemoryCache", "tsot", flask_tsot),
    ]
    memory_contenders = [
        Contender("dict", "raw", api=RawDict().api),
        django("Django LocMemCache", "peer", "memuse-locmem"),
        flask("Flask-Caching SimpleCache", "peer", flask_simple),
        *core(f"memory://memuse-core?max_entries={ENTRIES}")[:1],
        django("tsot_django MemoryCache", "tsot", "memuse-tsot"),
        flask("tsot_flask MemoryCache", "tsot", flask_tsot),
    ]
    return Kind(
        "memory",
        "In-process memory",
        contenders,
        memory_contenders=memory_contenders,
        caches=caches,
    )
