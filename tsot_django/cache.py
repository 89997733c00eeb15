"""The Django cache backends: ``TsotCache`` (a tsot URL) and one class per storage kind.

Every method runs one operation from ``ops`` (pure: keys, timeouts, results) against the sync
``Storage``; every ``a*`` method awaits the same operation against the event loop's
``AsyncStorage`` (no thread hop, atomic where the sync form is).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from inspect import CORO_CREATED, getcoroutinestate, iscoroutine
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import ImproperlyConfigured

from tsot import Storage, TsotError, mask_url
from tsot.integration import direct_calls, is_open

from . import diagnose, locations
from .ops import _MADE_KEYS_KEPT, AWAIT, CacheOps, Op, like_op, translate_error, twins
from .options import default_timeout, fingerprint_secrets, translate
from .redis_api import RedisApi
from .stores import Stores, fingerprint, stores_for
from .toolbar import ToolbarAware

T = TypeVar("T")


class TsotCache(ToolbarAware, RedisApi):
    """A Django cache on any tsot storage; LOCATION is a tsot URL (``redis://h:6379/0``, ...).

    Construction checks LOCATION, TIMEOUT and OPTIONS and raises ImproperlyConfigured naming
    what is wrong. django-redis's extra methods (``ttl``, ``keys``, ``lock``...) come from
    ``RedisApi``. Instances are cheap: all instances with the same settings share one set of
    tsot storages (and their pools) in the process.
    """

    def __init__(self, location: Any, params: dict[str, Any]) -> None:
        where = f"CACHES entry with BACKEND {self.backend_name()}"
        options = params.get("OPTIONS") or {}
        try:
            default_timeout(params, where)
            key = fingerprint(type(self), location, options, secrets=fingerprint_secrets())
            self._stores = stores_for(key, lambda: self._build(location, options, where))
        except ImproperlyConfigured as exc:
            if not diagnose.in_system_checks():
                raise
            self._stores = diagnose.Unusable(exc)  # type: ignore[assignment]  # tsot.E0xx say why
        super().__init__(params)
        # the storage itself when there is only one (no replicas): get/set skip the op runner
        only = isinstance(self._stores, Stores) and len(self._stores.sync) == 1
        self._only = self._stores.sync[0] if only else None
        # (key, version) -> the storage's key, filled by the general path; a str key of the
        # default version is its own dict key (no tuple to make; a str never equals a tuple)
        self._finals: dict[Any, bytes] = {}
        if self._only is not None:
            self._go_direct(self._only)

    _table_key: Callable[[str], bytes] | None = None
    """The storage's key of a Django key, when ``get`` (and ``set``) can skip its layers."""

    def _go_direct(self, only: Storage) -> None:
        """Install one-call ``get`` and ``set`` where the storage offers them
        (``tsot.integration.direct_calls``): a memory table's ``get`` and ``set``, a Redis
        local cache's ``get`` (its hits). The key, value, TTL, stats and errors are those of
        the general path, which every other call takes."""
        cls = type(self)
        if not is_open(only):  # opened on first use: decide then
            if cls.get is TsotCache.get:
                self.__dict__["get"] = self._first_get
            return
        direct = direct_calls(
            only, self._finals, DEFAULT_TIMEOUT, self.default_timeout,
            self._general_get, self._general_set,
        )  # fmt: skip
        get = None
        if direct is not None:
            self._table_key = direct.key
            if cls.get is TsotCache.get:  # a subclass's own get or set is always called
                self.__dict__["get"] = get = direct.get
            if direct.set is not None and cls.set is TsotCache.set:
                self.__dict__["set"] = direct.set
        self._later_get = get or TsotCache.get.__get__(self)

    _later_get: Callable[..., Any] | None = None
    """What a ``_first_get`` kept by a caller from before the storage opened calls once it is."""

    def _first_get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """``get`` until the storage, opened on first use, is open: the general one, which
        opens it; then the direct calls are installed if the opened backend has them. A caller
        that kept this method (``get = cache.get`` at import) is sent on to what replaced it."""
        later = self._later_get
        if later is not None:
            return later(key, default, version)
        self.__dict__.pop("get", None)
        try:
            value = TsotCache.get(self, key, default, version)
        finally:
            self._go_direct(self._only)  # type: ignore[arg-type]
        self._remember(key, version)
        return value

    def _remember(self, key: Any, version: int | None) -> None:
        """Keep the storage key of a str key whose Django key ``tsot_key`` kept (one that warns
        never is, so its warning comes on every call, as in Django)."""
        table_key = self._table_key
        if table_key is None or type(key) is not str:
            return
        made = self._made_keys.get((key, version))
        if made is None:
            return
        try:
            final = table_key(made)
        except TsotError:
            return
        finals = self._finals
        if len(finals) >= _MADE_KEYS_KEPT:
            finals.clear()
        finals[key if version is None else (key, version)] = final

    def _general_get(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        """``get`` through the storage's layers; the key is remembered for the direct call."""
        value = TsotCache.get(self, key, *args, **kwargs)
        self._remember(key, _version(args, kwargs))
        return value

    def _general_set(self, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        """``set`` through the storage's layers; the key is remembered for the direct call."""
        result = TsotCache.set(self, key, value, *args, **kwargs)
        self._remember(key, _version(args, kwargs))
        return result

    @property
    def storage(self) -> Storage:
        """The primary tsot Storage behind this cache (e.g. for ``storage.stats()``)."""
        return self._stores.sync[0]

    @classmethod
    def backend_name(cls) -> str:
        module = "tsot_django" if cls.__module__.startswith("tsot_django") else cls.__module__
        return f"{module}.{cls.__qualname__}"

    def location_urls(self, location: Any) -> list[str]:
        """The tsot URLs for LOCATION (primary first); subclasses accept Django's forms."""
        return locations.tsot_urls(location)

    def _build(self, location: Any, options: Any, where: str) -> Stores:
        urls = self.location_urls(location)
        where = f"{where} and LOCATION {mask_url(urls[0])!r}"
        scheme = locations.scheme_of(urls[0]) or ""
        return Stores(urls, translate(options, scheme, where), where)

    # -- drivers: the only difference between the sync and async API -------------------------
    def _run(self, op: Op[T]) -> T:
        storages = self._stores.sync
        only = storages[0] if len(storages) == 1 else None
        try:
            call = next(op)
            while True:
                storage = only or Stores.pick(storages, call.read)
                try:
                    result = getattr(storage, call.method)(*call.args, **call.kwargs)
                except Exception as exc:
                    call = op.throw(translate_error(exc))
                else:
                    call = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _arun(self, op: Op[T]) -> T:
        storages = self._stores.for_loop(asyncio.get_running_loop())
        only = storages[0] if len(storages) == 1 else None
        try:
            call = next(op)
            while True:
                if call.method is AWAIT:  # the caller's own awaitable: its errors are its own
                    call = op.send(await call.args[0])
                    continue
                storage = only or Stores.pick(storages, call.read)
                try:
                    result = await getattr(storage, call.method)(*call.args, **call.kwargs)
                except Exception as exc:
                    call = op.throw(translate_error(exc))
                else:
                    call = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    # -- Django's cache API ------------------------------------------------------------------
    # add ... decr: the sync forms below skip the generator round with one storage
    aadd = twins(CacheOps.op_add)[1]
    atouch = twins(CacheOps.op_touch)[1]
    adelete = twins(CacheOps.op_delete)[1]
    ahas_key = twins(CacheOps.op_has_key)[1]
    aincr = twins(CacheOps.op_incr)[1]
    adecr = twins(CacheOps.op_decr)[1]
    get_many, aget_many = twins(CacheOps.op_get_many)
    set_many, aset_many = twins(CacheOps.op_set_many)
    delete_many, adelete_many = twins(CacheOps.op_delete_many)
    clear, aclear = twins(CacheOps.op_clear)
    incr_version, aincr_version = twins(CacheOps.op_incr_version)
    decr_version, adecr_version = twins(CacheOps.op_decr_version)

    # The single-call operations with one storage (no replicas): the storage call itself, as
    # the operation makes it (``ops``), without its generator round (about 1 us, half of a
    # memory-cache ``delete``). Their operations stay the definition: the async twins and a
    # cache with replicas run them.
    @like_op(CacheOps.op_add)
    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        only = self._only
        if only is None:
            return self._run(self.op_add(key, value, timeout, version))
        k, ttl = self.tsot_key(key, version), self.tsot_ttl(timeout)
        try:
            return bool(only.add(k, value, ttl))
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    @like_op(CacheOps.op_touch)
    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> Any:
        only = self._only
        if only is None:
            return self._run(self.op_touch(key, timeout, version))
        k, ttl = self.tsot_key(key, version), self.tsot_ttl(timeout)
        try:
            return bool(only.expire(k, ttl))
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    @like_op(CacheOps.op_delete)
    def delete(self, key: Any, version: int | None = None) -> Any:
        only = self._only
        if only is None:
            return self._run(self.op_delete(key, version))
        k = self.tsot_key(key, version)
        try:
            return bool(only.delete(k))
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    @like_op(CacheOps.op_has_key)
    def has_key(self, key: Any, version: int | None = None) -> Any:
        only = self._only
        if only is None:
            return self._run(self.op_has_key(key, version))
        k = self.tsot_key(key, version)
        try:
            return bool(only.exists(k))
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    @like_op(CacheOps.op_incr)
    def incr(
        self, key: Any, delta: int = 1, version: int | None = None, ignore_key_check: bool = False
    ) -> Any:
        only = self._only
        if only is None:
            return self._run(self.op_incr(key, delta, version, ignore_key_check))
        k = self.tsot_key(key, version)
        try:
            if ignore_key_check:
                return only.incr(k, delta)
            return only.incr(k, delta, create=False)
        except KeyError:
            raise ValueError(f"Key '{k}' not found") from None
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    @like_op(CacheOps.op_decr)
    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, -delta, version)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """The value of ``key``, or ``default`` if it is absent, expired or fails its signature."""
        only = self._only
        if only is None:
            return self._run(self.op_get(key, default, version))
        try:  # op_get without the generator round (a third of a memory hit)
            return only.load(self.tsot_key(key, version), default)
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        storages = self._stores.for_loop(asyncio.get_running_loop())
        if len(storages) > 1:
            return await self._arun(self.op_get(key, default, version))
        # op_get without the generator round (about 1 us of the ~5 us an aget costs at 50
        # concurrent tasks on Redis; benchmarks/redis_async.py): same key, call and errors
        k = self.tsot_key(key, version)
        try:
            return await storages[0].load(k, default)
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> Any:
        """Store ``value``; a timeout of 0 or less removes the key instead. With django-redis's
        ``nx=True`` (only if absent) or ``xx=True`` (only if present), True if stored."""
        only = self._only
        if only is None or nx or xx:
            return self._run(self.op_set(key, value, timeout, version, nx, xx))
        try:  # op_set's one store without the generator round, as in get
            only.store(self.tsot_key(key, version), value, self.tsot_ttl(timeout))
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> Any:
        storages = self._stores.for_loop(asyncio.get_running_loop())
        if len(storages) > 1 or nx or xx:
            return await self._arun(self.op_set(key, value, timeout, version, nx, xx))
        k = self.tsot_key(key, version)  # as in aget
        try:
            await storages[0].store(k, value, self.tsot_ttl(timeout))
        except Exception as exc:
            raise translate_error(exc)  # noqa: B904 - exc itself or the error it wraps

    def get_or_set(
        self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        """The value of ``key``; if absent, add ``default`` (called if callable) and return it."""
        return self._run(self.op_get_or_set(key, default, timeout, version))

    async def aget_or_set(
        self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        """As ``get_or_set``; an awaitable ``default``, or one its callable returns, is awaited
        (Django's base class would store the coroutine)."""
        try:
            return await self._arun(self.op_get_or_set(key, default, timeout, version, awaits=True))
        finally:  # a coroutine default that was not needed: no "never awaited" warning
            if iscoroutine(default) and getcoroutinestate(default) == CORO_CREATED:
                default.close()

    def close(self, **kwargs: Any) -> None:
        """Nothing to do: pools are process-wide and stay open for the next request."""

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to do (see ``close``)."""


class RedisCache(TsotCache):
    """LOCATION: a Redis URL, or several (list, or joined by ``,``/``;``): the first is the
    primary, the others read replicas, as in Django's RedisCache."""

    def location_urls(self, location: Any) -> list[str]:
        return locations.redis_urls(location)


class MemcachedCache(TsotCache):
    """LOCATION: ``host:port``, several joined by ``,``/``;``, or a list of them."""

    def location_urls(self, location: Any) -> list[str]:
        return locations.memcached_urls(location)


class RocksDBCache(TsotCache):
    """LOCATION: the directory of the RocksDB database."""

    def location_urls(self, location: Any) -> list[str]:
        return locations.rocksdb_urls(location)


class MemoryCache(TsotCache):
    """LOCATION: a table name (caches with the same name share the table), as LocMemCache.

    ``get`` and ``set`` of a str key seen before go straight to the table, each in one Python
    call (``TsotCache``'s direct calls).
    """

    def location_urls(self, location: Any) -> list[str]:
        return locations.memory_urls(location)


def _version(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The ``version`` of a ``get`` or ``set`` whose arguments after the key (and value) are
    ``args`` and ``kwargs``."""
    return args[1] if len(args) > 1 else kwargs.get("version")
