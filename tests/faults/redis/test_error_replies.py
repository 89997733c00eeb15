"""Errors are errors: an error reply raises whether it came on the first try or on a retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.redis.conftest import Proxied
from tsot import OutcomeUnknown, TsotError

pytestmark = pytest.mark.server


def test_a_full_server_refuses_a_retried_store(
    proxied: Proxied, opener: Callable[..., Any]
) -> None:
    """maxmemory 1 + noeviction: every write is refused with OOM; when the reply of the first
    try is lost, the retry's OOM must raise too (it used to return normally, nothing stored).
    A TsotError: the refusal's own class (BackendUnavailable here; WriteRefused where the
    fail_open work classifies refused writes) is not what this test is about."""
    store = opener(proxied.url)
    raw = proxied.raw()
    raw.config_set("maxmemory-policy", "noeviction")
    raw.config_set("maxmemory", 1)
    try:
        with pytest.raises(TsotError, match="maxmemory"):
            store.store("k", "v")
        fault = proxied.proxy.drop_reply(match=b"SET")
        with pytest.raises(TsotError, match="maxmemory") as info:
            store.store("k", "v")
        assert fault.hits == 1
        assert not isinstance(info.value, OutcomeUnknown)
        fault = proxied.proxy.drop_reply(match=b"SET")
        with pytest.raises(TsotError, match="maxmemory"):
            store.store_many({"a": 1, "b": 2}, ttl=60)
        assert fault.hits == 1
    finally:
        raw.config_set("maxmemory", 0)
    assert store.load("k") is None and store.load("a") is None


def test_incr_after_a_restart_loads_the_script_again(
    proxied: Proxied, opener: Callable[..., Any]
) -> None:
    """The first command after a restart meets an empty script cache (NOSCRIPT): it loads the
    script and runs it once (it used to come back as a value and raise TypeError)."""
    store = opener(proxied.url)
    store.store_int("n", 5)
    assert store.incr("n", create=False) == 6  # EVALSHA: the script is loaded now
    raw = proxied.raw()
    (key,) = raw.keys(b"*n")
    stored = raw.get(key)
    proxied.server.stop()
    proxied.server.start()
    proxied.raw().set(key, stored)  # the same value, behind the client's back
    assert store.incr("n", create=False) == 7
    assert store.incr("n", 10, create=False) == 17
    assert store.load_int("n") == 17
