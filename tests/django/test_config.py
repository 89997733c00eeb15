"""LOCATION forms, OPTIONS, TIMEOUT, signing and shared storages of the tsot_django classes."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tests.django.support import Env, server_url
from tests.servers.proc import Server, free_port, need_program
from tsot import Storage
from tsot.codec import Codec, Signer
from tsot.keys import KeySpace
from tsot_django import MemcachedCache, MemoryCache, RedisCache, RocksDBCache, TsotCache
from tsot_django.locations import memcached_urls, memory_urls, redis_urls, rocksdb_urls
from tsot_django.options import translate

# -- LOCATION forms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("redis://h:6379/0", ["redis://h:6379/0"]),
        ("redis://a:6379/0,redis://b:6379/0", ["redis://a:6379/0", "redis://b:6379/0"]),
        ("redis://a/0; rediss://b/0", ["redis://a/0", "rediss://b/0"]),
        (["redis://a/1", "redis://b/1"], ["redis://a/1", "redis://b/1"]),
        ("unix:///run/redis.sock?db=2", ["unix:///run/redis.sock?db=2"]),
        ("redis+cluster://h1:7000,h2:7001", ["redis+cluster://h1:7000,h2:7001"]),
        ("redis+sentinel://h1:26379,h2:26379/svc/0", ["redis+sentinel://h1:26379,h2:26379/svc/0"]),
        ("valkey://a/0; valkeys://b/0", ["valkey://a/0", "valkeys://b/0"]),
        ("valkey://a/0,redis://b/0", ["valkey://a/0", "redis://b/0"]),
        ("valkey+cluster://h1:7000,h2:7001", ["valkey+cluster://h1:7000,h2:7001"]),
        ("valkey+sentinel://h1,h2/svc/0", ["valkey+sentinel://h1,h2/svc/0"]),
    ],
)
def test_redis_locations(location: Any, expected: list[str]) -> None:
    assert redis_urls(location) == expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("127.0.0.1:11211", "memcached://127.0.0.1:11211"),
        ("server1.tld;server2:11211", "memcached://server1.tld,server2:11211"),
        ("server1.tld,server2:11211", "memcached://server1.tld,server2:11211"),
        (["server1.tld", "server2:11211"], "memcached://server1.tld,server2:11211"),
        ("[::1]:11211", "memcached://[::1]:11211"),
        ("memcached://h:1,h:2", "memcached://h:1,h:2"),
    ],
)
def test_memcached_locations(location: Any, expected: str) -> None:
    # Django's BaseMemcachedTests.test_location_multiple_servers forms, as tsot URLs.
    assert memcached_urls(location) == [expected]


def test_rocksdb_and_memory_locations(tmp_path: Path) -> None:
    assert rocksdb_urls(str(tmp_path / "db")) == [f"rocksdb://{tmp_path}/db"]
    assert rocksdb_urls(tmp_path / "db") == [f"rocksdb://{tmp_path}/db"]
    relative = rocksdb_urls("cache-dir")[0]
    assert relative == f"rocksdb://{os.getcwd()}/cache-dir"
    assert rocksdb_urls(str(tmp_path / "odd ?#%")) == [f"rocksdb://{tmp_path}/odd%20%3F%23%25"]
    assert memory_urls("unique-snowflake") == ["memory://unique-snowflake"]
    assert memory_urls("") == ["memory://"]
    assert memory_urls("a:b/c") == ["memory://a%3Ab%2Fc"]


def test_odd_names_and_paths_really_open(tmp_path: Path) -> None:
    odd = MemoryCache("we:ird/na me?", {})
    odd.set("k", 1)
    assert MemoryCache("we:ird/na me?", {}).get("k") == 1
    assert MemoryCache("other", {}).get("k") is None
    path = tmp_path / "odd ?#% dir"
    RocksDBCache(str(path), {}).set("k", 2)
    assert path.is_dir()
    assert RocksDBCache(path, {}).get("k") == 2
    from tsot.backends.rocksdb import close_database

    close_database(str(path))


@pytest.mark.parametrize(
    ("cls", "location", "needle"),
    [
        (TsotCache, "", "tsot storage URL"),
        (TsotCache, "localhost:6379", "tsot storage URL"),
        (TsotCache, ["memory://"], "tsot storage URL"),
        (TsotCache, "nosuch://x", "unknown storage URL scheme 'nosuch'"),
        (RedisCache, "memcached://h:1", "must use the redis"),
        (RedisCache, "redis+cluster://a:1,redis://b/0", "must be the only entry"),
        (RedisCache, "valkey://a/0,valkey+sentinel://b/svc/0", "must be the only entry"),
        (RedisCache, "valkeyy://a/0", "must use the redis or"),
        (RedisCache, "", "empty"),
        (RedisCache, 42, "string or a list"),
        (MemcachedCache, "a.sock:x", "not host, host:port or a socket path"),
        (MemcachedCache, "host:port:x", "not host, host:port or a socket path"),
        (MemcachedCache, "redis://h/0", "must use the memcached"),
        (RocksDBCache, "", "directory path"),
        (RocksDBCache, "memory://x", "must use the rocksdb"),
        (MemoryCache, 3, "name or a memory:// URL"),
        (MemoryCache, "redis://h/0", "must use the memory"),
    ],
)
def test_bad_locations_are_improperly_configured(cls: type, location: Any, needle: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=None) as info:
        cls(location, {})
    assert needle in str(info.value)


def test_credentials_never_appear_in_errors() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        RedisCache("redis://:hunter2@127.0.0.1:1/0", {"OPTIONS": {"NOPE": 1}})
    assert "hunter2" not in str(info.value)
    assert "redis://:***@127.0.0.1:1/0" in str(info.value)


# -- OPTIONS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"FOO": 1}, "OPTIONS['FOO'] is not a known option"),
        ({"foo": 1}, "OPTIONS['foo'] is not a known option"),
        ({"COMPRESS_THRESHOLD": "abc"}, "OPTIONS['COMPRESS_THRESHOLD'] is malformed"),
        ({"compress_threshold": -1}, "OPTIONS['compress_threshold'] is malformed"),
        ({"SERIALIZER": "yaml"}, "OPTIONS['SERIALIZER'] must be one of pickle, json, msgpack"),
        ({"serializer": "myapp.MySerializer"}, "OPTIONS['serializer'] must be one of"),
        ({"COMPRESSOR": "django_redis.compressors.lzma.LzmaCompressor"}, "['COMPRESSOR']"),
        ({"COMPRESSION": "brotli"}, "OPTIONS['COMPRESSION'] must be one of"),
        ({"SIGNING": "maybe"}, "OPTIONS['SIGNING'] is malformed"),
        ({"FAIL_OPEN": "sometimes"}, "OPTIONS['FAIL_OPEN'] is malformed"),
        ({"MAX_ENTRIES": "many"}, "OPTIONS['MAX_ENTRIES'] is malformed"),
        ({"CULL_FREQUENCY": "x"}, "OPTIONS['CULL_FREQUENCY'] is malformed"),
        ({"secret": "s"}, "OPTIONS['secret'] cannot be set here"),
        ({"default_ttl": 5}, "OPTIONS['default_ttl'] cannot be set here"),
        ({"NAMESPACE": "a", "namespace": "b"}, "sets the same option as OPTIONS['NAMESPACE']"),
        ({"NAMESPACE": 5}, "OPTIONS['NAMESPACE'] is malformed"),
        ({"PICKLE_VERSION": 1}, "OPTIONS['PICKLE_VERSION'] is malformed"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], named: str) -> None:
    entry = {"BACKEND": "tsot_django.MemoryCache", "LOCATION": "bad", "OPTIONS": options}
    with override_settings(CACHES={"default": entry}), pytest.raises(ImproperlyConfigured) as info:
        caches["default"]  # first use builds the backend
    assert named in str(info.value)
    assert "tsot_django.MemoryCache" in str(info.value)


@pytest.mark.parametrize(
    "options",
    [
        {"pool_class": "redis.BlockingConnectionPool"},
        {"parser_class": "redis.connection._HiredisParser"},
        {"CLIENT_CLASS": "django_redis.client.HerdClient"},
        {"CONNECTION_POOL_KWARGS": {"max_connections": "lots"}},
        {"SOCKET_TIMEOUT": "soon"},
        {"MAX_ENTRIES": 10},
        {"CULL_FREQUENCY": 3},
    ],
)
def test_bad_redis_options(options: dict[str, Any]) -> None:
    name = next(iter(options))
    with pytest.raises(ImproperlyConfigured, match=rf"OPTIONS\['{name}'"):
        RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": options})


def test_good_options_are_accepted_in_every_spelling() -> None:
    cache = MemoryCache(
        f"opts-{uuid.uuid4().hex}",
        {
            "OPTIONS": {
                "NAMESPACE": "ns",
                "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
                "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
                "COMPRESS_THRESHOLD": "16",
                "PICKLE_VERSION": -1,
                "MAX_ENTRIES": 50,
                "CULL_FREQUENCY": 0,
                "IGNORE_EXCEPTIONS": False,
                "max_bytes": 10_000_000,
            }
        },
    )
    cache.set("k", {"list": ["x" * 100]})
    assert cache.get("k") == {"list": ["x" * 100]}
    cache.set("t", (1, 2))
    assert cache.get("t") == [1, 2]  # JSON, as chosen
    for i in range(60):
        cache.set(f"n{i}", i)
    assert len(cache.get_many([f"n{i}" for i in range(60)])) <= 50  # MAX_ENTRIES holds


def test_redis_options_pass_through(request: pytest.FixtureRequest) -> None:
    url = server_url(request, "redis_url")
    cache = RedisCache(
        url,
        {
            "OPTIONS": {
                "SOCKET_TIMEOUT": 2,
                "socket_connect_timeout": 1,
                "CONNECTION_POOL_KWARGS": {"max_connections": 8},
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "NAMESPACE": f"opt{uuid.uuid4().hex[:8]}",
            }
        },
    )
    cache.set("k", "v")
    assert cache.get("k") == "v"
    cache.clear()


@pytest.mark.parametrize("timeout", ["soon", [], True])
def test_bad_timeout_is_refused_not_replaced_by_300(timeout: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="TIMEOUT must be a number of seconds"):
        MemoryCache("t", {"TIMEOUT": timeout})


def test_fail_open_reaches_tsot(request: pytest.FixtureRequest) -> None:
    # A dead server: with FAIL_OPEN, reads miss and writes are skipped instead of raising.
    port = free_port()
    cache = RedisCache(
        f"redis://127.0.0.1:{port}/0",
        {"OPTIONS": {"FAIL_OPEN": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "retries": 0}},
    )
    assert cache.get("k", "fallback") == "fallback"
    cache.set("k", 1)
    assert cache.add("k", 1) is False
    strict = RedisCache(
        f"redis://127.0.0.1:{port}/0", {"OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "retries": 0}}
    )
    with pytest.raises(ConnectionError):
        strict.get("k")


# -- signing -----------------------------------------------------------------------------------


def _entry(location: str, **options: Any) -> dict[str, Any]:
    return {"BACKEND": "tsot_django.MemoryCache", "LOCATION": location, "OPTIONS": options}


def _disk(path: Path, **options: Any) -> dict[str, Any]:
    """A cache on disk, for the signing tests: process memory is never signed."""
    return {"BACKEND": "tsot_django.TsotCache", "LOCATION": f"rocksdb://{path}", "OPTIONS": options}


def test_value_written_with_another_secret_key_is_a_miss(tmp_path: Path) -> None:
    location = tmp_path / "sign"
    with override_settings(SECRET_KEY="first-key-for-tests", CACHES={"default": _disk(location)}):
        writer = caches["default"]
        writer.set("obj", {"a": 1})
        writer.set("text", "plain str")
        writer.set("num", 7)
        assert writer.get("obj") == {"a": 1}
    with override_settings(SECRET_KEY="second-key-for-tests", CACHES={"default": _disk(location)}):
        reader = caches["default"]
        assert reader.get("obj", "miss") == "miss"  # never unpickled
        assert reader.get_many(["obj", "text"]) == {"text": "plain str"}
        assert reader.get("text") == "plain str"  # strings and ints are data, not signed
        assert reader.get("num") == 7
        assert reader.get_or_set("obj", {"b": 2}) == {"b": 2}


def test_secret_key_fallbacks_rotation(tmp_path: Path) -> None:
    location = tmp_path / "rotate"
    with override_settings(SECRET_KEY="old-key-for-the-tests", CACHES={"default": _disk(location)}):
        caches["default"].set("obj", ["written", "with", "old"])
    with override_settings(
        SECRET_KEY="new-key-for-the-tests",
        SECRET_KEY_FALLBACKS=["old-key-for-the-tests"],
        CACHES={"default": _disk(location)},
    ):
        rotated = caches["default"]
        assert rotated.get("obj") == ["written", "with", "old"]
        rotated.set("fresh", {"by": "new"})
    with override_settings(SECRET_KEY="new-key-for-the-tests", CACHES={"default": _disk(location)}):
        assert caches["default"].get("fresh") == {"by": "new"}  # new values signed by new key
        assert caches["default"].get("obj") is None  # the old key is gone from the fallbacks


def test_signing_off(tmp_path: Path) -> None:
    location = tmp_path / "unsigned"
    with override_settings(
        SECRET_KEY="k1-key-for-the-tests", CACHES={"default": _disk(location, SIGNING=False)}
    ):
        caches["default"].set("obj", {"a": 1})
    with override_settings(
        SECRET_KEY="k2-key-for-the-tests", CACHES={"default": _disk(location, SIGNING=False)}
    ):
        assert caches["default"].get("obj") == {"a": 1}
    with override_settings(SECRET_KEY="k2-key-for-the-tests", CACHES={"default": _disk(location)}):
        assert caches["default"].get("obj") is None  # a signing cache never trusts it


PLANTED: list[str] = []


def _plant(marker: str) -> None:
    PLANTED.append(marker)


class _Planted:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_plant, ("ran",))


def test_empty_secret_key_fallbacks_are_ignored_not_a_public_key(tmp_path: Path) -> None:
    """``SECRET_KEY_FALLBACKS=[os.environ.get("OLD_SECRET_KEY", "")]`` signed with key ""."""
    location = tmp_path / "empty-fallback"
    with override_settings(
        SECRET_KEY="a-real-secret-key-for-tests",
        SECRET_KEY_FALLBACKS=["", b""],
        CACHES={"default": _disk(location)},
    ):
        assert translate({}, "rocksdb", "test")["secret"] == [b"a-real-secret-key-for-tests"]
        assert translate({}, "memory", "test")["secret"] is None  # process memory: never signed
        cache = caches["default"]
        assert isinstance(cache, TsotCache)
        cache.set("obj", {"a": 1})
        assert cache.get("obj") == {"a": 1}
        forged = Codec(signer=Signer([b""])).encode(_Planted())
        final = KeySpace(cache.storage.namespace).make(cache.make_key("obj"))
        cache.storage.backend.set(final, forged, None)
        assert cache.get("obj", "miss") == "miss"
    assert PLANTED == []


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"SECRET_KEY": "too-short"}, "SECRET_KEY is 9 bytes"),
        (
            {"SECRET_KEY": "a-real-secret-key-for-tests", "SECRET_KEY_FALLBACKS": ["", "old"]},
            r"SECRET_KEY_FALLBACKS\[1\] is 3 bytes",
        ),
        ({"SECRET_KEY": "a-real-secret-key-for-tests", "SECRET_KEY_FALLBACKS": "old"}, "list"),
        # checked by the same function as Flask's (tsot.integration.framework_secrets)
        ({"SECRET_KEY": ["a-real-secret-key-for-tests"]}, "SECRET_KEY must be a str or bytes"),
        (
            {"SECRET_KEY": "a-real-secret-key-for-tests", "SECRET_KEY_FALLBACKS": [["o" * 20]]},
            r"SECRET_KEY_FALLBACKS\[0\] must be a str or bytes, not list",
        ),
    ],
    ids=["short-key", "short-fallback", "fallbacks-str", "list-key", "nested-fallback"],
)
def test_short_secrets_are_improperly_configured(
    config: dict[str, Any], match: str, tmp_path: Path
) -> None:
    location = tmp_path / "short"
    with override_settings(CACHES={"default": _disk(location)}, **config):
        with pytest.raises(ImproperlyConfigured, match=match) as info:
            caches["default"]
        assert "SIGNING" in str(info.value)
    with override_settings(CACHES={"default": _disk(location, SIGNING=False)}, **config):
        caches["default"].set("k", 1)  # signing off: the secret is not used, so not checked


def _check_ids(**caches_: dict[str, Any]) -> list[str]:
    from django.core import checks

    with override_settings(CACHES=caches_):
        return [m.id or "" for m in checks.run_checks(tags=[checks.Tags.caches])]


def test_system_check_warns_about_unsigned_pickles_on_a_server() -> None:
    redis = "redis://127.0.0.1:1/0"  # never contacted: checks only build the cache
    unsigned = {"BACKEND": "tsot_django.RedisCache", "LOCATION": redis}
    assert _check_ids(default=_entry("m"), r={**unsigned, "OPTIONS": {"SIGNING": False}}) == [
        "tsot.W001"
    ]
    assert _check_ids(default={**unsigned, "OPTIONS": {}}) == []
    assert (
        _check_ids(default={**unsigned, "OPTIONS": {"SIGNING": False, "SERIALIZER": "json"}}) == []
    )
    assert _check_ids(default=_entry("m", SIGNING=False)) == []  # memory: stays in the process


def test_debug_page_hides_options_password_but_not_location() -> None:
    """Why docs/django.md puts the password in OPTIONS: Django masks settings by name only."""
    from django.views.debug import SafeExceptionReporterFilter

    entry = {
        "BACKEND": "tsot_django.RedisCache",
        "LOCATION": "redis://:in-location-pw@127.0.0.1:1/0",
        "OPTIONS": {"PASSWORD": "in-options-pw"},
    }
    with override_settings(CACHES={"default": entry}):
        shown = repr(SafeExceptionReporterFilter().get_safe_settings()["CACHES"])
    assert "in-options-pw" not in shown
    assert "in-location-pw" in shown


def test_storage_registry_keys_hold_no_password() -> None:
    from tsot.backends.base import shared_keys
    from tsot_django import stores

    entry = {
        "BACKEND": "tsot_django.RedisCache",
        "LOCATION": "redis://:registry-location-pw@127.0.0.1:1/0",
        "OPTIONS": {"SIGNING": False},
    }
    options_entry = {**entry, "LOCATION": "redis://127.0.0.1:1/1"}
    options_entry["OPTIONS"] = {"PASSWORD": "registry-options-pw"}
    with override_settings(CACHES={"default": entry, "other": options_entry}):
        caches["default"]
        caches["other"]
        registry = repr(list(stores._cache)) + repr(shared_keys())
    assert "registry-location-pw" not in registry and "registry-options-pw" not in registry


# -- shared storages ---------------------------------------------------------------------------


def test_instances_per_thread_share_one_storage(env: Env) -> None:
    with override_settings(CACHES={"default": env.entry()}):
        mine = caches["default"]
        theirs: list[Any] = []
        worker = threading.Thread(target=lambda: theirs.append(caches["default"]))
        worker.start()
        worker.join(10)
        assert theirs[0] is not mine  # Django builds one instance per thread...
        assert theirs[0]._stores is mine._stores  # type: ignore[attr-defined]  # ...one storage
        mine.set("k", "v")
        assert theirs[0].get("k") == "v"
        mine.clear()


def test_clear_removes_only_the_namespace(env: Env) -> None:
    with override_settings(
        CACHES={
            "default": env.entry(),
            "neighbour": env.entry({"NAMESPACE": env.namespace + "-other"}),
        }
    ):
        caches["default"].set("k", 1)
        caches["neighbour"].set("k", 2)
        caches["default"].clear()
        assert caches["default"].get("k") is None
        assert caches["neighbour"].get("k") == 2
        caches["neighbour"].clear()


# -- Redis read replicas (Django's RedisCache LOCATION list) ------------------------------------


@pytest.fixture(scope="module")
def primary_and_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    pytest.importorskip("redis")
    redis_server = need_program("redis-server")
    servers: list[Server] = []
    try:
        for name, extra in (("primary", []), ("replica", ["--replica-read-only", "no"])):
            directory = tmp_path_factory.mktemp(f"dj-{name}")
            port = free_port()
            if servers:
                extra += ["--replicaof", "127.0.0.1", str(servers[0].port)]
            argv = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            argv += ["--appendonly", "no", "--dir", str(directory), *extra]
            servers.append(Server(argv, port, directory / "log").start())
        yield servers[0].port, servers[1].port
    finally:
        for server in reversed(servers):  # the replica first: a primary waits for its replicas
            server.stop()


def test_redis_list_location_reads_from_the_replica(primary_and_replica: tuple[int, int]) -> None:
    primary, replica = (f"redis://127.0.0.1:{p}/0" for p in primary_and_replica)
    namespace = f"rep{uuid.uuid4().hex[:8]}"
    cache = RedisCache([primary, replica], {"OPTIONS": {"NAMESPACE": namespace}})
    key = cache.make_key("only-on-replica")
    signing = {"secret": settings.SECRET_KEY, "sign": "all"}  # as the cache signs on Redis
    with Storage.from_url(replica, namespace=namespace, **signing) as on_replica:
        on_replica.store(key, "replica's own value")  # the replica accepts writes here
    assert cache.get("only-on-replica") == "replica's own value"  # reads: the replica
    assert cache.has_key("only-on-replica") is True
    assert cache.get_many(["only-on-replica"]) == {"only-on-replica": "replica's own value"}
    assert cache.add("only-on-replica", "primary") is True  # writes: the primary
    with Storage.from_url(primary, namespace=namespace) as on_primary:
        assert on_primary.load(key) == "primary"
    cache.set("n", 1)
    assert cache.incr("n") == 2  # incr is a write: the primary
    cache.clear()


@pytest.mark.parametrize("key", ["", "dev"])
def test_process_memory_needs_no_secret_key(key: str) -> None:
    """As LocMemCache: nothing outside the process writes there, so nothing is signed and an empty
    or short SECRET_KEY (a development project's) is not refused; RocksDB on disk still signs."""
    with override_settings(SECRET_KEY=key):
        cache = MemoryCache(f"mem-{uuid.uuid4().hex[:8]}", {})
        cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
        with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
            RocksDBCache(f"/nonexistent-{uuid.uuid4().hex[:8]}", {}).get("k")
