"""CACHE_TSOT_* keys of stampede protection for Flask-Caching's decorators (docs/stampede.md).

Flask-Caching's ``cached`` and ``memoize`` call the backend's ``get``, run the function on a
miss, then call ``set``: with ``CACHE_TSOT_STAMPEDE`` on, ``TsotCache.get`` and ``set`` go
through ``tsot.splitread.SplitReadThrough``, so both decorators (and any code using the same
get-compute-set pattern) are protected without a subclass of ``flask_caching.Cache``.

The function runs between those two calls, in the caller, so with ``flask_caching.Cache`` the
one caller that refreshes a value (early or within grace) computes inline: the backend never
holds the function. ``tsot_flask.Cache`` (a subclass of ``flask_caching.Cache``) knows the
decorated functions: its refresh runs the decorated function again in a thread (with a copy of
the request or app context), which computes and stores the value, while the caller that won
the refresh returns the value still served, as every other caller does. When the function
raises, ``set`` is never called: the end of the app context (``release_on_teardown``) gives the
lease up instead of letting it run to ``lease_timeout``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import flask
import flask_caching

from tsot import ConfigurationError, Option
from tsot.integration import Pending, SplitReadThrough
from tsot.readthrough import log

from . import config as cfg

if TYPE_CHECKING:
    from flask import Flask

KEYS: Mapping[str, str] = {
    "CACHE_TSOT_GRACE": "grace",
    "CACHE_TSOT_BETA": "beta",
    "CACHE_TSOT_LEASE_TIMEOUT": "lease_timeout",
}
"""Config keys that set a stampede option of the Storage (docs/stampede.md#options)."""
_SWITCH = Option("CACHE_TSOT_STAMPEDE", bool, False, "Protect cached and memoize from stampedes.")


def read(config: Mapping[str, Any], settings: cfg.Settings) -> bool:
    """Whether CACHE_TSOT_STAMPEDE is on; puts the CACHE_TSOT_* options into ``settings``.

    Raises ConfigurationError naming the key whose value is wrong.
    """
    try:
        on = bool(_SWITCH.parse(config.get("CACHE_TSOT_STAMPEDE", False)))
    except ConfigurationError as exc:
        raise cfg.fail("CACHE_TSOT_STAMPEDE", settings.cache_type, str(exc)) from exc
    for key, option in KEYS.items():
        if key in config:
            if option in settings.options:
                raise cfg.fail(
                    key, settings.cache_type, f"and CACHE_OPTIONS both set {option!r}; keep one"
                )
            settings.options[option] = config[key]
            settings.origins[option] = key
    if on:
        settings.options["stampede"] = True
        settings.origins["stampede"] = "CACHE_TSOT_STAMPEDE"
    return on


def release_on_teardown(app: Flask, abandon: Callable[[], None]) -> None:
    """Call ``abandon`` (``TsotCache.abandon_leases``) when each app context of ``app`` ends,
    in the thread that ran it: the leases of values it missed and never stored (the decorated
    function raised) are given up at once (``tsot.splitread.SplitReadThrough.abandon``)."""

    def teardown(exc: BaseException | None) -> None:
        abandon()

    app.teardown_appcontext(teardown)


class Cache(flask_caching.Cache):
    """``flask_caching.Cache`` whose ``cached`` and ``memoize`` refresh in the background.

    With ``CACHE_TSOT_STAMPEDE`` on a tsot backend, the caller whose read wins an early (or
    stale, within grace) refresh returns the value still served at once, and a daemon thread
    runs the decorated function again, in a copy of that caller's request context (or in an
    app context), to compute and store the new value under the lease the caller won. Without
    the switch, or on another backend, it is ``flask_caching.Cache``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # the functions cached / memoize decorated -> what they returned
        self._decorated: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(*args, **kwargs)

    def cached(self, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        """``flask_caching.Cache.cached``, its refreshes in the background (class docstring)."""
        return self._remember(super().cached(*args, **kwargs))

    def memoize(self, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        """``flask_caching.Cache.memoize``, its refreshes in the background."""
        return self._remember(super().memoize(*args, **kwargs))

    def _remember(self, decorate: Callable[..., Any]) -> Callable[..., Any]:
        def decorator(f: Callable[..., Any]) -> Any:
            decorated = decorate(f)
            self._decorated[f] = decorated
            return decorated

        return decorator

    def _call_fn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # the decorators call this on a miss, right after their get: if that get won a refresh
        # of a value still served, serve it and compute the new one in a thread
        split: SplitReadThrough | None = getattr(self.cache, "_split", None)
        decorated = self._decorated.get(fn)
        if split is not None and decorated is not None:
            handed = split.hand_off()
            if handed is not None and handed.served is not None:
                _refresh_in_thread(split, handed, decorated, args, kwargs)
                return handed.served.value
        return super()._call_fn(fn, *args, **kwargs)


def _refresh_in_thread(
    split: SplitReadThrough,
    handed: Pending,
    decorated: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Run ``decorated(*args, **kwargs)`` in a daemon thread that first adopts ``handed``
    (its get misses, its set stores and frees the lease); a failure is logged, and the end of
    its context gives the lease up as a failed refresh (kept ``REFRESH_BACKOFF``)."""

    def refresh() -> None:
        split.adopt(handed)
        try:
            decorated(*args, **kwargs)
        except Exception as exc:
            log.warning(
                "tsot: background refresh of key %r failed: %r", handed.k[:100], exc, exc_info=exc
            )

    if flask.has_request_context():
        target = flask.copy_current_request_context(refresh)
    else:
        app = flask.current_app._get_current_object()  # type: ignore[attr-defined]

        def target() -> None:
            with app.app_context():
                refresh()

    threading.Thread(target=target, name="tsot-refresh", daemon=True).start()
