"""RocksDB fixtures: no server, a fresh database directory per test (with an injected clock).

PYTEST_DONT_REWRITE: tests/contract/registry.py imports this module before pytest loads it as
a plugin, so it cannot be assertion-rewritten (and holds no asserts).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.registry import Spec, Target
from tests.helpers import FakeClock

CONTRACT_SPECS = [Spec("rocksdb", "rocksdb_target")]


def _close(path: Path) -> None:
    from tsot.backends.rocksdb import close_database

    close_database(str(path))


@pytest.fixture
def rocksdb_path(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory for one database; its handle is closed after the test."""
    path = tmp_path / "rocksdb"
    yield path
    _close(path)


@pytest.fixture
def rocksdb_url(rocksdb_path: Path) -> str:
    """A storage URL opening a clean database in a fresh directory (real clock)."""
    return f"rocksdb://{rocksdb_path}"


@pytest.fixture
def rocksdb_target(rocksdb_url: str, clock: FakeClock) -> Target:
    """The contract target: a fresh database whose TTLs run on a fake clock."""
    return Target(
        url=rocksdb_url,
        options={"clock": clock},
        advance=clock.advance,
        caps=frozenset({"clock", "bigint"}),
    )
