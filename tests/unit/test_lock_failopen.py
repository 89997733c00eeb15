"""Locks never fail open: an unreachable server raises from the lock even with fail_open=True,
while the Storage's own ``add`` fails open (False)."""

from __future__ import annotations

import asyncio

import pytest

from tests.servers.proc import free_port
from tsot import AsyncStorage, BackendUnavailable, Storage

OPTIONS = {"fail_open": True, "socket_timeout": 0.2, "socket_connect_timeout": 0.2, "secret": None}


def _dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def test_sync_lock_raises_while_add_fails_open() -> None:
    with Storage.from_url(_dead_url(), **OPTIONS) as storage:
        assert storage.add("job", 1) is False  # fail_open: a skipped write
        with pytest.raises(BackendUnavailable):
            storage.lock("job", timeout=5).acquire(blocking=False)


def test_async_lock_raises_while_add_fails_open() -> None:
    async def run() -> None:
        storage = AsyncStorage.from_url(_dead_url(), **OPTIONS)
        assert await storage.add("job", 1) is False
        with pytest.raises(BackendUnavailable):
            await storage.lock("job", timeout=5).acquire(blocking=False)
        await storage.close()

    asyncio.run(run())
