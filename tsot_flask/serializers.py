"""CACHE_SERIALIZER: the cachelib serializer Flask-Caching hands to a cache, honoured safely.

Flask-Caching 2.5 builds the serializer from CACHE_SERIALIZER (a ``BaseSerializer`` subclass or
instance) and sets it as ``cache.serializer`` after the cache is made. tsot takes it as follows:

- cachelib's own pickle serializers (``BaseSerializer``, ``RedisSerializer``, ...): tsot
  already pickles objects and signs them, so nothing changes;
- cachelib's ``JSONSerializer``: the storage's own ``json`` serializer;
- any other serializer: its ``dumps`` output is stored as bytes and given to its ``loads`` on
  read (ints stay plain so ``inc``/``dec`` stay atomic). Its ``loads`` may unpickle, so it only
  ever sees bytes that passed the signature check: on a shared store tsot refuses it at
  startup unless the app signs every value (a SECRET_KEY, and CACHE_OPTIONS ``sign`` left at
  "all"). In-process and local-disk stores take it as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tsot import ConfigurationError, Storage
from tsot.integration import LOCAL_SCHEMES

from .prefixes import PrefixedStorages

if TYPE_CHECKING:
    from .backends import Store, TsotCache

_PICKLING = frozenset(
    {
        "BaseSerializer",
        "BaseRedisSerializer",
        "RedisSerializer",
        "ValkeySerializer",
        "SimpleSerializer",
        "FileSystemSerializer",
        "UWSGISerializer",
        "DynamoDbSerializer",
        "MongoDbSerializer",
    }
)


def native(serializer: object) -> str | None:
    """The tsot serializer that is exactly ``serializer`` (a cachelib class), else None."""
    cls = type(serializer)
    if cls.__module__ != "cachelib.serializers":
        return None
    if cls.__name__ == "JSONSerializer":
        return "json"
    return "pickle" if cls.__name__ in _PICKLING else None


def check_safe(serializer: object, storage: Storage | PrefixedStorages, cache_type: str) -> None:
    """Refuse a serializer whose ``loads`` could see bytes nobody signed, on a shared store."""
    for method in ("dumps", "loads"):
        if not callable(getattr(serializer, method, None)):
            raise ConfigurationError(
                f"invalid CACHE_SERIALIZER for CACHE_TYPE {cache_type!r}: "
                f"{type(serializer).__name__} has no {method}() method"
            )
    location = storage.location
    if location is None or location.scheme in LOCAL_SCHEMES:
        return
    codec = storage.codec
    if codec.signer is None or codec.sign != "all":
        raise ConfigurationError(
            f"invalid CACHE_SERIALIZER for CACHE_TYPE {cache_type!r}: "
            f"{type(serializer).__name__} reads bytes from {storage.url}, which any client of "
            "that server can write, and tsot cannot check those bytes before its loads() runs "
            "(a loads() that unpickles would run their code). Set the app's SECRET_KEY and "
            "leave CACHE_OPTIONS 'sign' at 'all' so every value is signed, or use "
            "cachelib's JSONSerializer or a CACHE_OPTIONS 'serializer' (pickle, json, msgpack)"
        )


def adopt(cache: TsotCache, serializer: object) -> Store:
    """The storage ``cache`` should use with ``serializer`` (see the module docstring).

    Raises ConfigurationError naming CACHE_SERIALIZER when it cannot be honoured safely or
    contradicts CACHE_OPTIONS' ``serializer``.
    """
    current = cache.storage
    plain = current.storage if isinstance(current, SerializingStorage) else current
    cache_type = cache.settings_used.cache_type if cache.settings_used else type(cache).__name__
    if serializer is None:
        return plain
    wanted = native(serializer)
    if wanted is None:
        check_safe(serializer, plain, cache_type)
        return SerializingStorage(plain, serializer)
    if plain.codec.serializer == wanted:
        return plain
    settings = cache.settings_used
    if settings is None:  # built from a Storage: cachelib's JSON through bytes is safe too
        if wanted == "json":
            return SerializingStorage(plain, serializer)
    elif "serializer" not in settings.origins:
        from .backends import open_storage

        options = {**settings.options, "serializer": wanted}
        return open_storage(dataclasses.replace(settings, options=options))
    raise ConfigurationError(
        f"invalid CACHE_SERIALIZER for CACHE_TYPE {cache_type!r}: "
        f"{type(serializer).__name__} is tsot's {wanted!r} serializer, but the storage uses "
        f"{plain.codec.serializer!r} (CACHE_OPTIONS 'serializer'); set only one of them"
    )


class SerializingStorage:
    """A Storage whose objects go through a cachelib serializer (as bytes; ints stay plain).

    The methods TsotCache calls with values are wrapped; everything else is the Storage's.
    """

    def __init__(self, storage: Storage | PrefixedStorages, serializer: Any) -> None:
        self.storage = storage
        self.serializer = serializer
        self._dumps: Callable[[Any], Any] = serializer.dumps
        self._loads: Callable[[Any], Any] = serializer.loads

    def _out(self, value: Any) -> Any:
        if type(value) is int:
            return value  # plain, so incr works on it (cachelib's Redis serializer does the same)
        data = self._dumps(value)
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, bytes):
            raise ConfigurationError(
                f"CACHE_SERIALIZER {type(self.serializer).__name__}.dumps returned "
                f"{type(data).__name__}, not bytes"
            )
        return data

    def _in(self, value: Any) -> Any:
        return self._loads(value) if isinstance(value, bytes) else value

    def load(self, key: Any, default: Any = None) -> Any:
        value = self.storage.load(key, _MISSING)
        return default if value is _MISSING else self._in(value)

    def store(self, key: Any, value: Any, ttl: Any) -> None:
        self.storage.store(key, self._out(value), ttl)

    def add(self, key: Any, value: Any, ttl: Any) -> bool:
        return self.storage.add(key, self._out(value), ttl)

    def load_many(self, keys: Iterable[Any]) -> dict[Any, Any]:
        return {k: self._in(v) for k, v in self.storage.load_many(keys).items()}

    def store_many(self, mapping: Mapping[Any, Any], ttl: Any) -> None:
        self.storage.store_many({k: self._out(v) for k, v in mapping.items()}, ttl)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def __repr__(self) -> str:
        return f"<{self.storage!r} through {type(self.serializer).__name__}>"


_MISSING: Any = object()
