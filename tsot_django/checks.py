"""Django system checks for tsot caches (``manage.py check``; run at startup by runserver).

- ``tsot.W001``: a cache on a network backend (Redis, memcached) stores pickles unsigned
  (``OPTIONS["SIGNING"] = False``): anyone who can write to that server can run code in the
  site. Sign, use the json or msgpack serializer, or add ``"tsot.W001"`` to
  SILENCED_SYSTEM_CHECKS to accept it.

Registered when tsot_django is imported (adding ``"tsot_django"`` to INSTALLED_APPS makes that
happen before the checks run). A cache that cannot be built at all (bad LOCATION or OPTIONS, a
SECRET_KEY too short to sign with) raises its ImproperlyConfigured here, as Django's own cache
checks do when they build every cache.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from tsot.secrets import LOCAL_SCHEMES

from .options import translate


@checks.register(checks.Tags.caches, checks.Tags.security)
def check_caches(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001 for every tsot cache that stores unsigned pickles on a server."""
    from django.core.cache import caches

    from .cache import TsotCache

    found: list[checks.CheckMessage] = []
    for alias, params in (getattr(settings, "CACHES", None) or {}).items():
        cache = caches[alias]
        if not isinstance(cache, TsotCache):
            continue
        location = cache.storage.location
        scheme = location.scheme if location is not None else "memory"
        options = translate(params.get("OPTIONS") or {}, scheme, f"CACHES[{alias!r}]")
        if (
            options.get("secret") is None
            and options.get("serializer", "pickle") == "pickle"
            and scheme not in LOCAL_SCHEMES
        ):
            found.append(
                checks.Warning(
                    f"CACHES[{alias!r}] stores pickles unsigned on "
                    f"{cache.storage.url}: anyone who can write to that server can make this "
                    "site run code when it reads them.",
                    hint="Remove OPTIONS['SIGNING'] = False (objects are then signed with "
                    "SECRET_KEY), or use OPTIONS['SERIALIZER'] = 'json', or add 'tsot.W001' to "
                    "SILENCED_SYSTEM_CHECKS to accept the risk.",
                    obj=f"CACHES[{alias!r}]",
                    id="tsot.W001",
                )
            )
    return found
