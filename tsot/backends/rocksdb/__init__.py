"""The RocksDB backend: an embedded database directory, through rocksdict.

``rocksdb.backend`` is the backend; the other modules are named by their role. Its public
names are imported from here on first use, so that importing one module of the package does not
import the others (or the driver): ``RocksDBBackend``, ``close_database``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import lazy_names

if TYPE_CHECKING:
    from .backend import RocksDBBackend as RocksDBBackend
    from .backend import close_database as close_database

__all__ = ["RocksDBBackend", "close_database"]

__getattr__ = lazy_names(__name__, __all__)
