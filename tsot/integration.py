"""The public surface for framework adapters: what tsot_django and tsot_flask (or a third-party
adapter) use from tsot besides the names ``tsot`` itself exports.

An adapter imports only public names (``tests/unit/test_layers.py`` checks it):

- the names in ``tsot.__all__`` (``Storage``, ``AsyncStorage``, the errors, ``parse_url``...);
- the names in ``__all__`` below;
- two modules, by their names without a leading underscore: ``tsot.cli`` (the commands
  ``manage.py tsot`` and ``flask tsot`` run, docs/cli.md) and ``tsot.readthrough`` (the
  read-through of ``get_or_compute``, in two parts for Django's two cache middlewares:
  ``begin``/``finish``/``abandon``, their ``a*`` forms and ``Deferred``).

``drive``/``adrive`` are the core's sync and asyncio drivers of sans-I/O operations
(``tsot.drive``, docs/architecture.md#sync-and-async-twins): an adapter's operation of several
steps is written once as a generator of ``(function, args)`` calls (``Steps``) and run by either.

Everything else in tsot is private to it and may change in any release. This module only
gathers names; each keeps its home (docs/architecture.md#public-api).
"""

from __future__ import annotations

from .compat import glob_escape, ms_timeout, redis_ttl, seconds_until
from .config import (
    REDIS_SCHEMES,
    UrlParts,
    default_sign,
    memcached_url,
    memory_url,
    needs_secret,
    options_for,
    redis_url,
    rocksdb_url,
    split_url,
)
from .drive import Steps
from .drive import arun as adrive
from .drive import run as drive
from .inprocess import Direct, direct_calls
from .keys import Key
from .lazy import is_open
from .secrets import LOCAL_SCHEMES, framework_secrets, warn_unsigned
from .splitread import MISSING, Pending, SplitReadThrough
from .storage import count_refusals_in

__all__ = [
    "LOCAL_SCHEMES",
    "MISSING",
    "REDIS_SCHEMES",
    "Direct",
    "Key",
    "Pending",
    "SplitReadThrough",
    "Steps",
    "UrlParts",
    "adrive",
    "count_refusals_in",
    "default_sign",
    "direct_calls",
    "drive",
    "framework_secrets",
    "glob_escape",
    "is_open",
    "memcached_url",
    "memory_url",
    "ms_timeout",
    "needs_secret",
    "options_for",
    "redis_ttl",
    "redis_url",
    "rocksdb_url",
    "seconds_until",
    "split_url",
    "warn_unsigned",
]
