"""Quick RocksDB figures: tsot vs raw rocksdict vs diskcache (plain and through Django).

Run: ``.venv/bin/python benchmarks/rocksdb_quick.py [N]``. Prints microseconds per operation for
get/set of 100-byte strings and get_many/set_many of 100 keys; no assertions.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
MANY = 100
VALUE = "v" * 100
KEYS = [f"key:{i}" for i in range(N)]
GROUPS = [KEYS[i : i + MANY] for i in range(0, N, MANY)]


def per_op(fn: Callable[[], Any], ops: int) -> float:
    """Best of three runs, in microseconds per operation."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / ops * 1e6


def measure(name: str, get: Any, set_: Any, get_many: Any, set_many: Any) -> dict[str, float]:
    def sets() -> None:
        for k in KEYS:
            set_(k, VALUE)

    def gets() -> None:
        for k in KEYS:
            get(k)

    def set_manys() -> None:
        for g in GROUPS:
            set_many({k: VALUE for k in g})

    def get_manys() -> None:
        for g in GROUPS:
            get_many(g)

    row = {
        "set": per_op(sets, len(KEYS)),
        "get": per_op(gets, len(KEYS)),
        "set_many(100)": per_op(set_manys, len(GROUPS)),
        "get_many(100)": per_op(get_manys, len(GROUPS)),
    }
    assert get(KEYS[-1]) is not None, name
    print(f"{name:34s}" + "".join(f"{v:>15.2f}" for v in row.values()), flush=True)
    return row


def raw_rocksdict(path: str) -> dict[str, float]:
    import rocksdict

    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    db = rocksdict.Rdict(path, opts)
    value = VALUE.encode()

    def set_many(d: dict[str, str]) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for k, v in d.items():
            batch.put(k.encode(), v.encode())
        db.write(batch)

    try:
        return measure(
            "raw rocksdict (bytes, raw_mode)",
            lambda k: db.get(k.encode()),
            lambda k, v: db.put(k.encode(), value),
            lambda ks: db.get([k.encode() for k in ks]),
            set_many,
        )
    finally:
        db.close()


def tsot_storage(path: str, **options: Any) -> dict[str, float]:
    from tsot import Storage
    from tsot.backends.rocksdb import close_database

    s = Storage.from_url(f"rocksdb://{path}", **options)
    label = "tsot Storage rocksdb" + (" sync_writes" if options.get("sync_writes") else "")
    try:
        return measure(label, s.load, s.store, s.load_many, s.store_many)
    finally:
        close_database(path)


def diskcache_cache(path: str) -> dict[str, float]:
    import diskcache

    c = diskcache.Cache(path)

    def set_many(d: dict[str, str]) -> None:
        with c.transact():
            for k, v in d.items():
                c.set(k, v)

    try:
        return measure(
            "diskcache.Cache",
            c.get,
            c.set,
            lambda ks: [c.get(k) for k in ks],
            set_many,
        )
    finally:
        c.close()


def django_caches(dc_path: str, rocks_path: str) -> list[dict[str, float]]:
    import django
    from django.conf import settings

    settings.configure(
        CACHES={
            "diskcache": {"BACKEND": "diskcache.DjangoCache", "LOCATION": dc_path},
            "tsot": {"BACKEND": "tsot_django.TsotCache", "LOCATION": f"rocksdb://{rocks_path}"},
        },
        USE_TZ=True,
    )
    django.setup()
    from django.core.cache import caches

    rows = []
    for alias in ("diskcache", "tsot"):
        try:
            c = caches[alias]
            rows.append(measure(f"Django {alias}", c.get, c.set, c.get_many, c.set_many))
        except Exception as exc:  # the adapter may not be there yet
            print(f"Django {alias}: skipped ({type(exc).__name__}: {exc})")
    return rows


def main() -> None:
    print(f"{N} keys, 100-byte str values; microseconds per call\n")
    heads = ("set", "get", "set_many(100)", "get_many(100)")
    print(f"{'':34s}" + "".join(f"{h:>15s}" for h in heads))
    with tempfile.TemporaryDirectory() as tmp:
        raw_rocksdict(f"{tmp}/raw")
        tsot_storage(f"{tmp}/tsot")
        diskcache_cache(f"{tmp}/dc")
        django_caches(f"{tmp}/djdc", f"{tmp}/djtsot")
        global KEYS, GROUPS
        KEYS, GROUPS = KEYS[:500], GROUPS[:5]  # each write waits for an fsync: fewer of them
        tsot_storage(f"{tmp}/tsot-sync", sync_writes=True)


if __name__ == "__main__":
    main()
