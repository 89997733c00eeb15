"""Many-key calls of any size on the local backends, sync and asyncio: memory and RocksDB have no
socket to fill (RocksDB reads with one multi-get and writes with one write batch), so 250,000
keys go through in one call like a handful; the network backends' tests sit beside this one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import LoopThread, SyncView
from tsot import AsyncStorage, Storage

pytestmark = pytest.mark.slow

N = 250_000


@pytest.fixture(params=["sync", "async"])
def opener(request: pytest.FixtureRequest) -> Any:
    loop = LoopThread() if request.param == "async" else None

    def open_store(url: str) -> Any:
        if loop is None:
            return Storage.from_url(url, namespace="big")
        return SyncView(AsyncStorage.from_url(url, namespace="big"), loop)

    yield open_store
    if loop is not None:
        loop.stop()


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_250000_keys_in_one_call(opener: Any, kind: str, tmp_path: Path) -> None:
    url = (
        "memory://big-batches?max_entries=300000"
        if kind == "memory"
        else f"rocksdb://{tmp_path}/db"
    )
    store = opener(url)
    try:
        mapping = {f"key-{i}": i for i in range(N)}
        store.store_many(mapping, ttl=600)
        got = store.load_many(list(mapping))
        assert got == mapping
        assert store.delete_many(list(mapping)) == N
        assert store.load_many(["key-0", f"key-{N - 1}"]) == {}
    finally:
        store.close()
