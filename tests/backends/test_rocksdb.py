"""RocksDB backend, in one process: URLs, options, sharing, format, TTL purge, disk bound, async."""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FakeClock
from tsot import (
    AsyncStorage,
    BackendUnavailable,
    ConfigurationError,
    Storage,
    ValueTooLarge,
)
from tsot.backends.base import DirectAsync
from tsot.backends.rocksdb.backend import RocksDBStore, ThreadedWritesAsync, close_database
from tsot.backends.rocksdb.handle import HEADER, Handle, successor


def handle_of(store: Storage) -> Handle:
    backend = store.backend
    assert isinstance(backend, RocksDBStore)
    return backend.handle


def raw_keys(handle: Handle) -> list[bytes]:
    """Every key physically in the database, expired or not (no TTL filtering)."""
    return list(handle.db.keys())


def poll(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Bounded polling for work a background thread does on its own time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# -- URLs and options -------------------------------------------------------------------------


def test_absolute_url(rocksdb_path: Path) -> None:
    with Storage.from_url(f"rocksdb://{rocksdb_path}") as s:
        s.store("k", "v")
        assert s.load("k") == "v"
    assert (rocksdb_path / "CURRENT").is_file()


def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        s = Storage.from_url("rocksdb://rel/cache")
        s.store("k", 1)
        assert handle_of(s).path == os.path.realpath(tmp_path / "rel" / "cache")
        assert (tmp_path / "rel" / "cache" / "CURRENT").is_file()
        # another spelling of the same directory shares the handle
        t = Storage.from_url(f"rocksdb://{tmp_path}/rel/./cache")
        assert handle_of(t) is handle_of(s)
        assert t.load("k") == 1
    finally:
        close_database(str(tmp_path / "rel" / "cache"))


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("rocksdb://", "names no directory"),
        ("rocksdb:///", "names no directory"),
        ("rocksdb://host:1234/db", "rocksdb:///absolute/path"),
        ("rocksdb://a,b/db", "rocksdb:///absolute/path"),
        ("rocksdb://user:pw@dir/db", "user or password"),
    ],
)
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Storage.from_url(url)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"sync_writes": "maybe"}, "sync_writes"),
        ({"block_cache_size": -1}, "block_cache_size"),
        ({"block_cache_size": "big"}, "block_cache_size"),
        ({"block_compression": "gzip"}, "block_compression"),
        ({"max_disk_bytes": 1000}, "max_disk_bytes"),
        ({"purge_interval": 0}, "purge_interval"),
        ({"clock": "now"}, "clock"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_options(rocksdb_path: Path, options: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Storage.from_url(f"rocksdb://{rocksdb_path}", **options)
    assert not (rocksdb_path / "CURRENT").exists()  # nothing opened or created


def test_options_in_the_url(rocksdb_path: Path) -> None:
    url = (
        f"rocksdb://{rocksdb_path}?sync_writes=true&block_cache_size=0"
        "&block_compression=zstd&purge_interval=none"
    )
    s = Storage.from_url(url)
    assert s.backend.sync_writes is True  # type: ignore[attr-defined]
    config = handle_of(s).config
    assert (config.block_cache_size, config.block_compression) == (0, "zstd")
    assert config.purge_interval is None
    s.store("k", b"v")
    assert s.load("k") == b"v"
    with pytest.raises(ConfigurationError, match="clock"):
        Storage.from_url(f"rocksdb://{rocksdb_path}?clock=x")


def test_database_options_must_agree_within_a_process(rocksdb_path: Path) -> None:
    url = f"rocksdb://{rocksdb_path}"
    Storage.from_url(url, block_cache_size=1 << 20).store("k", 0)
    other = Storage.from_url(url, block_cache_size=2 << 20)  # the directory opens on first use
    with pytest.raises(ConfigurationError, match="block_cache_size"):
        other.load("k")
    # sync_writes is per Storage, so it may differ
    durable = Storage.from_url(url, block_cache_size=1 << 20, sync_writes=True)
    durable.store("k", 1)
    assert Storage.from_url(url, block_cache_size=1 << 20).load("k") == 1


# -- one handle per directory -----------------------------------------------------------------


def test_one_handle_shared_by_stores_and_kept_by_close(rocksdb_url: str) -> None:
    a = Storage.from_url(rocksdb_url, namespace="a")
    b = Storage.from_url(rocksdb_url, namespace="b")
    assert handle_of(a) is handle_of(b)
    a.store("k", 1)
    a.close()
    b.store("k", 2)
    assert Storage.from_url(rocksdb_url, namespace="a").load("k") == 1
    assert not handle_of(b).closed


def test_closed_database_is_a_clear_error_then_reopens(rocksdb_path: Path) -> None:
    url = f"rocksdb://{rocksdb_path}"
    s = Storage.from_url(url)
    s.store("k", 1)
    assert close_database(str(rocksdb_path)) is True
    assert close_database(str(rocksdb_path)) is False
    with pytest.raises(BackendUnavailable, match=str(rocksdb_path)):
        s.load("k")
    assert Storage.from_url(url).load("k") == 1


# -- on-disk format, reopen -------------------------------------------------------------------


def test_on_disk_format(rocksdb_path: Path, clock: FakeClock) -> None:
    s = Storage.from_url(f"rocksdb://{rocksdb_path}", clock=clock, namespace="ns")
    s.store("forever", 7)
    s.store("short", "x", ttl=2.5)
    db = handle_of(s).db
    assert db.get(b"ns:forever") == bytes(8) + b"7"
    raw = db.get(b"ns:short")
    assert HEADER.unpack_from(raw)[0] == int(clock.now * 1000) + 2500
    assert raw[8:] == s.codec.encode("x")


class _Planted:
    """A pickle that runs code when loaded: what a writer of the directory could plant."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("raise SystemExit('planted pickle ran')",))


def test_bytes_planted_after_a_verified_read_are_verified(rocksdb_path: Path) -> None:
    """A re-read of the bytes last verified skips the HMAC (codec.Verified); bytes written
    into the directory after that read, under the MAC and tag that verified, are refused."""
    s = Storage.from_url(f"rocksdb://{rocksdb_path}", secret="s" * 32, namespace="ns")
    s.store("perm", {"admin": False})
    assert s.load("perm") == {"admin": False}
    assert s.load("perm") == {"admin": False}  # the remembered bytes
    db = handle_of(s).db
    good = db.get(b"ns:perm")
    db.put(b"ns:perm", good[: 8 + 34] + pickle.dumps(_Planted()))
    assert s.load("perm", "refused") == "refused"
    assert s.load_many(["perm"]) == {}
    db.put(b"ns:other", good)  # a verified value copied to another key
    assert s.load("other", "refused") == "refused"
    db.put(b"ns:perm", good)  # the genuine bytes again
    assert s.load("perm") == {"admin": False}


def test_reopen_keeps_data_and_ttls(rocksdb_path: Path, clock: FakeClock) -> None:
    url = f"rocksdb://{rocksdb_path}"
    s = Storage.from_url(url, clock=clock)
    s.store("forever", {"a": 1})
    s.store("hour", "h", ttl=3600)
    s.incr("n", 5)
    s.expire("n", 60)
    close_database(str(rocksdb_path))
    clock.advance(30)
    r = Storage.from_url(url, clock=clock)
    assert handle_of(r) is not handle_of(s)
    assert r.load("forever") == {"a": 1}
    assert r.ttl("forever") == math.inf
    assert r.ttl("hour") == pytest.approx(3570, abs=0.01)
    assert r.incr("n") == 6
    assert r.ttl("n") == pytest.approx(30, abs=0.01)
    clock.advance(31)
    assert r.load("n") is None
    assert r.load("hour") == "h"


# -- TTL purge --------------------------------------------------------------------------------


def test_expired_entry_is_removed_on_read(rocksdb_url: str, clock: FakeClock) -> None:
    s = Storage.from_url(rocksdb_url, clock=clock, purge_interval=None)
    s.store_many({"a": 1, "b": 2, "c": 3}, ttl=1)
    s.store("keep", 0)
    clock.advance(2)
    assert s.load("a") is None
    assert s.load_many(["b", "keep"]) == {"keep": 0}
    assert sorted(raw_keys(handle_of(s))) == [b"c", b"keep"]  # c was never read


def test_background_purge_removes_expired_entries(rocksdb_url: str, clock: FakeClock) -> None:
    s = Storage.from_url(rocksdb_url, clock=clock, purge_interval=0.02)
    h = handle_of(s)
    s.store_many({f"t{i}": i for i in range(2500)}, ttl=10)  # more than one purge batch
    s.store_many({f"p{i}": i for i in range(5)})
    clock.advance(5)
    time.sleep(0.1)  # a few sweeps run: nothing is expired yet
    assert len(raw_keys(h)) == 2505
    clock.advance(6)
    assert poll(lambda: len(raw_keys(h)) == 5), len(raw_keys(h))
    assert s.load_many([f"p{i}" for i in range(5)]) == {f"p{i}": i for i in range(5)}


def test_purge_pass_and_rewrite_race(rocksdb_url: str, clock: FakeClock) -> None:
    s = Storage.from_url(rocksdb_url, clock=clock, purge_interval=None)
    h = handle_of(s)
    s.store_many({f"k{i}": i for i in range(10)}, ttl=1)
    clock.advance(2)
    s.store("k0", "rewritten")  # written after expiring, before the purge reaches it
    assert h.drop_expired([b"k0"]) == 0
    assert h.purge_expired(batch_size=3) == 9
    assert raw_keys(h) == [b"k0"]
    assert s.load("k0") == "rewritten"


def test_expired_values_are_invisible_to_every_operation(
    rocksdb_url: str, clock: FakeClock
) -> None:
    s = Storage.from_url(rocksdb_url, clock=clock, purge_interval=None)
    for key in ("get", "exists", "ttl", "incr", "add", "expire", "delete", "many"):
        s.store(key, 41, ttl=1)
    clock.advance(1.001)
    assert s.load("get") is None
    assert not s.exists("exists")
    assert s.ttl("ttl") is None
    assert s.incr("incr") == 1
    assert s.ttl("incr") == math.inf  # a new counter, not the expired one's deadline
    assert s.add("add", "new") is True
    assert s.expire("expire", 10) is False
    assert s.delete("delete") is False
    assert s.delete_many(["many"]) == 0
    with pytest.raises(KeyError):
        s.incr("many", create=False)


# -- clear ------------------------------------------------------------------------------------


def test_successor() -> None:
    assert successor(b"ns:") == b"ns;"
    assert successor(b"a\xff\xff") == b"b"
    assert successor(b"\xff") is None
    assert successor(b"") is None


def test_clear_everything_includes_high_keys(rocksdb_url: str) -> None:
    s = Storage.from_url(rocksdb_url)
    keys: list[str | bytes] = ["", "a", "\uffff", b"\xff", b"\xff\xff\xff\xff"]
    for i, key in enumerate(keys):
        s.store(key, i)
    s.clear()
    assert s.load_many(keys) == {}
    assert raw_keys(handle_of(s)) == []
    s.clear()  # an empty database is fine too
    s.store("after", 1)
    assert s.load("after") == 1


def test_clear_namespace_is_one_range_delete(rocksdb_url: str) -> None:
    a = Storage.from_url(rocksdb_url, namespace="a")
    ab = Storage.from_url(rocksdb_url, namespace="ab")  # shares the first byte, not the prefix
    a.store_many({f"k{i}": i for i in range(100)})
    ab.store("k", "kept")
    db = handle_of(a).db
    seq = db.latest_sequence_number()
    a.clear()
    assert db.latest_sequence_number() == seq + 1  # one write, not 100 point deletes
    assert db.property_int_value("rocksdb.num-deletes-active-mem-table") == 0
    assert a.load_many([f"k{i}" for i in range(100)]) == {}
    assert ab.load("k") == "kept"


# -- disk bound -------------------------------------------------------------------------------


def dir_size(path: Path) -> int:
    """The bytes of the files in ``path``; a file that compaction deletes meanwhile counts 0."""
    total = 0
    for f in path.iterdir():
        try:
            if f.is_file():
                total += f.stat().st_size
        except FileNotFoundError:
            pass
    return total


def test_max_disk_bytes_drops_the_oldest_writes(rocksdb_path: Path) -> None:
    bound = 2 << 20
    s = Storage.from_url(f"rocksdb://{rocksdb_path}", max_disk_bytes=bound)
    h = handle_of(s)
    for batch in range(80):  # 8 MB of incompressible data, four times the bound
        s.store_many({f"k{batch:03d}-{i:03d}": os.urandom(100) for i in range(1000)})
    h.db.flush()
    assert poll(lambda: dir_size(rocksdb_path) <= bound), dir_size(rocksdb_path)
    assert s.load("k000-000") is None
    assert s.load_raw("k079-999") is not None
    with pytest.raises(ValueTooLarge, match="max_disk_bytes"):
        s.store("huge", b"x" * (bound // 8))
    assert s.load("huge") is None


def test_max_disk_bytes_on_an_unbounded_database(rocksdb_path: Path) -> None:
    url = f"rocksdb://{rocksdb_path}"
    s = Storage.from_url(url)
    s.store_many({f"k{i}": i for i in range(1000)})
    handle_of(s).db.compact_range(None, None)  # moves the data below level 0
    close_database(str(rocksdb_path))
    bounded = Storage.from_url(url, max_disk_bytes=1 << 30)
    with pytest.raises(ConfigurationError, match=r"max_disk_bytes.*created without the bound"):
        bounded.load("k5")
    assert Storage.from_url(url).load("k5") == 5  # still usable without the bound


# -- async path, stats ------------------------------------------------------------------------


async def test_async_paths(rocksdb_url: str) -> None:
    fast = AsyncStorage.from_url(rocksdb_url, namespace="fast")
    durable = AsyncStorage.from_url(rocksdb_url, namespace="durable", sync_writes=True)
    assert type(fast.backend) is DirectAsync
    assert type(durable.backend) is ThreadedWritesAsync
    await asyncio.gather(*(durable.incr("n") for _ in range(50)))
    await durable.store_many({"a": 1, "b": 2}, ttl=60)
    assert await durable.load_many(["a", "b", "n"]) == {"a": 1, "b": 2, "n": 50}
    assert await fast.load("n") is None
    await durable.clear()
    assert await durable.exists("n") is False


def test_stats_count_hits_and_misses(rocksdb_url: str) -> None:
    s = Storage.from_url(rocksdb_url)
    s.store_many({"a": 1, "b": 2})
    s.load("a")
    s.load_many(["a", "b", "c"])
    s.load("c")
    stats = s.stats()
    assert (stats["hits"], stats["misses"]) == (3, 2)
    assert stats["keys"] == 2


def test_unusable_directory_is_backend_unavailable(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(BackendUnavailable, match=str(not_a_dir)) as info:
        Storage.from_url(f"rocksdb://{not_a_dir}").load("k")
    assert info.value.__cause__ is not None  # the driver's error is chained


def test_corrupt_database_is_backend_unavailable(rocksdb_path: Path) -> None:
    rocksdb_path.mkdir()
    (rocksdb_path / "CURRENT").write_text("MANIFEST-999999\n")  # names a missing manifest
    with pytest.raises(BackendUnavailable, match=f"RocksDB database {rocksdb_path} failed"):
        Storage.from_url(f"rocksdb://{rocksdb_path}").load("k")
