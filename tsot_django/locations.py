"""LOCATION forms: Django's usual values for each kind of cache, turned into tsot storage URLs.

Each function returns a list of URLs: the first is the one the cache writes to; any others are
read replicas (only Redis has them, as in Django's own ``RedisCache``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from tsot import ConfigurationError, mask_url
from tsot.integration import REDIS_SCHEMES as _REDIS_TOPOLOGY
from tsot.integration import memcached_url, memory_url, rocksdb_url

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# Django splits "a;b" and "a,b"; a comma inside one URL (redis+cluster://h1:7000,h2:7001) is not
# a separator, so only split where the next piece starts a new URL.
_URL_SEPARATOR = re.compile(r"\s*[;,]\s*(?=[a-zA-Z][a-zA-Z0-9+.-]*://)")

REDIS_SCHEMES = tuple(_REDIS_TOPOLOGY)
"""redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// and the valkey forms."""
_SINGLE_ONLY = tuple(s for s, topology in _REDIS_TOPOLOGY.items() if topology != "single")


def scheme_of(url: str) -> str | None:
    """The lower-cased scheme of ``url``, or None if it is not a URL."""
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


def _shown(location: object) -> str:
    # mask_url also masks a URL without a scheme (everything before its last "@")
    return repr(mask_url(location)) if isinstance(location, str) else type(location).__name__


def _pieces(location: object, what: str, split: Callable[[str], list[str]]) -> list[str]:
    if isinstance(location, str):
        pieces = split(location.strip())
    elif isinstance(location, list | tuple):
        pieces = list(location)
    else:
        raise ImproperlyConfigured(
            f"{what} LOCATION must be a string or a list of strings, not {type(location).__name__}"
        )
    if not pieces or any(not isinstance(p, str) or not p.strip() for p in pieces):
        raise ImproperlyConfigured(f"{what} LOCATION is empty or has an empty entry")
    return [p.strip() for p in pieces]


def _own_url(url: str, schemes: Sequence[str], what: str) -> str:
    scheme = scheme_of(url)
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"{what} LOCATION {mask_url(url)!r} must use the {' or '.join(schemes)} scheme"
        )
    return url


def tsot_urls(location: Any) -> list[str]:
    """``TsotCache``: LOCATION is one tsot storage URL (``redis://...``, ``memory://``, ...)."""
    if not isinstance(location, str) or scheme_of(location.strip()) is None:
        raise ImproperlyConfigured(
            f"tsot_django.TsotCache LOCATION must be a tsot storage URL such as "
            f"'memory://', 'redis://host:6379/0', 'memcached://host:11211' or "
            f"'rocksdb:///path', not {_shown(location)}"
        )
    return [location.strip()]


def redis_urls(location: Any) -> list[str]:
    """``RedisCache``: one Redis URL, or several (``"u1,u2"``, ``"u1;u2"`` or a list).

    As in Django's RedisCache the first is the primary and the others are read replicas.
    Sentinel and cluster URLs name their own hosts and cannot have replicas listed after them.
    """
    what = "tsot_django.RedisCache"
    urls = [
        _own_url(u, REDIS_SCHEMES, what)
        for u in _pieces(location, what, lambda s: _URL_SEPARATOR.split(s))
    ]
    if len(urls) > 1 and any(scheme_of(u) in _SINGLE_ONLY for u in urls):
        raise ImproperlyConfigured(
            f"{what} LOCATION: a sentinel or cluster URL ({', '.join(_SINGLE_ONLY)}) must be "
            "the only entry (it lists its own hosts)"
        )
    return urls


def memcached_urls(location: Any) -> list[str]:
    """``MemcachedCache``: ``"host:port"``, ``"h1:p1;h2:p2"``, ``"h1:p1,h2:p2"`` or a list.

    Becomes ``memcached://h1:p1,h2:p2`` (consistent hashing over the servers). One unix socket
    path (``/run/memcached.sock`` or ``unix:/run/memcached.sock``, as Django's PyMemcacheCache
    takes) becomes ``memcached:///run/memcached.sock``. A ``memcached://`` URL is taken as it is.
    """
    what = "tsot_django.MemcachedCache"
    if isinstance(location, str) and scheme_of(location.strip()) is not None:
        return [_own_url(location.strip(), ("memcached",), what)]
    servers = _pieces(location, what, lambda s: re.split(r"\s*[;,]\s*", s))
    try:
        return [memcached_url(servers)]
    except ConfigurationError as exc:
        raise ImproperlyConfigured(f"{what} LOCATION: {exc}") from exc


def rocksdb_urls(location: Any) -> list[str]:
    """``RocksDBCache``: a filesystem path (made absolute now) or a ``rocksdb://`` URL."""
    what = "tsot_django.RocksDBCache"
    if isinstance(location, str) and scheme_of(location.strip()) is not None:
        return [_own_url(location.strip(), ("rocksdb",), what)]
    try:
        return [rocksdb_url(location)]
    except ConfigurationError as exc:
        raise ImproperlyConfigured(
            f"{what} LOCATION must be a directory path or a rocksdb:// URL, not {_shown(location)}"
        ) from exc


def memory_urls(location: Any) -> list[str]:
    """``MemoryCache``: a table name (``""`` is the default table) or a ``memory://`` URL.

    Caches with the same name share one table in the process, as LocMemCache's do.
    """
    what = "tsot_django.MemoryCache"
    if not isinstance(location, str):
        raise ImproperlyConfigured(
            f"{what} LOCATION must be a name or a memory:// URL, not {_shown(location)}"
        )
    if scheme_of(location.strip()) is not None:
        return [_own_url(location.strip(), ("memory",), what)]
    return [memory_url(location)]
