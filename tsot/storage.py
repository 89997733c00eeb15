"""The facade: ``Storage`` (sync) and ``AsyncStorage`` (asyncio) over one backend.

Every method of one backend call is "prepare (pure) -> the call -> finish (pure)": the pure
steps live in ``_Core``, shared by both classes, so the two differ only in the await of the
call. An operation of several calls (``delete_pattern``) is a generator of calls in ``_Core``,
run by ``tsot.drive``; a method that awaits nothing (``get_or_compute``, which returns the
coroutine on AsyncStorage, and ``lock``) is defined once, in ``_Core``
(docs/architecture.md#sync-and-async-twins).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, overload

from . import config, drive, events, listing, readthrough, secrets
from .backends.base import (
    TTL_MISSING,
    TTL_PERSISTENT,
    AsyncBackend,
    Backend,
    backend_stats,
    shared,
)
from .codec import MISS, Codec, Signer
from .drive import Steps as Operation
from .errors import StorageClosed, TsotError, WrongType
from .failopen import AsyncFailOpen, CircuitBreaker, FailOpen, unguarded
from .inprocess import LocalCodec
from .keys import Key, KeySpace, rekey, shown
from .lazy import Deferred, detach, resolved
from .locks import AsyncLock, Lock
from .stampede import Policy, Timing, is_fresh, policy_of
from .ttl import EXPIRED, FOREVER_SECONDS, TTL, to_ms


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""Pass as ``ttl`` (or omit it) to use the Storage's ``default_ttl``."""

TTLArg = TTL | _Default


_UNSIGNED_FIX: Final = (
    "Pass secret= (at least 16 bytes; a list rotates keys) to sign them, or secret=None to "
    "accept this."
)


def _signer(secret: object) -> Signer | None:
    keys = secrets.secret_keys(secret)
    return None if keys is None else Signer(keys)


def _prepare(
    url: str | None, options: Mapping[str, Any], memory: bool
) -> tuple[Any, config.Location | None, dict[str, Any], dict[str, Any]]:
    """Resolve the backend class and split ``options`` (plus URL query) into core and backend."""
    location = None if memory else config.parse_url(url)  # type: ignore[arg-type]
    scheme = "memory" if location is None else location.scheme
    cls = config.backend_class(scheme)
    specs = {o.name: o for o in cls.OPTIONS}
    core_names = {o.name for o in config.CORE_OPTIONS}
    merged: dict[str, Any] = dict(location.query) if location is not None else {}
    for name, value in options.items():
        merged[name] = value  # keyword arguments win over the URL query
    where = f"{scheme}:// storage" if location is None else f"storage URL {location.masked!r}"
    from_url = [k for k in (location.query if location is not None else ()) if k not in options]
    config.reject_unknown(merged, [*config.CORE_OPTIONS, *specs.values()], where)
    core = config.parse_options(
        {k: v for k, v in merged.items() if k in core_names}, config.CORE_OPTIONS, where, from_url
    )
    secrets.secret_keys(core["secret"])  # a bad secret fails before anything is opened
    core["in_process"] = getattr(cls, "IN_PROCESS", False)  # values kept as objects: inprocess
    backend = config.parse_options(
        {k: v for k, v in merged.items() if k not in core_names}, specs.values(), where, from_url
    )
    return cls, location, core, backend


def _breaker(location: config.Location, core: Mapping[str, Any]) -> CircuitBreaker:
    """One breaker per process, URL and probe interval: every Storage on a dead server sees it."""
    interval = core["probe_interval"]
    return shared(
        ("breaker", location.digest, interval),
        lambda: CircuitBreaker(interval, name=location.masked),
    )


class _Closed:
    """Stands in for the backend of a closed Storage: every primitive raises StorageClosed.

    Swapping the backend for this on ``close()`` costs the open path nothing (no flag to test on
    every call). The methods raise when called, before any await, so one object serves both
    Storage and AsyncStorage.
    """

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(name)

        def closed(*args: Any) -> Any:
            raise StorageClosed(f"{self._what} is closed; open a new one with from_url")

        return closed

    def __repr__(self) -> str:
        return f"<closed backend of {self._what}>"


def _backend(
    bcls: Any, location: config.Location, core: Mapping[str, Any], opts: Any, aio: bool
) -> Any:
    """The backend for ``from_url`` (fail-open wrapped if asked), opened on first use when its
    class can check the configuration without I/O (``check``: tsot.lazy), else now."""
    prefix = KeySpace(core["namespace"]).prefix

    def open_backend() -> Any:
        backend = (bcls.open_async if aio else bcls.open)(location, opts, prefix)
        if core["fail_open"]:
            guard = AsyncFailOpen if aio else FailOpen
            invalidation = core["fail_open_invalidation"]
            backend = guard(backend, _breaker(location, core), location.masked, invalidation)
        return backend

    check = getattr(bcls, "check", None)
    if check is None:
        return open_backend()
    check(location, opts)
    return Deferred(open_backend)


