"""``stats()`` under fail_open: the server's counters while it is up, None while it is out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.servers.memcached import start_memcached
from tsot import AsyncStorage, Storage

pytestmark = pytest.mark.server


def test_stats_with_fail_open_sync_and_async(tmp_path: Path) -> None:
    server = start_memcached(tmp_path, "stats")
    try:
        url = f"memcached://127.0.0.1:{server.port}?dead_timeout=0"
        store = Storage.from_url(url, namespace="st", fail_open=True)
        store.store("k", 1)
        assert store.load("k") == 1
        live = store.stats()
        assert live["url"] == url and isinstance(live["hits"], int) and live["hits"] >= 1

        async def astats() -> dict[str, object]:
            return await AsyncStorage.from_url(url, namespace="st", fail_open=True).stats()

        assert isinstance(asyncio.run(astats())["keys"], int)
        server.kill()
        out = store.stats()  # a stats page keeps working through the outage
        assert out["url"] == url and out["hits"] is None and out["keys"] is None
        assert asyncio.run(astats())["hits"] is None
    finally:
        server.stop()
