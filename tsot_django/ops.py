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
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from typing import Any, Final, NamedTuple, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH, BaseCache

from tsot import SerializationError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
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


_TWINS = """\
def {name}(self, {params}):
    return self._run(op(self, {args}))

async def a{name}(self, {params}):
    return await self._arun(op(self, {args}))
"""


def twins(
    op: Callable[..., Op[T]],
) -> tuple[Callable[..., T], Callable[..., Coroutine[Any, Any, T]]]:
    """The sync and async API methods of ``op``, an operation whose parameters are the API's
    (``op_add`` -> ``add``, ``aadd``): the first runs it with the cache's ``_run``, the second
    awaits it with ``_arun``. They take ``op``'s signature and docstring.

    As dataclasses make ``__init__``, the two are compiled from ``op``'s parameter list, so a
    call costs what a hand-written ``return self._run(self.op_add(key, value, ...))`` does
    (forwarding ``*args, **kwargs`` costs a tenth of a memory-cache ``delete``)."""
    signature = inspect.signature(op)
    names = list(signature.parameters)[1:]  # after self
    scope: dict[str, Any] = {"op": op}
    params = []
    for name in names:
        parameter = signature.parameters[name]
        if parameter.kind is not parameter.POSITIONAL_OR_KEYWORD:
            raise TypeError(f"twins: {op.__qualname__}({name}) must be a plain parameter")
        if parameter.default is parameter.empty:
            params.append(name)
        else:
            scope[f"_default_{name}"] = parameter.default
            params.append(f"{name}=_default_{name}")
    name = op.__name__.removeprefix("op_")
    source = _TWINS.format(name=name, params=", ".join(params), args=", ".join(names))
    exec(compile(source, f"<twins of {op.__qualname__}>", "exec"), scope)
    made = scope[name], scope["a" + name]
    same = like_op(op)
    for method in made:
        method.__qualname__ = op.__qualname__.replace(op.__name__, method.__name__)
        method.__module__ = op.__module__
        same(method)
    return made


def like_op(op: Callable[..., Any]) -> Callable[[F], F]:
    """``op``'s docstring and signature (without its generator return type) for an API method
    made from it: the pair ``twins`` makes, or a sync one-call form written out."""
    signature = inspect.signature(op)

    def apply(method: F) -> F:
        method.__doc__ = op.__doc__
        method.__signature__ = signature.replace(return_annotation=signature.empty)  # type: ignore[attr-defined]
        return method

    return apply


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

    def op_set(
        self, key: Any, value: Any, timeout: Any, version: int | None, nx: bool, xx: bool
    ) -> Op[Any]:
        """``set``: None, or with django-redis's ``nx``/``xx`` whether it stored."""
        if nx or xx:
            return (yield from self.op_set_if(key, value, timeout, version, nx, xx))
        yield Call("store", (self.tsot_key(key, version), value, self.tsot_ttl(timeout)))
        return None

    def op_set_if(
        self, key: Any, value: Any, timeout: Any, version: int | None, nx: bool, xx: bool
    ) -> Op[bool]:
        """``set(..., nx=True)`` is ``add``; ``xx=True`` is ``replace``: it writes only over an
        existing key, in one atomic call (a key deleted meanwhile is never written back)."""
        if nx and xx:
            raise ValueError("set() takes nx=True or xx=True, not both")
        k, ttl = self.tsot_key(key, version), self.tsot_ttl(timeout)
        return bool((yield Call("add" if nx else "replace", (k, value, ttl))))

    # The operations below have the parameters of Django's methods (``twins`` makes them).
    def op_add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Op[bool]:
        """Store ``value`` only if ``key`` is absent; True if it was stored."""
        k = self.tsot_key(key, version)
        return bool((yield Call("add", (k, value, self.tsot_ttl(timeout)))))

    def op_touch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Op[bool]:
        """Give ``key`` a new timeout; False if it does not exist."""
        k = self.tsot_key(key, version)
        return bool((yield Call("expire", (k, self.tsot_ttl(timeout)))))

    def op_delete(self, key: Any, version: int | None = None) -> Op[bool]:
        """Remove ``key``; True if it existed."""
        k = self.tsot_key(key, version)
        return bool((yield Call("delete", (k,))))

    def op_has_key(self, key: Any, version: int | None = None) -> Op[bool]:
        """True if ``key`` is present and not expired."""
        k = self.tsot_key(key, version)
        return bool((yield Call("exists", (k,), read=True)))

    def op_incr(
        self, key: Any, delta: int = 1, version: int | None = None, ignore_key_check: bool = False
    ) -> Op[int]:
        """Add ``delta`` atomically; the new value. ValueError if ``key`` is missing (unless
        django-redis's ``ignore_key_check``: it starts from 0), TypeError (tsot.WrongType) if
        its value is not an int."""
        k = self.tsot_key(key, version)
        if ignore_key_check:  # one atomic tsot call that creates a missing key
            return (yield Call("incr", (k, delta)))  # type: ignore[no-any-return]
        try:
            # One atomic tsot call; create=False keeps Django's "missing key" error.
            new: int = yield Call("incr", (k, delta), {"create": False})
        except KeyError:
            raise ValueError(f"Key '{k}' not found") from None
        return new

    def op_decr(self, key: Any, delta: int = 1, version: int | None = None) -> Op[int]:
        """Subtract ``delta`` atomically; see ``incr``."""
        return self.op_incr(key, -delta, version)  # that operation itself: no generator round

    def op_get_many(self, keys: Iterable[Any], version: int | None = None) -> Op[dict[Any, Any]]:
        """A dict of the present keys and their values (one round trip)."""
        key_map = {self.tsot_key(key, version): key for key in keys}
        if not key_map:
            return {}
        found: dict[str, Any] = yield Call("load_many", (list(key_map),), read=True)
        return {key_map[k]: v for k, v in found.items()}

    def op_set_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Op[list[Any]]:
        """Store every item (one round trip); the keys that failed: always [] (all or error)."""
        if not data:
            return []
        made = {self.tsot_key(key, version): v for key, v in data.items()}
        # tsot encodes every value before writing any: a failure raises and writes nothing,
        # so there are never partially failed keys to report.
        yield Call("store_many", (made, self.tsot_ttl(timeout)))
        return []

    def op_delete_many(self, keys: Iterable[Any], version: int | None = None) -> Op[None]:
        """Remove the keys (one round trip)."""
        made = [self.tsot_key(key, version) for key in keys]
        if made:
            yield Call("delete_many", (made,))

    def op_clear(self) -> Op[None]:
        """Remove every key of this cache's tsot namespace (all keys at LOCATION if it is "")."""
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

    def op_incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> Op[int]:
        """Move ``key`` to version + ``delta``; the new version. ValueError if missing."""
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

    def op_decr_version(self, key: Any, delta: int = 1, version: int | None = None) -> Op[int]:
        """Move ``key`` to version - ``delta``; the new version. ValueError if missing."""
        return self.op_incr_version(key, -delta, version)
