"""Flask-Caching backends over a tsot Storage: ``TsotCache`` and one class per storage kind.

Each class implements the cachelib contract (what ``flask_caching.Cache`` calls) on a Storage;
the classes differ only in which Flask-Caching keys say where the storage is (tsot_flask.config).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from flask import Flask
from flask_caching.backends.base import BaseCache

from tsot import ConfigurationError, MissingDependency, Storage
from tsot.integration import MISSING, Key, SplitReadThrough, warn_unsigned

from . import config as cfg
from .cli import add_commands
from .prefixes import PrefixedStorages
from .redis_api import RedisApi
from .serializers import SerializingStorage, adopt
from .stampede import read as read_stampede
from .stampede import release_on_teardown
from .timeouts import Timeout, default_ttl, to_core

Store = Storage | SerializingStorage | PrefixedStorages
"""What a TsotCache calls: a Storage, or one seen through CACHE_SERIALIZER / a callable prefix."""


def _split_of(store: Any) -> SplitReadThrough:
    """The get/set read-through of CACHE_TSOT_STAMPEDE on ``store``, which must be a Storage."""
    if not isinstance(store, Storage):
        raise ConfigurationError(
            "CACHE_TSOT_STAMPEDE needs the storage's own serializer and a string "
            "CACHE_KEY_PREFIX (not a custom CACHE_SERIALIZER or a callable prefix)"
        )
    return SplitReadThrough(store)


class TsotCache(RedisApi, BaseCache):
    """A Flask-Caching backend on any tsot storage; ``CACHE_TYPE = "tsot_flask.TsotCache"``.

    The storage URL is ``CACHE_TSOT_URL``; CACHE_KEY_PREFIX is the tsot namespace, so
    ``clear()`` removes this cache's keys and nothing else. Build one directly with
    ``TsotCache(Storage.from_url(url, namespace="app"))``. django-redis's extra methods
    (``ttl``, ``keys``, ``lock``...) come from ``RedisApi``: ``cache.cache.ttl(key)``.
    """

    def __init__(
        self,
        storage: Store,
        default_timeout: int = 300,
        ignore_delete_many_errors: bool = False,
        stampede: bool = False,
    ) -> None:
        BaseCache.__init__(
            self, default_timeout=cfg.default_timeout(default_timeout, type(self).__name__)
        )
        # a constructor argument only from Flask-Caching 2.5 (which needs Python 3.11)
        self.ignore_delete_many_errors = ignore_delete_many_errors
        # a Storage, or a stand-in with its methods (CACHE_SERIALIZER, a callable prefix)
        self.storage = cast("Storage", storage)
        self._default_ttl = default_ttl(self.default_timeout)
        # cached/memoize call get, compute, then set: protected in those two calls
        self._split = _split_of(self.storage) if stampede else None
        self.settings_used: cfg.Settings | None = None  # set by factory
        self._serializer: Any = None

    @property
    def serializer(self) -> Any:
        """The CACHE_SERIALIZER in use; None means the storage's own (tsot_flask.serializers)."""
        return self._serializer

    @serializer.setter
    def serializer(self, serializer: Any) -> None:
        # Flask-Caching 2.5 sets CACHE_SERIALIZER here once it has built the cache
        self.storage = cast("Storage", adopt(self, serializer))
        self._serializer = serializer
        if self._split is not None:
            self._split = _split_of(self.storage)

    # -- construction from Flask-Caching config ----------------------------------------------

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> TsotCache:
        """Build the cache from Flask-Caching's merged config (what ``Cache.init_app`` calls).

        Raises tsot.ConfigurationError naming the config key that is wrong (with any password
        masked), or MissingDependency naming the extra to install.
        """
        settings = cls.settings(config, args, kwargs)
        add_commands(app)
        stampede = read_stampede(config, settings)
        cache = cls(
            open_storage(settings),
            settings.default_timeout,
            settings.ignore_delete_many_errors,
            stampede,
        )
        cache.settings_used = settings
        if stampede:
            release_on_teardown(app, cache.abandon_leases)
        return cache

    @classmethod
    def settings(
        cls, config: Mapping[str, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> cfg.Settings:
        """Everything this class reads from the config, checked; errors name the key."""
        name = str(config.get("CACHE_TYPE") or f"tsot_flask.{cls.__name__}")
        url, url_key = cls._location(config, args, name)
        settings = cfg.read(name, config, kwargs, url, url_key)
        for option, (value, key) in cls._kind_options(config, name).items():
            if option not in settings.options:  # CACHE_OPTIONS wins over the legacy key
                settings.options[option] = value
                settings.origins[option] = key
        return settings

    @classmethod
    def _location(
        cls, config: Mapping[str, Any], args: Sequence[Any], name: str
    ) -> tuple[str | None, str]:
        return cfg.tsot_url(config, args, name)

    @classmethod
    def _kind_options(cls, config: Mapping[str, Any], name: str) -> dict[str, tuple[Any, str]]:
        return {}

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.storage.url} prefix={self.storage.namespace!r} "
            f"default_timeout={self.default_timeout}>"
        )

    # -- the cachelib contract ----------------------------------------------------------------

    def _ttl(self, timeout: Timeout) -> int | float | None:
        return to_core(timeout, self._default_ttl)

    def get(self, key: str) -> Any:
        """The cached value, or None when the key is missing, expired or fails its signature.

        With CACHE_TSOT_STAMPEDE a None makes this thread the one that computes the value
        (until its ``set`` of the key); others wait for it (docs/stampede.md#flask).
        """
        if self._split is not None:
            value = self._split.get(key)
            return None if value is MISSING else value
        return self.storage.load(key)

    def abandon_leases(self) -> None:
        """With CACHE_TSOT_STAMPEDE: give up the leases of keys this thread got None for and
        never ``set`` (the function raised); called when each app context ends."""
        if self._split is not None:
            self._split.abandon()

    def get_many(self, *keys: str) -> list[Any]:
        """The values of ``keys`` in order, None for each one that is missing."""
        if not keys:
            return []
        found = self.storage.load_many(keys)
        return [found.get(key) for key in keys]

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value``; True. Timeout None = the default, 0 = never expires, < 0 = expired."""
        if self._split is not None:
            self._split.set(key, value, self._ttl(timeout))
            return True
        self.storage.store(key, value, self._ttl(timeout))
        return True

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store ``value`` only if ``key`` is absent; True if it was absent."""
        return self.storage.add(key, value, self._ttl(timeout))

    def set_many(self, mapping: Mapping[str, Any], timeout: Timeout = None) -> list[Any]:
        """Store every item (all are encoded before any is written); the list of keys set."""
        if mapping:
            self.storage.store_many(cast("Mapping[Key, Any]", mapping), self._ttl(timeout))
        return list(mapping)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        return self.storage.delete(key)

    def delete_many(self, *keys: str) -> list[Any]:
        """Remove ``keys`` in one call; the keys that are now absent, which is all of them.

        cachelib counts a key that did not exist as deleted; so does this.
        """
        if keys:
            self.storage.delete_many(keys)
        return list(keys)

    def has(self, key: str) -> bool:
        """True if ``key`` is present and not expired."""
        return self.storage.exists(key)

    def clear(self) -> bool:
        """Remove every key of this cache's prefix (never a server-wide flush); True."""
        self.storage.clear()
        return True

    def inc(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` atomically; a missing key starts from 0. The new value.

        Raises tsot.WrongType (a TypeError) if the stored value is not an int.
        """
        return self.storage.incr(key, delta)

    def dec(self, key: str, delta: int = 1) -> int:
        """Subtract ``delta`` atomically; a missing key starts from 0. The new value."""
        return self.storage.decr(key, delta)


class _KindCache(TsotCache):
    """A per-kind class: the URL comes from the kind's usual config keys, never from args."""

    _url_from: Callable[[Mapping[str, Any], str], tuple[str | None, str]]

    @classmethod
    def _location(
        cls, config: Mapping[str, Any], args: Sequence[Any], name: str
    ) -> tuple[str | None, str]:
        cfg.no_args(args, name)
        return cls._url_from(config, name)


class RedisCache(_KindCache):
    """Redis from CACHE_REDIS_URL, or CACHE_REDIS_HOST/PORT/DB/PASSWORD."""

    _url_from = staticmethod(cfg.redis_url)


class MemcachedCache(_KindCache):
    """Memcached from CACHE_MEMCACHED_SERVERS (default ``["127.0.0.1:11211"]``)."""

    _url_from = staticmethod(cfg.memcached_url)


class RocksDBCache(_KindCache):
    """RocksDB in the directory CACHE_DIR (the FileSystemCache key)."""

    _url_from = staticmethod(cfg.rocksdb_url)


class MemoryCache(TsotCache):
    """A private in-process store per Cache object, bounded by CACHE_THRESHOLD (SimpleCache)."""

    @classmethod
    def _location(
        cls, config: Mapping[str, Any], args: Sequence[Any], name: str
    ) -> tuple[str | None, str]:
        cfg.no_args(args, name)
        return None, "CACHE_TYPE"

    @classmethod
    def _kind_options(cls, config: Mapping[str, Any], name: str) -> dict[str, tuple[Any, str]]:
        return {"max_entries": (cfg.max_entries(config, name), "CACHE_THRESHOLD")}


def open_storage(settings: cfg.Settings) -> Store:
    """Open the Storage ``settings`` describe; a ConfigurationError names the key to fix.

    With a callable CACHE_KEY_PREFIX, the storages of its prefixes (tsot_flask.prefixes).
    """
    prefix = settings.prefix_callable
    if prefix is None:
        return _open(settings)
    plain = dataclasses.replace(settings, prefix_callable=None)

    def open_for(namespace: str) -> Storage:
        return _open(dataclasses.replace(plain, options={**plain.options, "namespace": namespace}))

    return PrefixedStorages(prefix, open_for, _open(plain), settings.cache_type)


def _open(settings: cfg.Settings) -> Storage:
    try:
        if settings.url is None:
            return Storage.new_imc(**settings.options)
        storage = Storage.from_url(settings.url, **settings.options)
    except MissingDependency:
        raise
    except ConfigurationError as exc:
        raise cfg.fail(settings.blame(exc), settings.cache_type, str(exc)) from exc
    if settings.unsigned_by_default and storage.location is not None:
        serializer = str(settings.options.get("serializer", "pickle"))
        warn_unsigned(storage.location, storage.namespace, serializer, cfg.UNSIGNED_FIX)
    return storage
