"""One open RocksDB database per path per process: options, error translation, locks, purging."""

from __future__ import annotations

import atexit
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from ...errors import (
    BackendUnavailable,
    ConfigurationError,
    StorageLocked,
    TsotError,
    ValueTooLarge,
    require,
)
from ...keys import shown
from ...logs import limited

Clock = Callable[[], float]

HEADER: Final = struct.Struct(">Q")
"""Every value starts with its deadline: ms since the Unix epoch on the clock, 0 = none."""
HEADER_SIZE: Final = HEADER.size
NO_DEADLINE: Final = bytes(HEADER_SIZE)
STRIPES: Final = 64  # a power of two: a stripe is ``hash(key) & (STRIPES - 1)``
PURGE_BATCH: Final = 1000
"""Keys the sweeper examines per batch; it pauses between batches so foreground work goes first."""
PURGE_PAUSE: Final = 0.005
MIN_DISK_BYTES: Final = 1 << 20


@dataclass(frozen=True)
class DBConfig:
    """The options fixed by whoever opens a path first; a later open must agree with them."""

    block_cache_size: int
    block_compression: str
    max_disk_bytes: int | None
    purge_interval: float | None
    clock: Clock

    def differences(self, other: DBConfig) -> list[str]:
        """Names of the options on which ``other`` disagrees with this one.

        Compared by value: ``clock`` too, so two bound methods of one clock object (a new one
        each time ``obj.now`` is read, as two settings entries do) are the same clock.
        """
        names = ("block_cache_size", "block_compression", "max_disk_bytes", "purge_interval")
        return [name for name in (*names, "clock") if getattr(self, name) != getattr(other, name)]

    @property
    def write_buffer_size(self) -> int:
        """Memtable size: RocksDB's 64 MiB, or 1/16 of a disk bound so eviction is gradual."""
        if self.max_disk_bytes is None:
            return 64 << 20
        return max(64 << 10, min(64 << 20, self.max_disk_bytes // 16))

    @property
    def max_entry_bytes(self) -> int | None:
        """Largest key + value accepted under a disk bound (one memtable's worth)."""
        return None if self.max_disk_bytes is None else self.write_buffer_size


def translate(exc: BaseException, path: str) -> TsotError:
    """The one mapping from rocksdict's plain exceptions to tsot errors (raise it ``from exc``)."""
    if isinstance(exc, TsotError):
        return exc
    text = str(exc)
    if text.startswith("IO error") and "LOCK" in text:  # RocksDB's LOCK file is held
        return StorageLocked(
            f"RocksDB database {path} is in use by another process (RocksDB allows one process "
            "per database directory): stop that process, give each process its own path, or use "
            f"a server backend (redis://, memcached://) to share one cache between processes "
            f"[{text}]"
        )
    if type(exc).__name__ == "DbClosedError":
        return BackendUnavailable(
            f"RocksDB database {path} was closed in this process; open a new Storage [{text}]"
        )
    return BackendUnavailable(f"RocksDB database {path} failed: {text}")


def successor(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


class Handle:
    """An open database plus what every store on it shares: stripe locks, clock, sweeper, stats.

    Writers of a key hold its stripe lock, so removing an expired entry (re-checked under the
    same lock) can never delete a value written in the meantime.
    """

    def __init__(self, path: str, config: DBConfig) -> None:
        rocksdict: Any = require("rocksdict", "rocksdict", "rocksdb", "The rocksdb:// backend")
        self.path = path
        self.pid = os.getpid()
        self.config = config
        self.clock = config.clock
        self.hits = 0
        self.misses = 0
        self.locks = [threading.Lock() for _ in range(STRIPES)]
        self._closed = False
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.sync_write = rocksdict.WriteOptions()
        self.sync_write.sync = True
        self.fast_write = rocksdict.WriteOptions()
        self.purge_write = rocksdict.WriteOptions()
        self.purge_write.low_pri = True
        self._WriteBatch = rocksdict.WriteBatch
        try:
            os.makedirs(path, exist_ok=True)
            self.db = rocksdict.Rdict(path, _db_options(rocksdict, config))
        except Exception as exc:
            raise translate(exc, path) from exc
        if config.max_disk_bytes is not None:
            self._check_fifo_levels()
        if config.purge_interval is not None:
            self._sweeper = threading.Thread(
                target=self._sweep_forever,
                args=(config.purge_interval,),
                name=f"tsot-rocksdb-purge {path}",
                daemon=True,
            )
            self._sweeper.start()
        atexit.register(self.close)

    def _check_fifo_levels(self) -> None:
        # FIFO compaction (how max_disk_bytes is enforced) only drops level-0 files; a database
        # built without the bound keeps its data in deeper levels, which would never be dropped.
        deep = [
            level
            for level in range(1, 7)
            if (self.db.property_int_value(f"rocksdb.num-files-at-level{level}") or 0) > 0
        ]
        if deep:
            self.close()
            raise ConfigurationError(
                f"option 'max_disk_bytes' cannot bound RocksDB database {self.path}: it was "
                "created without the bound (its files are compacted into deeper levels). Open it "
                "without max_disk_bytes, or delete the directory (it holds only cache data) to "
                "start a bounded one",
                option="max_disk_bytes",
            )

    @property
    def closed(self) -> bool:
        return self._closed

    def new_batch(self) -> Any:
        """An empty rocksdict WriteBatch for this (raw-mode) database."""
        return self._WriteBatch(raw_mode=True)

    # -- locks -------------------------------------------------------------------------------

    def lock(self, key: bytes) -> threading.Lock:
        return self.locks[hash(key) & (STRIPES - 1)]

    @contextmanager
    def locked(self, keys: Iterable[bytes]) -> Iterator[None]:
        """Hold the stripe locks of every key, taken in one global order (no deadlock)."""
        held = [self.locks[i] for i in sorted({hash(k) & (STRIPES - 1) for k in keys})]
        for lock in held:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(held):
                lock.release()

    # -- time --------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def header(self, ttl_ms: int | None) -> bytes:
        return NO_DEADLINE if ttl_ms is None else HEADER.pack(self.now_ms() + ttl_ms)

    def check_size(self, key: bytes, value: bytes) -> None:
        limit = self.config.max_entry_bytes
        if limit is not None and len(key) + len(value) > limit:
            raise ValueTooLarge(
                f"value for key {shown(key)} is {len(value)} bytes; RocksDB database {self.path} "
                f"takes entries of at most {limit} bytes (1/16 of max_disk_bytes)"
            )

    # -- expired entries ---------------------------------------------------------------------

    def drop_expired(self, keys: Sequence[bytes]) -> int:
        """Delete those of ``keys`` that are still expired; return how many were deleted.

        The deletes are not synced: if a crash loses one, the entry is still expired on reopen.
        """
        batch = self.new_batch()
        with self.locked(keys):
            now = self.now_ms()
            for key, raw in zip(keys, self.db.get(list(keys)), strict=True):
                if raw is not None and 0 < HEADER.unpack_from(raw)[0] <= now:
                    batch.delete(key)
            count = len(batch)
            if count:
                self.db.write(batch, self.purge_write)
        return count

    def purge_expired(self, batch_size: int = PURGE_BATCH, pause: float = 0.0) -> int:
        """Walk every key in batches and delete the expired ones; return how many went.

        Each batch uses a fresh iterator, so a long walk never pins old files or memtables.
        """
        purged = 0
        cursor: bytes | None = b""
        while cursor is not None and not self._stop.is_set():
            expired: list[bytes] = []
            try:
                it = self.db.iter()
                it.seek(cursor)
                now = self.now_ms()
                seen = 0
                while it.valid() and seen < batch_size:
                    raw = it.value()
                    if 0 < HEADER.unpack_from(raw)[0] <= now:
                        expired.append(it.key())
                    seen += 1
                    it.next()
                cursor = it.key() if it.valid() else None
                del it
                if expired:
                    purged += self.drop_expired(expired)
            except Exception as exc:
                raise translate(exc, self.path) from exc
            if pause:
                time.sleep(pause)
        return purged

    def _sweep_forever(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.purge_expired(pause=PURGE_PAUSE)
            except Exception as exc:  # keep sweeping: a failed pass is retried next interval
                if self._stop.is_set():
                    return
                limited.warning(
                    "rocksdb-purge",
                    "tsot: purging expired entries of %s failed: %s",
                    self.path,
                    exc,
                )

    # -- lifetime ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int | None]:
        try:
            keys = self.db.property_int_value("rocksdb.estimate-num-keys")
        except Exception as exc:
            raise translate(exc, self.path) from exc
        return {"hits": self.hits, "misses": self.misses, "keys": keys}

    def close(self) -> None:
        """Stop the sweeper and close the database (idempotent); stores using it then fail."""
        if self._closed or os.getpid() != self.pid:
            # A forked child inherits this object but not the database: closing it there would
            # flush the parent's memtables from a second process.
            return
        self._closed = True
        self._stop.set()
        if self._sweeper is not None and self._sweeper is not threading.current_thread():
            self._sweeper.join(10)
        try:
            self.db.close()
        except Exception as exc:
            limited.warning("rocksdb-close", "tsot: closing RocksDB %s failed: %s", self.path, exc)
        atexit.unregister(self.close)


def _db_options(rocksdict: Any, config: DBConfig) -> Any:
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    table = rocksdict.BlockBasedOptions()
    if config.block_cache_size:
        table.set_block_cache(rocksdict.Cache(config.block_cache_size))
    else:
        table.disable_cache()
    # A bloom filter answers most misses without reading a data block; the hash index inside
    # data blocks speeds up point reads, the common case for a cache.
    table.set_bloom_filter(10, False)
    table.set_data_block_index_type(rocksdict.DataBlockIndexType.binary_and_hash())
    opts.set_block_based_table_factory(table)
    opts.set_compression_type(getattr(rocksdict.DBCompressionType, config.block_compression)())
    opts.set_write_buffer_size(config.write_buffer_size)
    # RocksDB keeps up to 1000 info logs by default; a cache directory should not grow by logs.
    opts.set_keep_log_file_num(2)
    opts.set_max_log_file_size(1 << 20)
    if config.max_disk_bytes is not None:
        # FIFO compaction is RocksDB's own bounded-cache mode: when the table files exceed the
        # budget, the oldest file goes whole. Room is left for the WAL and memtables.
        budget = config.max_disk_bytes - 4 * config.write_buffer_size
        fifo = rocksdict.FifoCompactOptions()
        fifo.max_table_files_size = max(config.write_buffer_size, budget)
        opts.set_compaction_style(rocksdict.DBCompactionStyle.fifo())
        opts.set_fifo_compaction_options(fifo)
        opts.set_max_total_wal_size(2 * config.write_buffer_size)
    return opts
