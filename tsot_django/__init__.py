"""tsot_django: Django cache backends (CACHES) on tsot storages, with a native async API."""

from .cache import MemcachedCache, MemoryCache, RedisCache, RocksDBCache, TsotCache

__all__ = ["MemcachedCache", "MemoryCache", "RedisCache", "RocksDBCache", "TsotCache"]
