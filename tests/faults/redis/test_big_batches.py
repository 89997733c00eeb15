"""Many-key batches of any size: requests go out in runs of at most 10,000 arguments and each
run's replies are read before the next, every MGET/MSET/UNLINK carries at most 10,000 keys.

Redis reads a client's requests even while it cannot write the replies (it buffers them), so a
sync batch cannot deadlock as memcached's can; but a whole batch of replies would sit in the
server's output buffer, and a server that bounds it (``client-output-buffer-limit normal``)
closes the connection. This server bounds it at 2 MB: 250,000 keys pass, sync and asyncio."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.proc import Server
from tests.servers.redis import start_single

pytestmark = [pytest.mark.server, pytest.mark.slow]

N = 250_000


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_single(
        Path(tmp_path_factory.mktemp("bounded")),
        "--client-output-buffer-limit",
        "normal 2mb 2mb 0",
    )
    yield server
    server.stop()


@pytest.mark.parametrize("ttl", [None, 600])
def test_250000_keys_in_one_call(
    bounded: Server, opener: Callable[..., Any], ttl: int | None
) -> None:
    store = opener(f"redis://127.0.0.1:{bounded.port}/0", socket_timeout=5.0)
    mapping = {f"key-{i}": i for i in range(N)}
    start = time.monotonic()
    store.store_many(mapping, ttl=ttl)
    got = store.load_many(list(mapping))
    assert len(got) == N and got["key-0"] == 0 and got[f"key-{N - 1}"] == N - 1
    assert got == mapping
    assert store.delete_many(list(mapping)) == N
    assert store.load_many(["key-0", f"key-{N - 1}"]) == {}
    assert time.monotonic() - start < 60
