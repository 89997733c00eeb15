"""``tsot.memoize``: a decorator that reads a function's results through ``get_or_compute``.

>>> from tsot import Storage, memoize
>>> store = Storage.new_imc()
>>> @memoize(store, ttl=60)
... def square(n: int) -> int:
...     return n * n
>>> square(12), square(12)
(144, 144)
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ConfigurationError
from .storage import DEFAULT, AsyncStorage, Storage, TTLArg

F = TypeVar("F", bound=Callable[..., Any])


def default_key(prefix: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``prefix:`` + a SHA-256 of the arguments' reprs (arguments must have stable reprs)."""
    shown = repr((args, sorted(kwargs.items())))
    return f"{prefix}:{hashlib.sha256(shown.encode('utf-8', 'surrogatepass')).hexdigest()}"


def memoize(
    storage: Storage | AsyncStorage,
    ttl: TTLArg = DEFAULT,
    *,
    key: Callable[..., str] | None = None,
    prefix: str | None = None,
    **options: Any,
) -> Callable[[F], F]:
    """Cache a function's results in ``storage`` for ``ttl``, with stampede protection.

    A plain function needs a ``Storage``; a coroutine function an ``AsyncStorage`` (its result
    is awaited). The key is ``key(*args, **kwargs)``, or ``prefix`` (default: the function's
    module and qualified name) and a digest of the arguments' reprs. ``options`` are
    ``get_or_compute``'s: ``stampede``, ``grace``, ``beta``, ``lease_timeout``, ``timing``.
    Raises ConfigurationError when the function and the storage do not match.
    """

    def decorate(fn: F) -> F:
        name = prefix if prefix is not None else f"{fn.__module__}.{fn.__qualname__}"

        def make_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            return key(*args, **kwargs) if key is not None else default_key(name, args, kwargs)

        if inspect.iscoroutinefunction(fn):
            if not isinstance(storage, AsyncStorage):
                raise ConfigurationError(
                    f"memoize of coroutine function {name!r} needs an AsyncStorage"
                )
            astore = storage

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                return await astore.get_or_compute(
                    make_key(args, kwargs), lambda: fn(*args, **kwargs), ttl, **options
                )

            return awrapper  # type: ignore[return-value]
        if not isinstance(storage, Storage):
            raise ConfigurationError(f"memoize of function {name!r} needs a Storage")
        store = storage

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return store.get_or_compute(
                make_key(args, kwargs), lambda: fn(*args, **kwargs), ttl, **options
            )

        return wrapper  # type: ignore[return-value]

    return decorate
