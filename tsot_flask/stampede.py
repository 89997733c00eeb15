"""CACHE_TSOT_* keys of stampede protection for Flask-Caching's decorators (docs/stampede.md).

Flask-Caching's ``cached`` and ``memoize`` call the backend's ``get``, run the function on a
miss, then call ``set``: with ``CACHE_TSOT_STAMPEDE`` on, ``TsotCache.get`` and ``set`` go
through ``tsot.splitread.SplitReadThrough``, so both decorators (and any code using the same
get-compute-set pattern) are protected without a subclass of ``flask_caching.Cache``.

The function runs between those two calls, in the caller, so the one caller that refreshes a
value (early or within grace) computes inline: the backend never holds the function to run it
in the background. When the function raises, ``set`` is never called: the end of the app
context (``release_on_teardown``) gives the lease up instead of letting it run to
``lease_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tsot import ConfigurationError, Option

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
