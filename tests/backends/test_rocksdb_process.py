"""RocksDB across processes: the directory lock, a writer killed by SIGKILL, lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tsot import Storage, StorageLocked
from tsot.backends.rocksdb import close_database

ROOT = Path(__file__).resolve().parents[2]


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter (repo root importable), stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


HOLDER = """
    import sys
    from tsot import Storage
    s = Storage.from_url("rocksdb://" + sys.argv[1])
    s.store("owner", "child")
    print("ready", flush=True)
    import time
    time.sleep(60)  # holds the database until the test kills it
"""


def test_second_process_gets_storage_locked(rocksdb_path: Path) -> None:
    child = python(HOLDER, str(rocksdb_path))
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr
        storage = Storage.from_url(f"rocksdb://{rocksdb_path}")  # no lock taken yet
        started = time.monotonic()
        with pytest.raises(StorageLocked) as info:
            storage.load("owner")
        assert time.monotonic() - started < 2  # an error at once, not a wait for the lock
        message = str(info.value)
        assert str(rocksdb_path) in message
        assert "another process" in message and "server backend" in message
    finally:
        child.kill()
        child.communicate(timeout=10)
    # the failed open cached nothing: once the other process is gone, the path opens
    assert Storage.from_url(f"rocksdb://{rocksdb_path}").load("owner") == "child"


WRITER = """
    import sys
    from tsot import Storage
    s = Storage.from_url("rocksdb://" + sys.argv[1], sync_writes=sys.argv[2] == "1")
    i = 0
    while True:
        if i % 10 == 9:
            s.store_many({f"k{i}": i, f"m{i}": "many"})
        else:
            s.store(f"k{i}", i, ttl=3600 if i % 2 else None)
        s.incr("acked")
        print(i, flush=True)
        i += 1
"""


@pytest.mark.parametrize("sync_writes", [True, False], ids=["sync_writes", "os_buffered"])
def test_writer_killed_mid_stream_keeps_acknowledged_writes(
    rocksdb_path: Path, sync_writes: bool
) -> None:
    """Durable writes survive SIGKILL; so do unsynced ones (the WAL is in the OS already)."""
    child = python(WRITER, str(rocksdb_path), "1" if sync_writes else "0")
    assert child.stdout is not None
    acked = -1
    try:
        for line in child.stdout:
            acked = int(line)
            if acked >= 300:
                break
    finally:
        child.kill()  # SIGKILL, while it is writing the next items
        _, err = child.communicate(timeout=10)
    assert acked >= 300, err
    s = Storage.from_url(f"rocksdb://{rocksdb_path}")
    got = s.load_many([f"k{i}" for i in range(acked + 1)])
    assert got == {f"k{i}": i for i in range(acked + 1)}
    assert s.load_many([f"m{i}" for i in range(9, acked + 1, 10)]) == {
        f"m{i}": "many" for i in range(9, acked + 1, 10)
    }
    assert (s.load_int("acked") or 0) >= acked + 1  # the writer may have run ahead of what we read
    assert 3500 < (s.ttl("k1") or 0) <= 3600
    close_database(str(rocksdb_path))


def test_importing_the_backend_does_not_import_rocksdict() -> None:
    child = python(
        """
        import sys
        import tsot, tsot.backends.rocksdb.backend
        print("rocksdict" in sys.modules)
        """
    )
    out, err = child.communicate(timeout=30)
    assert out.strip() == "False", err
