"""Lazy start: building a Storage, a Django cache or a Flask cache opens no socket and takes no
RocksDB lock; the first use does (once, even when threads race for it)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_caching import Cache

import tsot_django
from tests.servers.memcached import start_memcached
from tests.servers.proc import Server
from tests.servers.redis import start_single
from tsot import AsyncStorage, ConfigurationError, Storage
from tsot.backends.rocksdb import RocksDBBackend, close_database
from tsot.lazy import Deferred

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module only: every connection it sees was made here."""
    server = start_single(tmp_path_factory.mktemp("lazy-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_memcached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_memcached(tmp_path_factory.mktemp("lazy-mc"), "lazy-memcached")
    yield server
    server.stop()


def settled(read: Callable[[], int]) -> int:
    """``read()`` once it gives the same count three times running: a server forgets a closed
    connection (such as the last count's own) a moment after the client closes it."""
    last, same = read(), 1
    for _ in range(100):
        if same == 3:
            break
        time.sleep(0.02)
        now = read()
        same = same + 1 if now == last else 1
        last = now
    return last


def redis_clients(port: int) -> int:
    """Connections the server has, not counting the one that asks."""
    import redis

    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as raw:
        return len(raw.client_list()) - 1


def memcached_connections(port: int) -> int:
    """``curr_connections`` minus the asking connection (memcached counts its listener too)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = conn.recv(65536)
            assert chunk, "memcached closed the stats connection"
            data += chunk
    for line in data.decode().splitlines():
        parts = line.split()
        if parts[:2] == ["STAT", "curr_connections"]:
            return int(parts[2]) - 1
    raise AssertionError("no curr_connections in memcached stats")


def build_all(
    url: str, django_cls: type[tsot_django.TsotCache], django_loc: Any, flask: dict[str, Any]
) -> list[Any]:
    """Every kind of object a site builds for one storage, none of them used."""
    made: list[Any] = [
        Storage.from_url(url, secret=None),
        AsyncStorage.from_url(url, secret=None),
        Storage.from_url(url, secret=None, fail_open=True),
        django_cls(django_loc, {"OPTIONS": {"SIGNING": False}}),
    ]
    app = Flask("lazy")
    app.config.update(flask, SECRET_KEY="s" * 32)
    cache = Cache(app)
    with app.app_context():
        made.append(cache.cache)  # the tsot_flask backend Cache(app) built
    return made


def test_redis_constructors_connect_nothing(own_redis: Server) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/3"
    before = settled(lambda: redis_clients(own_redis.port))
    made = build_all(
        url,
        tsot_django.RedisCache,
        url,
        {"CACHE_TYPE": "tsot_flask.RedisCache", "CACHE_REDIS_URL": url},
    )
    assert settled(lambda: redis_clients(own_redis.port)) == before
    storage, astorage = made[0], made[1]
    storage.store("k", "v")  # first use connects
    assert storage.load("k") == "v"
    assert asyncio.run(astorage.load("k")) == "v"
    assert made[3].get("nothing") is None
    assert redis_clients(own_redis.port) > before


def test_memcached_constructors_connect_nothing(own_memcached: Server) -> None:
    hostport = f"127.0.0.1:{own_memcached.port}"
    url = f"memcached://{hostport}"
    before = settled(lambda: memcached_connections(own_memcached.port))
    made = build_all(
        url,
        tsot_django.MemcachedCache,
        hostport,
        {"CACHE_TYPE": "tsot_flask.MemcachedCache", "CACHE_MEMCACHED_SERVERS": [hostport]},
    )
    assert settled(lambda: memcached_connections(own_memcached.port)) == before
    storage = made[0]
    storage.store("k", "v")
    assert storage.load("k") == "v"
    assert memcached_connections(own_memcached.port) > before


OTHER_PROCESS = """
    import sys
    from tsot import Storage
    s = Storage.from_url("rocksdb://" + sys.argv[1])
    s.store("owner", "other process")
    print(s.load("owner"), flush=True)
"""


def test_rocksdb_constructors_take_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "db"
    url = f"rocksdb://{path}"
    made = build_all(
        url,
        tsot_django.RocksDBCache,
        str(path),
        {"CACHE_TYPE": "tsot_flask.RocksDBCache", "CACHE_DIR": str(path)},
    )
    try:
        # another process (a reloader's child, a worker) can open the directory
        child = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(OTHER_PROCESS), str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "other process"
        # and this one opens it on first use, once the other has let go
        assert made[0].load("owner") == "other process"
        made[4].set("flask", 1)  # the Flask cache opens the same database
        assert made[4].get("flask") == 1
    finally:
        close_database(str(path))


def test_bad_configuration_still_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="purge_interval"):
        Storage.from_url(f"rocksdb://{tmp_path}/db", purge_interval="often")
    with pytest.raises(ConfigurationError, match="memcached has no user or password"):
        Storage.from_url("memcached://user:pw@127.0.0.1:11211")
    with pytest.raises(ConfigurationError, match="db"):
        Storage.from_url("redis://127.0.0.1:1/notadb")


def test_racing_threads_open_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real_open = RocksDBBackend.open.__func__  # type: ignore[attr-defined]

    def counting_open(cls: type, *args: Any) -> Any:
        opened.append(threading.get_ident())
        return real_open(cls, *args)

    monkeypatch.setattr(RocksDBBackend, "open", classmethod(counting_open))
    path = tmp_path / "db"
    storage = Storage.from_url(f"rocksdb://{path}")
    assert isinstance(storage._b, Deferred) and not opened
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[Any] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            storage.store(f"k{i}", i)
            results.append(storage.load(f"k{i}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        assert sorted(results) == list(range(workers))
        assert len(opened) == 1
        assert not isinstance(storage._b, Deferred)  # later calls go straight to the backend
    finally:
        close_database(str(path))


def test_closed_before_first_use_stays_closed(tmp_path: Path) -> None:
    storage = Storage.from_url(f"rocksdb://{tmp_path}/db")
    storage.close()
    with pytest.raises(Exception, match="closed"):
        storage.load("k")


def test_listener_attached_before_first_use_opens_nothing_and_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "db"
    storage = Storage.from_url(f"rocksdb://{path}", fail_open=True)
    seen: list[str] = []
    storage.listen(lambda event: seen.append(event.operation))
    assert isinstance(storage._b, Deferred) and not path.exists()  # still nothing opened
    try:
        storage.store("k", 1)
        assert storage.load("k") == 1
        assert seen == ["set", "get"]
        assert not isinstance(storage._b, Deferred)
        assert type(storage._b).__name__ == "FailOpen"  # the observer sits inside the guard
    finally:
        close_database(str(path))
