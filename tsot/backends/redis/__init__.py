"""The Redis backend (one server, Sentinel, Cluster; Valkey too; sync and asyncio).

``redis.backend`` is the backend; the other modules are named by their role. Its public
names are imported from here on first use, so that importing one module of the package does not
import the others (or the driver): ``RedisBackend``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backend import RedisBackend as RedisBackend

__all__ = ["RedisBackend"]


def __getattr__(name: str) -> object:
    if name == "RedisBackend":
        from . import backend

        value = getattr(backend, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
