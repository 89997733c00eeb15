"""Django's cache API as I/O-free steps: each operation yields tsot calls and returns the result.

An operation is a generator: it builds and validates Django keys, translates timeouts, yields
``Call``s (a tsot ``Storage``/``AsyncStorage`` method and its arguments), receives each result
(or has the call's exception thrown into it) and returns what Django's API returns. The sync
methods run an operation against a ``Storage``, the async ones await it against an
``AsyncStorage``: the logic exists once.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Generator, Iterable, Mapping
from typing import Any, Final, NamedTuple, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH, BaseCache

from tsot import SerializationError

T = TypeVar("T")
_NO_KWARGS: Mapping[str, Any] = {}
# Django's memcached_error_chars_re, compiled eagerly: its lazy proxy costs more per key than
# the search itself (measured on the async hot path).
_MEMCACHED_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")
_MADE_KEYS_KEPT = 4096  # per backend instance (one per thread); cleared whole when full


class Call(NamedTuple):
    """One tsot call: ``method`` of the (Async)Storage with ``args``; ``read`` may use a replica."""

    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = _NO_KWARGS
    read: bool = False


Op = Generator[Call, Any, T]

AWAIT: Final = "await"
"""The ``method`` of a Call that asks the async driver to await ``args[0]`` (not a storage call)."""


def translate_error(exc: BaseException) -> BaseException:
    """The exception Django's API raises for a tsot exception (``exc`` itself if unchanged).

    Django lets serializer errors through as they are (its tests expect ``pickle.PickleError``
    for an unpicklable value), so a SerializationError becomes the error it wraps.
    """
    if isinstance(exc, SerializationError) and isinstance(exc.__cause__, Exception):
        return exc.__cause__
    return exc


class CacheOps(BaseCache):
    """Key, timeout and result translation for every method of Django's cache API."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._made_keys: dict[tuple[str, int | None], str] = {}

    def validate_key(self, key: str) -> None:
        """Django's CacheKeyWarning checks, skipped at once for the usual clean, short key."""
        if len(key) > MEMCACHE_MAX_KEY_LENGTH or _MEMCACHED_BAD_CHARS.search(key):
            super().validate_key(key)

    def tsot_key(self, key: Any, version: int | None) -> str:
        """``make_and_validate_key``, remembered for str keys that need no warning.

        Making and checking a key costs more than a memory-cache hit; a key that warns is
        never remembered, so Django's CacheKeyWarning comes on every call, as in Django.
        """
        if type(key) is not str:
            return self.make_and_validate_key(key, version=version)
        made = self._made_keys.get((key, version))
        if made is not None:
            return made
        made = self.make_key(key, version=version)
        if len(made) > MEMCACHE_MAX_KEY_LENGTH or _MEMCACHED_BAD_CHARS.search(made):
            super().validate_key(made)
            return made
        if len(self._made_keys) >= _MADE_KEYS_KEPT:
            self._made_keys.clear()
        self._made_keys[(key, version)] = made
        return made

    def tsot_ttl(self, timeout: Any) -> Any:
        """Django timeout -> tsot ttl (the TTL table: docs/architecture.md#ttl).

        DEFAULT_TIMEOUT means the TIMEOUT setting; None never expires; 0 and negative expire
        at once (tsot deletes instead of writing); any other number is seconds (floats kept).
        """
        if timeout is DEFAULT_TIMEOUT:
            return self.default_timeout
        if type(timeout) is bool:  # Django does arithmetic on it; tsot refuses bools
            return int(timeout)
        return timeout

    def op_get(self, key: Any, default: Any, version: int | None) -> Op[Any]:
        k = self.tsot_key(key, version)
        return (yield Call("load", (k, default), read=True))

    def op_set(self, key: Any, value: Any, timeout: Any, version: int | None) -> Op[None]:
        k = self.tsot_key(key, version)
        yield Call("store", (k, value, self.tsot_ttl(timeout)))

    def op_add(self, key: Any, value: Any, timeout: Any, version: int | None) -> Op[bool]:
        k = self.tsot_key(key, version)
        return bool((yield Call("add", (k, value, self.tsot_ttl(timeout)))))

    def op_touch(self, key: Any, timeout: Any, version: int | None) -> Op[bool]:
        k = self.tsot_key(key, version)
        return bool((yield Call("expire", (k, self.tsot_ttl(timeout)))))

    def op_delete(self, key: Any, version: int | None) -> Op[bool]:
        k = self.tsot_key(key, version)
        return bool((yield Call("delete", (k,))))

    def op_has_key(self, key: Any, version: int | None) -> Op[bool]:
        k = self.tsot_key(key, version)
        return bool((yield Call("exists", (k,), read=True)))

    def op_incr(self, key: Any, delta: int, version: int | None) -> Op[int]:
        k = self.tsot_key(key, version)
        try:
            # One atomic tsot call; create=False keeps Django's "missing key" error.
            new: int = yield Call("incr", (k, delta), {"create": False})
        except KeyError:
            raise ValueError(f"Key '{k}' not found") from None
        return new

    def op_get_many(self, keys: Iterable[Any], version: int | None) -> Op[dict[Any, Any]]:
        key_map = {self.tsot_key(key, version): key for key in keys}
        if not key_map:
            return {}
        found: dict[str, Any] = yield Call("load_many", (list(key_map),), read=True)
        return {key_map[k]: v for k, v in found.items()}

    def op_set_many(
        self, data: Mapping[Any, Any], timeout: Any, version: int | None
    ) -> Op[list[Any]]:
        if not data:
            return []
        made = {self.tsot_key(key, version): v for key, v in data.items()}
        # tsot encodes every value before writing any: a failure raises and writes nothing,
        # so there are never partially failed keys to report.
        yield Call("store_many", (made, self.tsot_ttl(timeout)))
        return []

    def op_delete_many(self, keys: Iterable[Any], version: int | None) -> Op[None]:
        made = [self.tsot_key(key, version) for key in keys]
        if made:
            yield Call("delete_many", (made,))

    def op_clear(self) -> Op[None]:
        yield Call("clear", ())

    def op_get_or_set(
        self, key: Any, default: Any, timeout: Any, version: int | None, awaits: bool = False
    ) -> Op[Any]:
        # ``awaits`` (aget_or_set): an awaitable default, or one a callable returns, is awaited
        # (the async read-through awaits what the callable returns).
        k = self.tsot_key(key, version)
        if callable(default):
            # a read-through: one caller computes a missing value, hot values are refreshed
            # early, per the storage's stampede options (docs/stampede.md)
            return (yield Call("get_or_compute", (k, default, self.tsot_ttl(timeout))))
        # Django's algorithm (get, add, get again so a racing writer wins), with one key build.
        value = yield Call("load", (k, self._missing_key))
        if value is not self._missing_key:
            return value
        if awaits and inspect.isawaitable(default):
            default = yield Call(AWAIT, (default,))
        yield Call("add", (k, default, self.tsot_ttl(timeout)))
        return (yield Call("load", (k, default)))

    def op_incr_version(self, key: Any, delta: int, version: int | None) -> Op[int]:
        if version is None:
            version = self.version
        old = self.tsot_key(key, version)
        value = yield Call("load", (old, self._missing_key))
        if value is self._missing_key:
            raise ValueError(f"Key '{key}' not found")
        new = self.tsot_key(key, version + delta)
        # Django re-sets the value with the default timeout; so do we.
        yield Call("store", (new, value, self.tsot_ttl(DEFAULT_TIMEOUT)))
        yield Call("delete", (old,))
        return version + delta
