"""django-debug-toolbar: its CachePanel sees every call on a tsot cache, ``a*`` ones included.

The panel wraps 15 sync methods of each cache instance and then sets ``_djdt_panel`` on it.
tsot caches answer the ``a*`` methods natively (not through the sync ones), so the panel alone
would miss them. ``ToolbarAware`` makes ``_djdt_panel`` a property: the first time the panel
sets it, the instance's ``a*`` methods and the django-redis style extras it has (``ttl``,
``expire``, ``keys``, ``lock``, ...) are wrapped the same way, recording into the panel while one
is attached. A cache no toolbar touched pays nothing.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import time
from collections.abc import Callable
from typing import Any, Final

_PANEL: Final = "_tsot_djdt_panel"
_PATCHED: Final = "_tsot_djdt_patched"

PANEL_METHODS: Final = (
    "add",
    "get",
    "set",
    "get_or_set",
    "touch",
    "delete",
    "clear",
    "get_many",
    "set_many",
    "delete_many",
    "has_key",
    "incr",
    "decr",
    "incr_version",
    "decr_version",
)
"""The methods the panel wraps itself (their ``a*`` twins are tsot's to wrap)."""

EXTRAS: Final = (
    "ttl",
    "pttl",
    "expire",
    "pexpire",
    "expire_at",
    "pexpire_at",
    "persist",
    "keys",
    "iter_keys",
    "delete_pattern",
    "lock",
    "get_stats",
)
"""django-redis style methods: wrapped, sync and ``a*``, when the cache has them."""


def _alias(cache: Any) -> str:
    """The alias the panel gave this instance: its ``get`` wrapper keeps it (the instance may
    not be in ``caches`` yet: the panel patches new ones as they are created)."""
    wrapper = cache.__dict__.get("get")
    if wrapper is not None:
        try:
            alias = inspect.getclosurevars(wrapper).nonlocals.get("alias")
        except TypeError:
            alias = None
        if isinstance(alias, str):
            return alias
    from django.core.cache import caches

    connections = getattr(caches, "_connections", None)
    for alias in caches:
        if getattr(connections, alias, None) is cache:
            return alias
    return "?"


def _count_hits(panel: Any, name: str, value: Any, args: tuple[Any, ...], kwargs: Any) -> None:
    """The panel's hit/miss rules (it applies them to ``get``, ``get_or_set``, ``get_many``)."""
    if name == "aget":
        default = kwargs.get("default", args[1] if len(args) > 1 else None)
        hit = value != default
    elif name == "aget_or_set":
        hit = value is not None
    elif name == "aget_many":
        keys = list(kwargs["keys"] if "keys" in kwargs else args[0])
        panel.hits += len(value)
        panel.misses += len(keys) - len(value)
        return
    else:
        return
    if hit:
        panel.hits += 1
    else:
        panel.misses += 1


def _record(panel: Any, cache: Any, alias: str, name: str, value: Any, took: float, a: Any) -> None:
    utils: Any = importlib.import_module("debug_toolbar.utils")  # installed: its panel called

    args, kwargs = a
    panel.counts.setdefault(name, 0)
    _count_hits(panel, name, value, args, kwargs)
    panel._store_call_info(
        name=name,
        time_taken=took,
        return_value=value,
        args=args,
        kwargs=kwargs,
        trace=utils.get_stack_trace(skip=2),
        template_info=utils.get_template_info(),
        backend=f"{alias} ({type(cache).__name__})",
    )


def _wrap_sync(cache: Any, name: str, alias: str) -> None:
    original: Callable[..., Any] = getattr(cache, name)

    @functools.wraps(original)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        panel = cache.__dict__.get(_PANEL)
        if panel is None:
            return original(*args, **kwargs)
        panel.counts.setdefault(name, 0)
        return panel._record_call(cache, alias, name, original, args, kwargs)

    setattr(cache, name, recorded)


def _wrap_async(cache: Any, name: str, alias: str) -> None:
    original: Callable[..., Any] = getattr(cache, name)

    @functools.wraps(original)
    async def recorded(*args: Any, **kwargs: Any) -> Any:
        panel = cache.__dict__.get(_PANEL)
        if panel is None:
            return await original(*args, **kwargs)
        cache.__dict__[_PANEL] = None  # calls made inside this one are not the user's
        try:
            started = time.perf_counter()
            value = await original(*args, **kwargs)
            took = time.perf_counter() - started
        finally:
            cache.__dict__[_PANEL] = panel
        _record(panel, cache, alias, name, value, took, (args, kwargs))
        return value

    setattr(cache, name, recorded)


def _patch(cache: Any) -> None:
    alias = _alias(cache)
    for name in EXTRAS:
        if callable(getattr(cache, name, None)):
            _wrap_sync(cache, name, alias)
    for name in (*PANEL_METHODS, *EXTRAS):
        method = getattr(cache, f"a{name}", None)
        if inspect.iscoroutinefunction(method):
            _wrap_async(cache, f"a{name}", alias)
        elif callable(method):  # aiter_keys, alock: plain calls returning async objects
            _wrap_sync(cache, f"a{name}", alias)


class ToolbarAware:
    """Mixin of the tsot Django caches: see the module docstring."""

    @property
    def _djdt_panel(self) -> Any:
        try:
            return self.__dict__[_PANEL]
        except KeyError:  # never instrumented: the panel checks with hasattr
            raise AttributeError("_djdt_panel") from None

    @_djdt_panel.setter
    def _djdt_panel(self, panel: Any) -> None:
        if panel is not None and not self.__dict__.get(_PATCHED):
            self.__dict__[_PATCHED] = True
            _patch(self)
        self.__dict__[_PANEL] = panel
