"""``stats()`` with ``local_cache=true`` behaves as without it when the server is unreachable:
BackendUnavailable, or under fail_open the server's counters as None; the local activity keeps
coming through the event hook (docs/backends/redis.md#counters)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.backends import test_redis_local_cache as lc
from tests.backends.test_redis_local_cache import live, ns, until, url_of
from tests.servers.proc import Server
from tests.servers.redis import Program
from tsot import BackendUnavailable
from tsot.events import Event

pytestmark = pytest.mark.server

_stop_listeners, program, own_server, opener = (
    lc._stop_listeners,
    lc.program,
    lc.own_server,
    lc.opener,
)

SERVER_COUNTERS = ("hits", "misses", "keys", "memory_bytes", "evictions", "clients")


def test_an_unreachable_server_raises_with_and_without_the_local_cache(
    opener: Callable[..., Any], program: Program, own_server: Server
) -> None:
    url = url_of(program, own_server)
    local = live(opener(url, ns(), socket_timeout=0.5, retries=0))
    plain = opener(url, ns(), local_cache=False, socket_timeout=0.5, retries=0)
    events: list[Event] = []
    local.listen(events.append)
    assert set(SERVER_COUNTERS) <= set(local.stats()) and "local_hits" in local.stats()
    own_server.stop()
    for store in (plain, local):
        with pytest.raises(BackendUnavailable):
            store.stats()
    # the local cache's own news still arrives, without the server
    until(lambda: any(e.kind == "local" and e.fields["reason"] == "lost" for e in events), "lost")


def test_under_fail_open_both_report_unknown_server_counters(
    opener: Callable[..., Any], program: Program, own_server: Server
) -> None:
    url = url_of(program, own_server)
    options = {"socket_timeout": 0.5, "retries": 0, "fail_open": True}
    local = live(opener(url, ns(), **options))
    plain = opener(url, ns(), local_cache=False, **options)
    own_server.stop()
    for store in (plain, local):
        out = store.stats()
        assert all(out[name] is None for name in SERVER_COUNTERS), out
