"""Django system checks for tsot caches (``manage.py check``; run at startup by runserver).

Errors, one per step of a CACHES entry that fails (the text names the alias and the setting):

- ``tsot.E001`` LOCATION, ``tsot.E002`` TIMEOUT, ``tsot.E003`` the storage's driver or URL
  scheme (names the extra to install), ``tsot.E004`` SECRET_KEY / SECRET_KEY_FALLBACKS for
  signing, ``tsot.E005`` OPTIONS (django-redis options say what to write instead),
  ``tsot.E006`` the storage URL with its options.

Warnings:

- ``tsot.W001``: a cache on a network backend (Redis, memcached) stores pickles unsigned
  (``OPTIONS["SIGNING"] = False``): anyone who can write to that server can run code in the
  site. Sign, use the json or msgpack serializer, or add ``"tsot.W001"`` to
  SILENCED_SYSTEM_CHECKS to accept it.
- ``tsot.W002``: ``DJANGO_REDIS_IGNORE_EXCEPTIONS = True``, which tsot ignores, while a cache
  has no ``FAIL_OPEN``: it would raise on the first outage. ``tsot.W003``: another
  django-redis global (``DJANGO_REDIS_LOGGER``, ...), with what replaces it.

Deploy only (``check --deploy``):

- ``tsot.W010``: a server of a network cache does not answer one read within about a second.
- ``tsot.W011``: a RocksDB cache while the environment asks for several server processes
  (WEB_CONCURRENCY, GUNICORN_CMD_ARGS workers, UWSGI_PROCESSES): only one can open it.

Registered when tsot_django is imported (adding ``"tsot_django"`` to INSTALLED_APPS makes that
happen before the checks run). No check but W010 connects to anything.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from . import deploy, diagnose


@checks.register(checks.Tags.caches, checks.Tags.security)
def check_caches(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E001-E006 for each configuration error, W001 for unsigned pickles on a server, and
    W002/W003 for django-redis globals tsot ignores."""
    entries = [diagnose.configuration(e) for e in diagnose.tsot_entries()]
    found: list[checks.CheckMessage] = []
    for entry in entries:
        found += entry.found
        found += diagnose.unsigned_pickles(entry)
    return found + diagnose.ignored_globals(entries)


@checks.register(checks.Tags.caches, deploy=True)
def check_caches_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W010 for a server that does not answer, W011 for RocksDB under several processes."""
    found: list[checks.CheckMessage] = []
    for entry in map(diagnose.configuration, diagnose.tsot_entries()):
        found += deploy.reachability(entry)
        found += deploy.rocksdb_processes(entry)
    return found
