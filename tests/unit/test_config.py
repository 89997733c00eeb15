"""URL parsing, option checking, the backend registry and credential masking."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tsot import ConfigurationError, MissingDependency, Storage, parse_url, register_backend
from tsot.backends.memory import MemoryBackend
from tsot.config import (
    CORE_OPTIONS,
    backend_class,
    mask_url,
    memcached_url,
    memory_url,
    parse_options,
    redis_url,
    rocksdb_url,
)


def test_parse_single_host() -> None:
    loc = parse_url("redis://user:p%40ss@127.0.0.1:6380/2?socket_timeout=1.5")
    assert loc.scheme == "redis"
    assert loc.hosts == (("127.0.0.1", 6380),)
    assert loc.path == "/2"
    assert loc.username == "user" and loc.password == "p@ss"
    assert loc.query == {"socket_timeout": "1.5"}
    assert "p@ss" not in repr(loc) and "p%40ss" not in loc.masked


def test_parse_multi_host_and_ipv6() -> None:
    loc = parse_url("memcached://h1:11211,h2,[::1]:11212")
    assert loc.hosts == (("h1", 11211), ("h2", None), ("::1", 11212))


def test_parse_paths() -> None:
    assert parse_url("rocksdb:///abs/path").path == "/abs/path"
    assert parse_url("rocksdb://relative/path").hosts == (("relative", None),)
    assert parse_url("memory://").hosts == ()
    named = parse_url("memory://cache1?max_entries=5")
    assert named.hosts == (("cache1", None),) and named.query == {"max_entries": "5"}


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("no-scheme", "no scheme"),
        ("redis://h:99999", "port"),
        ("redis://h:abc", "port"),
        ("redis://h1,,h2", "empty host"),
        ("memory://?a=1&a=2", "twice"),
        ("nosuch://x", "unknown storage URL scheme 'nosuch'"),
    ],
)
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Storage.from_url(url)


def test_bad_url_type() -> None:
    with pytest.raises(ConfigurationError, match="str"):
        Storage.from_url(b"memory://")  # type: ignore[arg-type]


def test_password_masked_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        Storage.from_url("memory://?bogus=1&password=hunter2")
    assert "hunter2" not in str(info.value)
    assert mask_url("redis://:hunter2@h/0") == "redis://:***@h/0"
    assert mask_url("redis://hunter2@h/0") == "redis://***@h/0"
    assert "hunter2" not in mask_url("redis://u:hunter2@h/0?password=hunter2")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"nope": 1}, "unknown option 'nope'"),
        ({"max_entries": "lots"}, "'max_entries' must be an integer"),
        ({"max_entries": 0}, "'max_entries' must be >= 1"),
        ({"max_entries": True}, "'max_entries' must be a number"),
        ({"default_ttl": "soon"}, "'default_ttl' must be a number"),
        ({"default_ttl": float("nan")}, "'default_ttl' must be a finite number"),
        ({"serializer": "yaml"}, "'serializer' must be one of"),
        ({"namespace": 5}, "'namespace' must be a string"),
        ({"secret": 5}, "'secret'"),
    ],
)
def test_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        Storage.from_url("memory://", **options)
    # adapters name the setting to fix from this attribute, never from the message
    assert info.value.option == next(iter(options))


@pytest.mark.parametrize(
    ("url", "options", "option"),
    [
        ("memory://?nope=1&bogus=2", {}, "bogus"),  # the first unknown one, sorted
        ("memory://?namespace=a&namespace=b", {}, "namespace"),
        ("memory://?secret=abc", {}, "secret"),
        ("memory://", {"accept": ["json"]}, "accept"),
        ("memory://", {"sign": "all", "secret": None}, "secret"),
        ("redis://127.0.0.1:1/0", {"read_from_replicas": True}, "read_from_replicas"),
        ("redis://127.0.0.1:1/0", {"protocol": 4}, "protocol"),
        ("redis://127.0.0.1:1/1", {"db": 2}, "db"),
        ("redis://127.0.0.1:1/0", {"ssl_ca_certs": "/ca.pem"}, "ssl_ca_certs"),
        ("redis://127.0.0.1:1/0", {"local_cache": True, "local_clock": 5}, "local_clock"),
        ("redis+sentinel://h/m", {"local_cache": True, "read_from_replicas": True}, "local_cache"),
        ("redis://127.0.0.1:1/0?x=1", {}, "x"),
        ("redis://127.0.0.1:1", {"no_such": 1}, "no_such"),
        ("memcached://127.0.0.1:1", {"socket_timeout": "soon"}, "socket_timeout"),
    ],
)
def test_every_option_error_names_its_option(
    url: str, options: dict[str, object], option: str
) -> None:
    """Checks made past the option table (the codec, a backend's cross-checks) name it too."""
    pytest.importorskip("redis")
    with pytest.raises(ConfigurationError) as info:
        Storage.from_url(url, **options)
    assert info.value.option == option


@pytest.mark.parametrize(
    "url",
    ["bogus://x", "redis://h1,h2/0", "memory://a/b", "no-scheme", "redis://h:99999"],
)
def test_url_errors_name_no_option(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Storage.from_url(url)
    assert info.value.option is None


def test_configuration_errors_keep_their_option_through_pickle() -> None:
    import pickle

    error = ConfigurationError("option 'db' must be an integer", option="db")
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.option) == (str(error), "db")


def test_a_missing_dependency_survives_pickle() -> None:
    """A worker process can hand it back to its parent (multiprocessing pickles exceptions)."""
    import pickle

    from tsot.errors import MissingDependency

    error = MissingDependency("redis", "redis", "redis:// URLs")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is MissingDependency
    assert (str(again), again.package, again.extra) == (str(error), "redis", "redis")


@pytest.mark.parametrize(
    ("call", "url"),
    [
        (lambda: redis_url(), "redis://localhost:6379/0"),
        (lambda: redis_url("::1", 6380, 3, "p@ss/w:rd"), "redis://:p%40ss%2Fw%3Ard@[::1]:6380/3"),
        (lambda: rocksdb_url("/srv/cache dir"), "rocksdb:///srv/cache%20dir"),
        (lambda: memory_url(""), "memory://"),
        (lambda: memory_url("a/b c"), "memory://a%2Fb%20c"),
        (lambda: memcached_url(["unix:/run/mc.sock"]), "memcached:///run/mc.sock"),
        (lambda: memcached_url(["/run/mc.sock", "h:1"]), "memcached://%2Frun%2Fmc.sock,h:1"),
    ],
    ids=[
        "redis-default",
        "redis-ipv6-password",
        "rocksdb",
        "memory",
        "memory-name",
        "memcached-socket",
        "memcached-socket-in-list",
    ],
)
def test_url_builders(call: Any, url: str) -> None:
    """The builders both adapters use give URLs that parse back to what was given."""
    assert call() == url
    parse_url(url)


def test_url_builders_round_trip_what_they_were_given(tmp_path: Path) -> None:
    location = parse_url(redis_url("::1", 6380, 3, "p@ss/w:rd?#"))
    assert (location.hosts, location.path, location.password) == (
        (("::1", 6380),),
        "/3",
        "p@ss/w:rd?#",
    )
    relative = rocksdb_url(os.path.relpath(tmp_path / "db"))
    assert parse_url(relative).path == str(tmp_path / "db")
    assert parse_url(memory_url("a/b c")).hosts == (("a/b c", None),)
    sockets = parse_url(memcached_url(["/run/mc.sock", "h:1"]))
    assert sockets.hosts == (("/run/mc.sock", None), ("h", 1))


@pytest.mark.parametrize("path", ["", 5, None])
def test_rocksdb_url_refuses_what_is_no_path(path: Any) -> None:
    with pytest.raises(ConfigurationError, match="RocksDB directory"):
        rocksdb_url(path)


def test_unknown_option_lists_core_and_backend_options() -> None:
    with pytest.raises(ConfigurationError) as info:
        Storage.from_url("memory://", nope=1)
    assert "serializer" in str(info.value) and "max_entries" in str(info.value)


def test_options_from_url_and_kwargs() -> None:
    s = Storage.from_url("memory://opts?namespace=a&default_ttl=5", namespace="b")
    assert s.namespace == "b"
    s.store("k", 1)
    assert s.ttl("k") is not None and 4 <= s.ttl("k") <= 5  # type: ignore[operator]


def test_secrets_and_objects_not_from_url() -> None:
    with pytest.raises(ConfigurationError, match="'secret' cannot be given in a URL"):
        Storage.from_url("memory://?secret=abc")
    with pytest.raises(ConfigurationError, match="'clock' cannot be given in a URL"):
        Storage.from_url("memory://?clock=abc")


def test_bool_option_parsing() -> None:
    from tsot.config import Option

    opt = Option("flag", bool, False, "")
    assert opt.parse("true") is True and opt.parse("0") is False
    with pytest.raises(ConfigurationError, match="'flag' must be a boolean"):
        opt.parse("maybe")


def test_parse_options_defaults() -> None:
    opts = parse_options({}, CORE_OPTIONS, "test")
    assert opts["serializer"] == "pickle" and opts["namespace"] == ""


def test_register_backend_scheme() -> None:
    register_backend("mymem", MemoryBackend)
    assert backend_class("mymem") is MemoryBackend
    s = Storage.from_url("mymem://reg")
    s.store("k", 1)
    assert Storage.from_url("memory://reg").load("k") == 1


def test_entry_point_backend(tmp_path: object) -> None:
    """A scheme registered through the 'tsot.backends' entry-point group is found."""
    code = """
import importlib.metadata as md, tsot.config as c
class EP:
    name = 'epmem'; value = 'tsot.backends.memory:MemoryBackend'
orig = md.entry_points
md.entry_points = lambda group=None: [EP()] if group == 'tsot.backends' else orig(group=group)
from tsot import Storage
s = Storage.from_url('epmem://x'); s.store('a', 1); assert s.load('a') == 1
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_missing_dependency_names_extra() -> None:
    code = """
import sys
sys.modules['redis'] = None
from tsot import Storage, MissingDependency
try:
    Storage.from_url('redis://127.0.0.1:1/0')
except MissingDependency as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "tsot[redis]"' in out.stdout
    assert issubclass(MissingDependency, ImportError)
