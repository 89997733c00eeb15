"""tsot_django: Django cache backends (CACHES) on tsot storages, with a native async API."""

from . import checks  # noqa: F401  (registers the system checks)
from .cache import MemcachedCache, MemoryCache, RedisCache, RocksDBCache, TsotCache
from .middleware import cache_page

__all__ = ["MemcachedCache", "MemoryCache", "RedisCache", "RocksDBCache", "TsotCache", "cache_page"]
