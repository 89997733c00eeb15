"""Local disk: raw rocksdict (the limit), FileBasedCache, FileSystemCache, diskcache, tsot."""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from .base import Api, Contender, Kind, core, django, dumps, flask, loads

ENTRIES = 2_000_000
"""Room for the whole run in every bounded cache, so no one is measured while culling."""


class RawRocks:
    """rocksdict in raw mode (bytes in, bytes out): no expiry, no header, default write options."""

    def __init__(self, path: Path) -> None:
        from rocksdict import Options, Rdict

        self.db = Rdict(str(path), Options(raw_mode=True))
        self.lock = threading.Lock()

    def api(self) -> Api:
        from rocksdict import WriteBatch

        db = self.db

        def get(key: str) -> Any:
            return loads(db.get(key.encode()))

        def set(key: str, value: Any) -> None:
            db[key.encode()] = dumps(value)

        def add(key: str, value: Any) -> bool:
            k = key.encode()
            with self.lock:  # check-then-put is only correct under a lock
                if db.get(k) is not None:
                    return False
                db[k] = dumps(value)
            return True

        def delete(key: str) -> bool:
            k = key.encode()
            existed = db.get(k) is not None
            del db[k]
            return existed

        def incr(key: str, delta: int = 1) -> int:
            k = key.encode()
            with self.lock:
                value = int(cast(bytes, db[k])) + delta
                db[k] = str(value).encode()
            return value

        def get_many(keys: list[str]) -> dict[str, Any]:
            found = cast("list[bytes | None]", db.get([k.encode() for k in keys]))
            return {k: loads(v) for k, v in zip(keys, found, strict=True) if v is not None}

        def set_many(mapping: Mapping[str, Any]) -> None:
            batch = WriteBatch(raw_mode=True)
            for k, v in mapping.items():
                batch.put(k.encode(), dumps(v))
            db.write(batch)

        return Api(get, set, add, delete, incr, get_many, set_many)

    def close(self) -> None:
        self.db.close()


def rocksdb_kind(_where: str, tmp: Path) -> Kind:
    @functools.cache
    def raw() -> RawRocks:
        return RawRocks(tmp / "raw")

    caches: dict[str, dict[str, Any]] = {
        "disk-filebased": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp / "filebased"),
            "OPTIONS": {"MAX_ENTRIES": ENTRIES},
        },
        "disk-diskcache": {"BACKEND": "diskcache.DjangoCache", "LOCATION": str(tmp / "diskcache")},
        "disk-tsot": {"BACKEND": "tsot_django.RocksDBCache", "LOCATION": str(tmp / "tsot-django")},
    }
    flask_fs = {
        "CACHE_TYPE": "FileSystemCache",
        "CACHE_DIR": str(tmp / "flask-fs"),
        "CACHE_THRESHOLD": ENTRIES,
    }
    flask_tsot = {"CACHE_TYPE": "tsot_flask.RocksDBCache", "CACHE_DIR": str(tmp / "tsot-flask")}
    contenders = [
        Contender("rocksdict (raw)", "raw", api=lambda: raw().api()),
        django("Django FileBasedCache", "peer", "disk-filebased"),
        django("diskcache DjangoCache", "peer", "disk-diskcache"),
        flask("Flask-Caching FileSystemCache", "peer", flask_fs),
        *core(f"rocksdb://{tmp / 'tsot-core'}"),
        django("tsot_django RocksDBCache", "tsot", "disk-tsot"),
        flask("tsot_flask RocksDBCache", "tsot", flask_tsot),
    ]

    def close() -> None:
        """Close every handle before the temporary directory goes (tsot's too)."""
        if raw.cache_info().currsize:
            raw().close()
        try:
            from tsot.backends.rocksdb import close_database
        except ImportError:
            return
        for name in ("tsot-core", "tsot-django", "tsot-flask"):
            close_database(str(tmp / name))

    return Kind("rocksdb", "RocksDB and local disk", contenders, caches=caches, closers=[close])
