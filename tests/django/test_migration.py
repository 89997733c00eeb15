"""Coming from django-redis: every OPTIONS key and CLIENT_CLASS is mapped, or refused with a
message that names the tsot form; memcached LOCATIONs as Django's PyMemcacheCache takes them."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tsot_django import MemcachedCache, RedisCache
from tsot_django.migration import CLIENT_CLASSES, DEFAULT_CLIENT, NOT_NEEDED, POOL_NOT_NEEDED
from tsot_django.options import translate
from tsot_flask.config import memcached_url as flask_memcached_url

WHERE = "CACHES['default']"


def refused(options: dict[str, Any], scheme: str = "redis") -> str:
    with pytest.raises(ImproperlyConfigured) as info:
        translate(options, scheme, WHERE)
    return str(info.value)


@pytest.mark.parametrize("key", sorted(NOT_NEEDED))
def test_each_unneeded_django_redis_option_says_what_to_do(key: str) -> None:
    message = refused({key: "anything"})
    assert f"OPTIONS['{key}']" in message and WHERE in message
    assert NOT_NEEDED[key] in message
    assert "known:" not in message  # not the generic "unknown option" list


@pytest.mark.parametrize("client", [c for c in CLIENT_CLASSES if c != DEFAULT_CLIENT])
def test_each_other_client_class_names_its_replacement(client: str) -> None:
    message = refused({"CLIENT_CLASS": client})
    assert "OPTIONS['CLIENT_CLASS']" in message and client in message
    assert CLIENT_CLASSES[client] in message  # type: ignore[operator]


def test_client_class_forms() -> None:
    assert "redis+sentinel://" in refused({"CLIENT_CLASS": "django_redis.client.SentinelClient"})
    assert "redis+cluster://" in refused({"CLIENT_CLASS": "django_redis.client.ShardClient"})
    assert "herd" in refused({"CLIENT_CLASS": "django_redis.client.HerdClient"})
    assert "one client" in refused({"CLIENT_CLASS": "myapp.MyClient"})
    assert "secret" in translate({"CLIENT_CLASS": DEFAULT_CLIENT}, "redis", WHERE)


def test_pool_kwargs_map_to_redis_options() -> None:
    out = translate(
        {
            "CONNECTION_POOL_KWARGS": {
                "max_connections": 8,
                "socket_keepalive": False,
                "health_check_interval": 30,
                "timeout": 3,
            },
            "REDIS_CLIENT_KWARGS": {"client_name": "web"},
            "SENTINEL_KWARGS": {"password": "sentinel-pw"},
        },
        "redis+sentinel",
        WHERE,
    )
    assert out["max_connections"] == 8 and out["socket_keepalive"] is False
    assert out["health_check_interval"] == 30.0 and out["pool_timeout"] == 3.0
    assert out["client_name"] == "web" and out["sentinel_password"] == "sentinel-pw"


@pytest.mark.parametrize("key", sorted(POOL_NOT_NEEDED))
def test_pool_kwargs_without_equivalent_say_why(key: str) -> None:
    message = refused({"CONNECTION_POOL_KWARGS": {key: True}})
    assert f"OPTIONS['CONNECTION_POOL_KWARGS'][{key!r}]" in message
    assert POOL_NOT_NEEDED[key] in message


def test_retry_on_timeout_points_at_retries() -> None:
    message = refused({"CONNECTION_POOL_KWARGS": {"retry_on_timeout": True}})
    assert "retries" in message and "timed-out command" in message


def test_unknown_pool_kwarg_lists_the_mapped_ones() -> None:
    message = refused({"CONNECTION_POOL_KWARGS": {"nonsense": 1}})
    assert "['nonsense']" in message and "max_connections" in message


def test_pool_kwarg_values_are_checked() -> None:
    message = refused({"CONNECTION_POOL_KWARGS": {"max_connections": "lots"}})
    assert "['max_connections']" in message and "'lots'" in message


@pytest.mark.parametrize(
    ("scheme", "needle"),
    [("redis", "maxmemory-policy"), ("memcached", "-m"), ("rocksdb", "max_disk_bytes")],
)
@pytest.mark.parametrize("key", ["MAX_ENTRIES", "CULL_FREQUENCY"])
def test_max_entries_on_a_server_says_how_it_evicts(key: str, scheme: str, needle: str) -> None:
    message = refused({key: 1000}, scheme)
    assert f"OPTIONS['{key}']" in message and needle in message


def test_max_entries_on_memory_still_bounds_it() -> None:
    assert translate({"MAX_ENTRIES": 10}, "memory", WHERE)["max_entries"] == 10


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("unix:/run/memcached.sock", "memcached:///run/memcached.sock"),
        ("/run/memcached.sock", "memcached:///run/memcached.sock"),
        ("a:11211;b:11212", "memcached://a:11211,b:11212"),
        (["[::1]:11211", "b"], "memcached://[::1]:11211,b"),
        ("unix:/a.sock;b:1", "memcached://%2Fa.sock,b:1"),  # as pymemcache's HashClient
    ],
)
def test_memcached_locations_as_pymemcache_cache(location: Any, url: str) -> None:
    with override_settings(SECRET_KEY="k" * 32):
        cache = MemcachedCache(location, {})
    assert cache.storage.url == url
    # the Flask side builds the same URL from the same servers (one builder in tsot.config)
    servers = location if isinstance(location, list) else location.replace(";", ",")
    assert flask_memcached_url({"CACHE_MEMCACHED_SERVERS": servers}, "t")[0] == url


def test_redis_cache_with_django_redis_options_builds() -> None:
    with override_settings(SECRET_KEY="k" * 32):
        cache = RedisCache(
            "redis://127.0.0.1:1/0",
            {
                "OPTIONS": {
                    "CLIENT_CLASS": DEFAULT_CLIENT,
                    "SOCKET_TIMEOUT": 1,
                    "SOCKET_CONNECT_TIMEOUT": 1,
                    "CONNECTION_POOL_KWARGS": {"max_connections": 4},
                    "IGNORE_EXCEPTIONS": True,
                }
            },
        )
    assert cache.storage.url == "redis://127.0.0.1:1/0"  # built without connecting


@pytest.mark.parametrize("form", ["unix:{}", "{}"])
def test_memcached_cache_on_a_unix_socket(memcached_unix_socket: str, form: str) -> None:
    with override_settings(SECRET_KEY="k" * 32):
        cache = MemcachedCache(form.format(memcached_unix_socket), {})
    cache.set("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    assert cache.add("n", 1)
    assert cache.incr("n") == 2