def _opened(location: config.Location, core: Mapping[str, Any]) -> None:
    """Startup checks of a storage opened from a URL (both Storage and AsyncStorage)."""
    if core["secret"] is secrets.UNSET:
        secrets.warn_unsigned(location, core["namespace"], core["serializer"], _UNSIGNED_FIX)


L = TypeVar("L", Lock, AsyncLock)
R = TypeVar("R")
C = TypeVar("C", bound="_Core[Any, Any]")
Overrides = tuple[bool | None, float | None, float | None, float | None]
"""get_or_compute's ``stampede``, ``grace``, ``beta`` and ``lease_timeout``."""
_NO_OVERRIDES: Final = (None, None, None, None)


class _Core(Generic[L, R]):
    """State, the pure steps and the methods of one definition shared by Storage and
    AsyncStorage. ``L`` is the lock class, ``R`` what ``get_or_compute`` returns (a value, or
    an awaitable of it)."""

    __slots__ = ("_closed", "_default_ms", "_hub", "_keys", "_label", "codec", "location", "policy")
    _b: Any
    _lock_class: type[L]

    def __init__(self, core: Mapping[str, Any], location: config.Location | None) -> None:
        self._keys = KeySpace(core["namespace"])
        self.codec = (LocalCodec if core.get("in_process") else Codec)(
            serializer=core["serializer"],
            compression=core["compression"],
            compress_threshold=core["compress_threshold"],
            signer=_signer(core["secret"]),
            pickle_protocol=core["pickle_protocol"],
            max_value_size=core["max_value_size"],
            accept=core["accept"],
            sign=core["sign"],
            accept_unbound=core["accept_unbound"],
            key_prefix=self._keys.prefix,
        )
        self._default_ms = to_ms(core["default_ttl"])
        self.policy: Policy = policy_of(core)
        self.location = location
        self._closed = False
        self._hub: events.Hub | None = None  # set by the first listen()
        self._label: str = core["label"]

    @classmethod
    def _open_url(cls: type[C], url: str, options: Mapping[str, Any], aio: bool) -> C:
        """``from_url`` of both classes."""
        bcls, location, core, opts = _prepare(url, options, memory=False)
        assert location is not None
        backend = _backend(bcls, location, core, opts, aio)
        _opened(location, core)
        storage = cls(backend, core, location)  # type: ignore[call-arg, arg-type]
        if isinstance(backend, Deferred):
            backend.bind(storage)
        return events.configure(storage, core)

    @property
    def namespace(self) -> str:
        """The namespace of every key of this storage ("" = none)."""
        return self._keys.namespace

    @property
    def url(self) -> str:
        """The storage URL with credentials masked."""
        return self.location.masked if self.location is not None else "memory:// (private)"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} namespace={self.namespace!r}>"

    def listen(self, listener: events.Listener) -> Callable[[], None]:
        """Call ``listener(event)`` after every backend operation (and fail-open skip and
        breaker change) of this Storage; return the function that detaches it.

        The first call instruments the backend (docs/observability.md); until then a Storage
        pays nothing for the hook.
        """
        return events.attach(self, listener, isinstance(self, AsyncStorage))

    def get_or_compute(
        self,
        key: Key,
        fn: Callable[[], Any],
        ttl: TTLArg = DEFAULT,
        *,
        stampede: bool | None = None,
        grace: float | None = None,
        beta: float | None = None,
        lease_timeout: float | None = None,
        timing: Timing | None = None,
    ) -> R:
        """The value of ``key``; on a miss ``fn()``, stored for ``ttl``, computed by one caller
        at a time, refreshed early when hot, stale within ``grace`` (docs/stampede.md).

        The keyword options override the Storage's; ``timing`` injects a clock, a random source
        and sleeps (tests). Raises what ``fn`` raises unless a value within grace is served.
        On AsyncStorage it is awaited, and so is an awaitable result of ``fn()``.
        """
        return self._read_through(key, fn, ttl, (stampede, grace, beta, lease_timeout), timing)

    def _read_through(
        self, key: Key, fn: Callable[[], Any], ttl: TTLArg, overrides: Overrides, timing: Any
    ) -> R:
        """``get_or_compute``'s work: prepare (``_read_args``), one ``get``, ``_fresh``; past a
        fresh hit, ``tsot.readthrough``."""
        raise NotImplementedError

    def lock(
        self,
        name: Key,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> L:
        """A lock named ``name`` in this namespace, with redis-py's Lock interface and fencing
        tokens (tsot.locks.Lock; on AsyncStorage an AsyncLock:
        ``async with storage.lock("name", timeout=10): ...``)."""
        k, b = self._keys.make(name), unguarded(resolved(self._b))  # a lock never fails open
        lock = self._lock_class
        return lock(b, k, self.codec, timeout, sleep, blocking, blocking_timeout, thread_local)

    # pure steps
    def _ttl(self, ttl: TTLArg) -> int | None:
        if type(ttl) is int and 0 < ttl < FOREVER_SECONDS:  # the common case, inlined
            return ttl * 1000
        return self._default_ms if ttl is DEFAULT else to_ms(ttl)  # type: ignore[arg-type]

    def _read_args(
        self, key: Key, ttl: TTLArg, overrides: Overrides, timing: Timing | None
    ) -> tuple[bytes, int | None, Policy, Timing]:
        """get_or_compute's final key, TTL, policy (the Storage's, overridden) and timing."""
        policy = self.policy
        if overrides != _NO_OVERRIDES:
            stampede, grace, beta, lease_timeout = overrides
            policy = policy.with_overrides(
                stampede=stampede, grace=grace, beta=beta, lease_timeout=lease_timeout
            )
        return self._keys.make(key), self._ttl(ttl), policy, timing or readthrough.DEFAULT_TIMING

    def _fresh(self, data: bytes | None, k: bytes, policy: Policy, timing: Timing) -> Any:
        """The value of a fresh hit (get_or_compute's fast path), else MISS."""
        if data is None:
            return MISS
        times = [0, -1]  # [soft_ms, delta_ms] of an entry
        value = self.codec.decode_times(data, k, times)
        return value if value is not MISS and is_fresh(times, k, policy, timing) else MISS

    def _value(self, data: bytes | None, default: Any, key: bytes) -> Any:
        if data is None:
            return default
        value = self.codec.decode(data, key)
        return default if value is MISS else value

    def _found(
        self, wanted: list[Key], final: list[bytes], found: list[bytes | None]
    ) -> dict[Key, Any]:
        return self.codec.decode_many(wanted, final, found)

    def _counts(self, counts: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "url": self.url,
            "namespace": self.namespace,
            **counts,
            "undecodable": self.codec.refused.value,
            **(self._hub.snapshot() if self._hub is not None else {}),
        }

    def _typed(self, value: Any, default: Any, kind: type, key: Key) -> Any:
        if value is default or type(value) is kind:
            return value
        raise WrongType(
            f"value of key {shown(key)} is a {type(value).__name__}, not a {kind.__name__}"
        )

    @staticmethod
    def _check(value: Any, kind: type | tuple[type, ...], what: str) -> None:
        if type(value) is not kind and not (isinstance(kind, tuple) and type(value) in kind):
            raise WrongType(
                f"{what} needs a {getattr(kind, '__name__', 'bytes')}, not {type(value).__name__}"
            )

    def _write_many(
        self, mapping: Mapping[Key, Any], ttl: TTLArg
    ) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        """``(call, args)`` of ``store_many`` (None: nothing to write); every key and value is
        checked and encoded first, so a bad one writes nothing."""
        try:
            make = self._keys.make
            items = self.codec.encode_many([(make(key), value) for key, value in mapping.items()])
            ms = self._ttl(ttl)
        except TsotError as exc:
            raise self._named(exc, mapping)  # noqa: B904 - exc itself, renamed
        if not items:
            return None
        if ms == EXPIRED:
            return self._b.delete_many, ([k for k, _ in items],)
        return self._b.set_many, (items, ms)

    def _named(self, exc: TsotError, mapping: Mapping[Key, Any]) -> TsotError:
        """``exc`` naming the caller's keys of ``mapping`` (not the namespaced ones)."""
        pairs = []
        for key in mapping:
            with contextlib.suppress(TsotError):  # an invalid key's own error names it
                pairs.append((self._keys.make(key), key))
        rekey(exc, pairs)
        return exc

    def _delta(self, delta: int) -> int:
        if type(delta) is not int:
            raise WrongType(f"incr/decr delta must be an int, not {type(delta).__name__}")
        return delta

    @staticmethod
    def _remaining(ms: int) -> float | None:
        if ms == TTL_MISSING:
            return None
        if ms == TTL_PERSISTENT:
            return math.inf
        return ms / 1000.0

    @staticmethod
    def _incr_result(result: int | None, key: Key) -> int:
        if result is None:
            raise KeyError(key)
        return result

    def _scan(self, pattern: str, itersize: int | None, size: int | None = None) -> Any:
        """The backend's scan of this namespace for ``pattern`` (an iterator of final keys;
        async on AsyncStorage), ``size`` (else ``itersize``) at a time."""
        size = size or listing.check_itersize(itersize)
        return self._b.scan(self._keys.prefix, listing.pattern_bytes(pattern), size)

    def _deleting(self, pattern: str, itersize: int | None, aio: bool) -> Operation[int]:
        """``delete_pattern``: scan, delete in batches of ``itersize``; how many were deleted."""
        size = listing.check_itersize(itersize) or listing.DELETE_BATCH
        found, step = self._scan(pattern, None, size), (anext if aio else next)
        count, batch = 0, []
        while (key := (yield step, (found, None))) is not None:
            batch.append(key)
            if len(batch) >= size:
                count += yield self._b.delete_many, (batch,)
                batch = []
        return count + ((yield self._b.delete_many, (batch,)) if batch else 0)

    def _close(self) -> None:
        """Every later call raises StorageClosed (closing twice is fine)."""
        if not self._closed:
            self._closed = True
            detach(self._b)
            self._b = _Closed(repr(self))


class Storage(_Core[Lock, Any]):
    """Synchronous storage over one backend; thread-safe; use ``from_url`` or ``new_imc``.

    >>> with Storage.new_imc() as s:
    ...     s.store("greeting", "hello", ttl=60)
    ...     s.load("greeting")
    'hello'
    """

    __slots__ = ("_b",)
    _b: Backend
    _lock_class = Lock

    def __init__(
        self, backend: Backend, core: Mapping[str, Any], location: config.Location | None = None
    ) -> None:
        super().__init__(core, location)
        self._b = backend

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Storage:
        """Open the storage a URL names (docs/architecture.md#urls); options may be query values.

        The configuration is checked now; the connection (or the RocksDB directory) is opened
        on first use, so a Storage that is never used holds no socket and no lock. Raises
        ConfigurationError naming a bad URL or option, MissingDependency naming the extra to
        install.
        """
        return cls._open_url(url, options, aio=False)

    @classmethod
    def new_imc(cls, **options: Any) -> Storage:
        """A new private in-memory store (not shared with any other Storage)."""
        bcls, _, core, opts = _prepare(None, options, memory=True)
        return events.configure(cls(bcls.private(opts), core, None), core)

    @property
    def backend(self) -> Backend:
        """The backend primitives this Storage calls (wrapped in FailOpen with ``fail_open``;
        opened now if this Storage has not been used yet)."""
        return resolved(self._b)  # type: ignore[no-any-return]

    # any object
    def store(self, key: Key, value: Any, ttl: TTLArg = DEFAULT) -> None:
        """Store ``value`` under ``key``.

        ``ttl``: omitted (DEFAULT) = the ``default_ttl`` option; None = never expires; seconds
        (int, float or timedelta) = expires that long after the write; <= 0 = already expired:
        the key is deleted and nothing is stored. Raises InvalidKey, SerializationError (a
        value the serializer refuses), ValueTooLarge (nothing is written), ConfigurationError
        (a TTL that is not a number), BackendUnavailable.
        """
        k = self._keys.make(key)
        try:  # the pure steps, then one call: set, or delete for a TTL <= 0
            data, ms = self.codec.encode(value, k), self._ttl(ttl)
            self._b.set(k, data, ms) if ms != EXPIRED else self._b.delete(k)
        except TsotError as exc:
            rekey(exc, [(k, key)])
            raise

    def load(self, key: Key, default: Any = None) -> Any:
        """The value stored under ``key``, of exactly the stored type, or ``default``.

        Absent, expired, corrupt and untrusted values (a pickle without a valid signature) all
        return ``default``; the last two are logged and counted in ``stats()["undecodable"]``.
        Raises InvalidKey, BackendUnavailable.
        """
        k = self._keys.make(key)
        return self._value(self._b.get(k), default, k)

    def add(self, key: Key, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        """Store only if ``key`` is absent; True if stored.

        ``ttl`` as in ``store``; with a TTL <= 0 nothing is stored and the result says whether
        the key was absent. Raises as ``store``.
        """
        k = self._keys.make(key)
        try:  # the pure steps, then one call: add, or for a TTL <= 0 whether the key is absent
            data, ms = self.codec.encode(value, k), self._ttl(ttl)
            return self._b.add(k, data, ms) if ms != EXPIRED else not self._b.exists(k)
        except TsotError as exc:
            rekey(exc, [(k, key)])
            raise

    def replace(self, key: Key, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        """Store only if ``key`` exists, atomically (nothing between the check and the write:
        a key deleted meanwhile is not written back); True if stored. An expired key counts as
        absent.

        ``ttl`` as in ``store``: the new TTL replaces the old one. With a TTL <= 0 the value
        would be stored already expired, so the key is deleted if it exists, and the result
        says whether it existed (as django-redis's ``set(..., xx=True)`` with such a timeout).
        Raises as ``store``.
        """
        k = self._keys.make(key)
        try:  # the pure steps, then one call: replace, or for a TTL <= 0 delete
            data, ms = self.codec.encode(value, k), self._ttl(ttl)
            return self._b.replace(k, data, ms) if ms != EXPIRED else self._b.delete(k)
        except TsotError as exc:
            rekey(exc, [(k, key)])
            raise

    def _read_through(
        self, key: Key, fn: Callable[[], Any], ttl: TTLArg, overrides: Overrides, timing: Any
    ) -> Any:
        k, ttl_ms, policy, timing = self._read_args(key, ttl, overrides, timing)
        if ttl_ms != EXPIRED:  # the fast path, a fresh hit: one get, its decode, one clock read
            value = self._fresh(self._b.get(k), k, policy, timing)
            if value is not MISS:
                return value
        return readthrough.get_or_compute(self, k, fn, ttl_ms, policy, timing)

    # typed forms
    def store_string(self, key: Key, value: str, ttl: TTLArg = DEFAULT) -> None:
        """Store a str (``store`` for a str only); any other type raises WrongType."""
        self._check(value, str, "store_string")
        self.store(key, value, ttl)

    def load_string(self, key: Key, default: str | None = None) -> str | None:
        """The str stored under ``key``, or ``default`` if absent; a value of another
        type raises WrongType."""
        return self._typed(self.load(key, default), default, str, key)  # type: ignore[no-any-return]

    def store_raw(self, key: Key, value: bytes, ttl: TTLArg = DEFAULT) -> None:
        """Store bytes (``store`` for bytes only); any other type raises WrongType."""
        self._check(value, bytes, "store_raw")
        self.store(key, value, ttl)

    def load_raw(self, key: Key, default: bytes | None = None) -> bytes | None:
        """The bytes stored under ``key``, or ``default`` if absent; a value of another
        type raises WrongType."""
        return self._typed(self.load(key, default), default, bytes, key)  # type: ignore[no-any-return]

    def store_int(self, key: Key, value: int, ttl: TTLArg = DEFAULT) -> None:
        """Store an int (``store`` for an int only, kept as decimal so ``incr`` works on
        it); any other type, bool included, raises WrongType."""
        self._check(value, int, "store_int")
        self.store(key, value, ttl)

    def load_int(self, key: Key, default: int | None = None) -> int | None:
        """The int stored under ``key``, or ``default`` if absent; a value of another
        type raises WrongType."""
        return self._typed(self.load(key, default), default, int, key)  # type: ignore[no-any-return]

    def incr(self, key: Key, delta: int = 1, *, create: bool = True) -> int:
        """Add ``delta`` atomically and return the new value (negative allowed; exact up to
        50,000 digits, tsot.ints.MAX_INT_DIGITS).

        A missing key starts from 0 (``create=True``) or raises KeyError; a value that is not an
        int raises WrongType; a result past the digit limit raises SerializationError and
        changes nothing. The key's TTL is kept.
        """
        k, d = self._keys.make(key), self._delta(delta)
        try:
            return self._incr_result(self._b.incr(k, d, create), key)
        except TsotError as exc:
            rekey(exc, [(k, key)])
            raise

    def decr(self, key: Key, delta: int = 1, *, create: bool = True) -> int:
        """Subtract ``delta`` atomically and return the new value: ``incr(key, -delta)``."""
        return self.incr(key, -self._delta(delta), create=create)

    # keys
    def delete(self, key: Key) -> bool:
        """Remove ``key``; True if it existed. Raises InvalidKey, BackendUnavailable."""
        return self._b.delete(self._keys.make(key))

    def exists(self, key: Key) -> bool:
        """True if ``key`` is present and not expired."""
        return self._b.exists(self._keys.make(key))

    def ttl(self, key: Key) -> float | None:
        """Seconds left before ``key`` expires (a float); ``math.inf`` if it never expires;
        None if it does not exist."""
        return self._remaining(self._b.ttl(self._keys.make(key)))

    def expire(self, key: Key, ttl: TTLArg) -> bool:
        """Give ``key`` a new TTL; False if it does not exist.

        ``ttl`` as in ``store`` (None = never expires, <= 0 = delete the key now).
        """
        k, ms = self._keys.make(key), self._ttl(ttl)
        return self._b.delete(k) if ms == EXPIRED else self._b.expire(k, ms)

    def persist(self, key: Key) -> bool:
        """Make ``key`` never expire; False if it does not exist."""
        return self._b.expire(self._keys.make(key), None)

    # many keys
    @overload
    def load_many(self, keys: Iterable[str]) -> dict[str, Any]: ...
    @overload
    def load_many(self, keys: Iterable[bytes]) -> dict[bytes, Any]: ...
    @overload
    def load_many(self, keys: Iterable[Key]) -> dict[Any, Any]: ...
    def load_many(self, keys: Iterable[Key]) -> dict[Any, Any]:
        """A dict of the keys that are present, with their values.

        Absent, expired, corrupt and untrusted keys are left out. The dict's keys are the keys
        as passed (a str key comes back as that str). Every key is checked before the backend
        is asked; raises InvalidKey, BackendUnavailable.
        """
        wanted = list(keys)
        final = self._keys.make_many(wanted)
        return self._found(wanted, final, self._b.get_many(final) if wanted else [])

    def store_many(self, mapping: Mapping[Key, Any], ttl: TTLArg = DEFAULT) -> None:
        """Store every item of ``mapping`` with one ``ttl`` (as ``store``).

        Every key and value is checked and encoded before anything is written, so a bad one
        writes nothing. Raises as ``store``.
        """
        write = self._write_many(mapping, ttl)
        if write is not None:
            try:
                write[0](*write[1])
            except TsotError as exc:
                raise self._named(exc, mapping)  # noqa: B904 - exc itself, renamed

    def delete_many(self, keys: Iterable[Key]) -> int:
        """Remove the keys; return how many existed."""
        final = self._keys.make_many(keys)
        return self._b.delete_many(final) if final else 0

    def stats(self) -> dict[str, Any]:
        """The masked URL, namespace, the backend's hits, misses and keys (None if unknown) and
        ``undecodable``: stored values this Storage read as misses because they were not valid
        values for it (corrupt, unsigned, forged, too large, not accepted).

        Counts are the backend's own: a server reports its server-wide counters.
        """
        return self._counts(backend_stats(self._b))

    def clear(self) -> None:
        """Remove every key of this namespace (of the whole location if the namespace is
        ""); other namespaces are untouched, and Redis is never flushed."""
        self._b.clear(self._keys.prefix)

    # listing keys (memcached cannot: NotSupportedError)
    def iter_keys(self, pattern: str = "*", *, itersize: int | None = None) -> Iterator[str]:
        """The keys of this namespace matching the glob ``pattern`` (``*``, ``?``, ``[a-z]``,
        ``\\x``), fetched ``itersize`` at a time; each present key at least once (Redis's SCAN
        may repeat one). Raises NotSupportedError at once on memcached."""
        prefix = self._keys.prefix
        return (listing.user_key(k, prefix) for k in self._scan(pattern, itersize))

    def keys(self, pattern: str = "*") -> list[str]:
        """The keys of this namespace matching ``pattern``, each once (see ``iter_keys``)."""
        return list(dict.fromkeys(self.iter_keys(pattern)))

    def delete_pattern(self, pattern: str = "*", *, itersize: int | None = None) -> int:
        """Delete the keys matching ``pattern`` in batches of ``itersize``; return how many."""
        return drive.run(self._deleting(pattern, itersize, aio=False))

    def close(self) -> None:
        """Release this Storage: every later call raises StorageClosed (closing twice is fine).

        Shared pools, tables and database handles stay open for the other Storages using them.
        """
        self._close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncStorage(_Core[AsyncLock, Coroutine[Any, Any, Any]]):
    """The asyncio twin of Storage: same methods, awaited, on native asyncio drivers."""

    __slots__ = ("_b",)
    _b: AsyncBackend
    _lock_class = AsyncLock

    def __init__(
        self,
        backend: AsyncBackend,
        core: Mapping[str, Any],
        location: config.Location | None = None,
    ) -> None:
        super().__init__(core, location)
        self._b = backend

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncStorage:
        """Open the storage a URL names; see ``Storage.from_url``."""
        return cls._open_url(url, options, aio=True)

    @classmethod
    def new_imc(cls, **options: Any) -> AsyncStorage:
        """A new private in-memory store."""
        from .backends.base import DirectAsync

        bcls, _, core, opts = _prepare(None, options, memory=True)
        return events.configure(cls(DirectAsync(bcls.private(opts)), core, None), core)

    @property
    def backend(self) -> AsyncBackend:
        """The asyncio backend primitives this AsyncStorage calls (opened now if it has not
        been used yet)."""
        return resolved(self._b)  # type: ignore[no-any-return]

    async def store(self, key: Key, value: Any, ttl: TTLArg = DEFAULT) -> None:
        """Store ``value`` under ``key``; see ``Storage.store`` (TTL, errors)."""
        k = self._keys.make(key)
        try:  # the pure steps, then one call: set, or delete for a TTL <= 0
            data, ms = self.codec.encode(value, k), self._ttl(ttl)
            await self._b.set(k, data, ms) if ms != EXPIRED else await self._b.delete(k)
        except TsotError as exc:
            rekey(exc, [(k, key)])
            raise

    async def load(self, key: Key, default: Any = None) -> Any:
        """The value under ``key`` or ``default``; see ``Storage.load``."""
        k = self._keys.make(key)
        return self._value(await self._b.get(k), default, k)

    async def add(self, key: Key, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        """Store only if ``key`` is absent; True if stored. See ``Storage.add``."""
        k = self._keys.make(key)
        try:  # the pure steps, then one call: add, or for a TTL <= 0 whether the key is absent
            data, ms = self.codec.encode(value, k), self._ttl(ttl)
            return await self._b.add(k, data, ms) if ms != EXPIRED else not await self._b.exists(k)
        except TsotError as exc:
            rekey(exc, [(k, key)])
            raise

    async def replace(self, key: Key, value: Any, ttl: TTLArg = DEFAULT) -> bool:
        """Store only if ``key`` exists, atomically; True if stored. See ``Storage.replace``."""
        k = self._keys.make(key)
        try:  # the pure steps, then one call: replace, or for a TTL <= 0 delete
            data, ms = self.codec.encode(value, k), self._ttl(ttl)
            return await (self._b.replace(k, data, ms) if ms != EXPIRED else self._b.delete(k))
        except TsotError as exc:
            rekey(exc, [(k, key)])
            raise

    async def _read_through(
        self, key: Key, fn: Callable[[], Any], ttl: TTLArg, overrides: Overrides, timing: Any
    ) -> Any:
        k, ttl_ms, policy, timing = self._read_args(key, ttl, overrides, timing)
        if ttl_ms != EXPIRED:  # the fast path, as Storage's
            value = self._fresh(await self._b.get(k), k, policy, timing)
            if value is not MISS:
                return value
        return await readthrough.aget_or_compute(self, k, fn, ttl_ms, policy, timing)

    async def store_string(self, key: Key, value: str, ttl: TTLArg = DEFAULT) -> None:
        """Store a str; any other type raises WrongType."""
        self._check(value, str, "store_string")
        await self.store(key, value, ttl)

    async def load_string(self, key: Key, default: str | None = None) -> str | None:
        """The str under ``key`` or ``default``; another type raises WrongType."""
        return self._typed(await self.load(key, default), default, str, key)  # type: ignore[no-any-return]

    async def store_raw(self, key: Key, value: bytes, ttl: TTLArg = DEFAULT) -> None:
        """Store bytes; any other type raises WrongType."""
        self._check(value, bytes, "store_raw")
        await self.store(key, value, ttl)

    async def load_raw(self, key: Key, default: bytes | None = None) -> bytes | None:
        """The bytes under ``key`` or ``default``; another type raises WrongType."""
        return self._typed(await self.load(key, default), default, bytes, key)  # type: ignore[no-any-return]

    async def store_int(self, key: Key, value: int, ttl: TTLArg = DEFAULT) -> None:
        """Store an int (kept as decimal for ``incr``); any other type raises WrongType."""
        self._check(value, int, "store_int")
        await self.store(key, value, ttl)

    async def load_int(self, key: Key, default: int | None = None) -> int | None:
        """The int under ``key`` or ``default``; another type raises WrongType."""
        return self._typed(await self.load(key, default), default, int, key)  # type: ignore[no-any-return]

    async def incr(self, key: Key, delta: int = 1, *, create: bool = True) -> int:
        """Add ``delta`` atomically and return the new value; see ``Storage.incr`` (missing
        keys, WrongType, the TTL is kept)."""
        k, d = self._keys.make(key), self._delta(delta)
        try:
            return self._incr_result(await self._b.incr(k, d, create), key)
        except TsotError as exc:
            rekey(exc, [(k, key)])
            raise

    async def decr(self, key: Key, delta: int = 1, *, create: bool = True) -> int:
        """Subtract ``delta`` atomically and return the new value: ``incr(key, -delta)``."""
        return await self.incr(key, -self._delta(delta), create=create)

    async def delete(self, key: Key) -> bool:
        """Remove ``key``; True if it existed."""
        return await self._b.delete(self._keys.make(key))

    async def exists(self, key: Key) -> bool:
        """True if ``key`` is present and not expired."""
        return await self._b.exists(self._keys.make(key))

    async def ttl(self, key: Key) -> float | None:
        """Seconds left; ``math.inf`` if ``key`` never expires; None if it does not exist."""
        return self._remaining(await self._b.ttl(self._keys.make(key)))

    async def expire(self, key: Key, ttl: TTLArg) -> bool:
        """Give ``key`` a new TTL (as ``Storage.expire``); False if it does not exist."""
        k, ms = self._keys.make(key), self._ttl(ttl)
        return await (self._b.delete(k) if ms == EXPIRED else self._b.expire(k, ms))

    async def persist(self, key: Key) -> bool:
        """Make ``key`` never expire; False if it does not exist."""
        return await self._b.expire(self._keys.make(key), None)

    @overload
    async def load_many(self, keys: Iterable[str]) -> dict[str, Any]: ...
    @overload
    async def load_many(self, keys: Iterable[bytes]) -> dict[bytes, Any]: ...
    @overload
    async def load_many(self, keys: Iterable[Key]) -> dict[Any, Any]: ...
    async def load_many(self, keys: Iterable[Key]) -> dict[Any, Any]:
        """A dict of the keys that are present; see ``Storage.load_many``."""
        wanted = list(keys)
        final = self._keys.make_many(wanted)
        return self._found(wanted, final, await self._b.get_many(final) if wanted else [])

    async def store_many(self, mapping: Mapping[Key, Any], ttl: TTLArg = DEFAULT) -> None:
        """Store every item with one ``ttl``; nothing is written if one is bad."""
        write = self._write_many(mapping, ttl)
        if write is not None:
            try:
                await write[0](*write[1])
            except TsotError as exc:
                raise self._named(exc, mapping)  # noqa: B904 - exc itself, renamed

    async def delete_many(self, keys: Iterable[Key]) -> int:
        """Remove the keys; return how many existed."""
        final = self._keys.make_many(keys)
        return await self._b.delete_many(final) if final else 0

    async def stats(self) -> dict[str, Any]:
        """See ``Storage.stats``."""
        stats = getattr(self._b, "stats", None)
        counts = await stats() if stats is not None else backend_stats(None)
        return self._counts(counts)

    async def clear(self) -> None:
        """Remove every key of this namespace; see ``Storage.clear``."""
        await self._b.clear(self._keys.prefix)

    def iter_keys(self, pattern: str = "*", *, itersize: int | None = None) -> AsyncIterator[str]:
        """See ``Storage.iter_keys``: ``async for key in storage.iter_keys("user:*")``."""
        return self._user_keys(self._scan(pattern, itersize), self._keys.prefix)

    @staticmethod
    async def _user_keys(found: AsyncIterator[bytes], prefix: bytes) -> AsyncIterator[str]:
        async for key in found:
            yield listing.user_key(key, prefix)

    async def keys(self, pattern: str = "*") -> list[str]:
        """The keys of this namespace matching ``pattern``, each once; see ``Storage.keys``."""
        return list(dict.fromkeys([k async for k in self.iter_keys(pattern)]))

    async def delete_pattern(self, pattern: str = "*", *, itersize: int | None = None) -> int:
        """Delete the keys matching ``pattern`` in batches of ``itersize``; return
        how many. See ``Storage.delete_pattern``."""
        return await drive.arun(self._deleting(pattern, itersize, aio=True))

    async def close(self) -> None:
        """See ``Storage.close``."""
        self._close()

    async def __aenter__(self) -> AsyncStorage:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def count_refusals_in(
    target: Storage | AsyncStorage, others: Iterable[Storage | AsyncStorage]
) -> None:
    """Make ``others`` count the values they refuse (``stats()["undecodable"]``) in
    ``target``'s count: an adapter's cache keeps one AsyncStorage per event loop beside its
    sync Storage, and its users read one ``stats()``. Call it before ``others`` decode
    anything. The other counts of ``stats()`` are the server's, or the shared table's, already.
    """
    counter = target.codec.refused
    for storage in others:
        storage.codec.refused = counter
