"""Coming from django-redis: what each of its settings becomes in tsot, or why none is needed.

``OPTIONS`` handlers (used by ``options.Translator``) map what has a tsot equivalent and refuse
the rest with a message that says what to write instead; ``GLOBALS`` are the module-level
``DJANGO_REDIS_*`` settings that tsot ignores, with the tsot option to use (the system checks
warn about them). docs/django.md has the same table for people.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .options import Translator

Handler = Callable[["Translator", str, Any], None]

DEFAULT_CLIENT = "django_redis.client.DefaultClient"
_SENTINEL_HOW = (
    "name the Sentinels in LOCATION instead: "
    "'redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster/0'"
)
_HERD = (
    "tsot has no herd mode (serving a stale value while one process recomputes it); "
    "remove CLIENT_CLASS. Values written by HerdClient are read as misses"
)
CLIENT_CLASSES: Mapping[str, str | None] = {
    DEFAULT_CLIENT: None,  # accepted: it is what tsot does
    "django_redis.client.HerdClient": _HERD,
    "django_redis.client.SentinelClient": f"remove CLIENT_CLASS and {_SENTINEL_HOW}",
    "django_redis.client.ShardClient": (
        "tsot does not shard keys over independent Redis servers; use Redis Cluster "
        "('redis+cluster://h1:7000,h2:7001'), or memcached, which spreads keys over its servers"
    ),
}
"""django-redis's clients and what replaces each (None: accepted as it is)."""

NOT_NEEDED: Mapping[str, str] = {
    "CONNECTION_POOL_CLASS": "tsot manages its own connection pools (max_connections and "
    "pool_timeout size them); remove it",
    "PARSER_CLASS": "tsot picks the reply parser itself (hiredis when installed); remove it",
    "REDIS_CLIENT_CLASS": "tsot talks to Redis through its own transport; remove it (TLS, "
    "users and timeouts are options: ssl, username, socket_timeout)",
    "CONNECTION_FACTORY": f"tsot has one connection layer; remove it (Sentinel: {_SENTINEL_HOW})",
    "SENTINELS": _SENTINEL_HOW,
    "CLOSE_CONNECTION": "pools are per process and survive Django's close() after each request; "
    "remove it",
    "REPLICA_READ_ONLY": "reads go to the replica URLs listed after the primary in LOCATION and "
    "writes to the primary; remove it",
    "LOG_IGNORED_EXCEPTIONS": "with FAIL_OPEN, outages are always logged (at a bounded rate, "
    "logger 'tsot'); remove it",
    "REVERSE_KEY_FUNCTION": "tsot never turns stored keys back into Django keys; remove it",
}
"""django-redis OPTIONS keys with nothing to set in tsot, and what to do."""

POOL_KWARGS: Mapping[str, str] = {
    # redis-py connection / pool keyword -> tsot Redis option
    "max_connections": "max_connections",
    "socket_timeout": "socket_timeout",
    "socket_connect_timeout": "socket_connect_timeout",
    "socket_keepalive": "socket_keepalive",
    "health_check_interval": "health_check_interval",
    "client_name": "client_name",
    "username": "username",
    "password": "password",
    "db": "db",
    "protocol": "protocol",
    "ssl": "ssl",
    "ssl_cert_reqs": "ssl_cert_reqs",
    "ssl_ca_certs": "ssl_ca_certs",
    "ssl_certfile": "ssl_certfile",
    "ssl_keyfile": "ssl_keyfile",
    "ssl_check_hostname": "ssl_check_hostname",
    "timeout": "pool_timeout",  # BlockingConnectionPool's wait for a free connection
}
_RETRY = (
    "tsot retries refused and reset connections (options retries, retry_backoff, "
    "retry_backoff_max) and never a timed-out command, which may have run"
)
POOL_NOT_NEEDED: Mapping[str, str] = {
    "retry_on_timeout": f"{_RETRY}: remove it",
    "retry_on_error": f"{_RETRY}: remove it",
    "retry": f"{_RETRY}: set those options instead",
    "socket_keepalive_options": "not configurable: socket_keepalive uses the system's "
    "keepalive timers",
    "decode_responses": "tsot stores bytes and decodes values itself; remove it",
    "encoding": "tsot encodes keys as UTF-8 and values with its serializer; remove it",
    "encoding_errors": "tsot encodes keys as UTF-8 and values with its serializer; remove it",
    "connection_class": "tsot manages its own connections; remove it",
    "single_connection_client": "tsot pools connections; remove it",
}
"""redis-py connection keywords that tsot has no option for, and why."""

