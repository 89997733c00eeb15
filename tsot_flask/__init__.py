"""tsot_flask: Flask-Caching backends on tsot storage (``CACHE_TYPE = "tsot_flask.TsotCache"``)."""

from .backends import MemcachedCache, MemoryCache, RedisCache, RocksDBCache, TsotCache
from .stampede import Cache

__all__ = ["Cache", "MemcachedCache", "MemoryCache", "RedisCache", "RocksDBCache", "TsotCache"]
