"""CACHE_TSOT_* keys of stampede protection for Flask-Caching's decorators (docs/stampede.md).

Flask-Caching's ``cached`` and ``memoize`` call the backend's ``get``, run the function on a
miss, then call ``set``: with ``CACHE_TSOT_STAMPEDE`` on, ``TsotCache.get`` and ``set`` go
through ``tsot.splitread.SplitReadThrough``, so both decorators (and any code using the same
get-compute-set pattern) are protected without a subclass of ``flask_caching.Cache``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tsot import ConfigurationError, Option

from . import config as cfg

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