GLOBALS: Mapping[str, tuple[str, str]] = {
    "DJANGO_REDIS_IGNORE_EXCEPTIONS": (
        "tsot.W002",
        "set OPTIONS['FAIL_OPEN'] = True on each cache that must survive a Redis outage "
        "(reads miss and writes are skipped while it is down)",
    ),
    "DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS": (
        "tsot.W003",
        "with FAIL_OPEN, outages are always logged at a bounded rate on the 'tsot' logger",
    ),
    "DJANGO_REDIS_LOGGER": (
        "tsot.W003",
        "tsot logs on the 'tsot' logger: configure it in LOGGING",
    ),
    "DJANGO_REDIS_SCAN_ITERSIZE": (
        "tsot.W003",
        "tsot scans keys (clear()) in its own batches; nothing to set",
    ),
    "DJANGO_REDIS_CONNECTION_FACTORY": ("tsot.W003", NOT_NEEDED["CONNECTION_FACTORY"]),
    "DJANGO_REDIS_CLOSE_CONNECTION": ("tsot.W003", NOT_NEEDED["CLOSE_CONNECTION"]),
    "CACHE_HERD_TIMEOUT": ("tsot.W003", _HERD),
}
"""Module-level settings django-redis reads and tsot ignores: (check id, what to do)."""

EVICTION: Mapping[str, str] = {
    "redis": "Redis evicts by memory, not by entry count: set maxmemory and "
    "maxmemory-policy allkeys-lru on the server",
    "memcached": "memcached evicts least recently used items when its memory (-m) is full",
    "rocksdb": "bound the directory with the max_disk_bytes option",
}


def eviction_hint(scheme: str) -> str:
    for family, hint in EVICTION.items():
        if scheme.startswith(family) or (family == "redis" and scheme.startswith("valkey")):
            return hint
        if family == "redis" and scheme == "unix":
            return hint
    return "this storage has no entry limit"


def client_class(t: Translator, name: str, value: Any) -> None:
    if value in CLIENT_CLASSES:
        why = CLIENT_CLASSES[value]
        if why is not None:
            raise t.fail(name, f"{value!r} is not supported: {why}")
        return
    raise t.fail(
        name,
        f"{value!r} is not supported: tsot has one client (django-redis's DefaultClient); "
        "replicas are extra LOCATION URLs, Sentinel and Cluster are redis+sentinel:// and "
        "redis+cluster:// LOCATIONs",
    )


def pool_kwargs(t: Translator, name: str, value: Any) -> None:
    """CONNECTION_POOL_KWARGS / REDIS_CLIENT_KWARGS / SENTINEL_KWARGS entries, one by one."""
    if not isinstance(value, Mapping):
        raise t.fail(name, f"must be a dict, not {type(value).__name__}")
    sentinel = "SENTINEL" in name.upper()
    for key, item in value.items():
        shown = f"{name}[{key!r}]"
        lower = str(key).lower()
        if sentinel and lower in ("username", "password"):
            t.put(f"sentinel_{lower}", item, shown)
        elif lower in POOL_NOT_NEEDED:
            raise t.fail(shown, f"has no tsot equivalent: {POOL_NOT_NEEDED[lower]}")
        elif lower in POOL_KWARGS and POOL_KWARGS[lower] in t.known:
            t.put(POOL_KWARGS[lower], item, shown)
        else:
            known = sorted(k for k, v in POOL_KWARGS.items() if v in t.known)
            raise t.fail(
                shown,
                "is not a connection setting tsot knows"
                + (f"; it maps these: {', '.join(known)}" if known else " for this storage"),
            )


def not_needed(why: str) -> Handler:
    def handle(t: Translator, name: str, value: Any) -> None:
        raise t.fail(name, f"is a django-redis setting tsot does not use: {why}")

    return handle


def max_entries(t: Translator, name: str, value: Any) -> None:
    if "max_entries" in t.known:
        t.put("max_entries", value, name)
        return
    raise t.fail(name, f"only applies to memory caches: {eviction_hint(t.scheme)}")


HANDLERS: Mapping[str, Handler] = {
    "CLIENT_CLASS": client_class,
    "CONNECTION_POOL_KWARGS": pool_kwargs,
    "REDIS_CLIENT_KWARGS": pool_kwargs,
    "SENTINEL_KWARGS": pool_kwargs,
    "MAX_ENTRIES": max_entries,
    **{key: not_needed(why) for key, why in NOT_NEEDED.items()},
}
"""OPTIONS keys (upper case, as django-redis and Django write them) handled here."""
