"""Who competes: per storage kind, the raw client, the peers and tsot (one module per kind)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .base import Api, Contender, Kind, Role
from .memcached import memcached_kind
from .memory import memory_kind
from .redis import redis_kind
from .rocksdb import rocksdb_kind

KINDS = ("memory", "redis", "memcached", "rocksdb")
SERVER_KINDS = {"redis": "redis", "memcached": "memcached"}
"""Kinds that need a server, and which one."""

BUILDERS: dict[str, Callable[[str, Path], Kind]] = {
    "memory": memory_kind,
    "redis": redis_kind,
    "memcached": memcached_kind,
    "rocksdb": rocksdb_kind,
}
"""kind -> builder(server address or "", temp dir)."""

__all__ = ["BUILDERS", "KINDS", "SERVER_KINDS", "Api", "Contender", "Kind", "Role"]
