"""The memcached backend: one or many servers, sync and asyncio, meta commands.

``memcached.backend`` is the backend; the other modules are named by their role. Its public
names are imported from here on first use, so that importing one module of the package does not
import the others (or the driver): ``MemcachedBackend``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import lazy_names

if TYPE_CHECKING:
    from .backend import MemcachedBackend as MemcachedBackend

__all__ = ["MemcachedBackend"]

__getattr__ = lazy_names(__name__, __all__)
