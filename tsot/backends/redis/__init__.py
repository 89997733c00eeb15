"""The Redis backend (one server, Sentinel, Cluster; Valkey too; sync and asyncio).

``redis.backend`` is the backend; the other modules are named by their role. Its public
names are imported from here on first use, so that importing one module of the package does not
import the others (or the driver): ``RedisBackend``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import lazy_names

if TYPE_CHECKING:
    from .backend import RedisBackend as RedisBackend

__all__ = ["RedisBackend"]

__getattr__ = lazy_names(__name__, __all__)
