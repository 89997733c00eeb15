"""A reply lost after the server ran the command: at most once for what must not run twice,
a retry for what may (Redis, one server, sync and asyncio)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.redis.conftest import Proxied
from tsot import BackendUnavailable, OutcomeUnknown

pytestmark = pytest.mark.server


def server_key(proxied: Proxied, pattern: bytes) -> bytes:
    (key,) = proxied.raw().keys(b"*" + pattern)
    return bytes(key)


def test_incr_is_not_resent_after_a_lost_reply(
    proxied: Proxied, opener: Callable[..., Any]
) -> None:
    store = opener(proxied.url)
    store.store_int("n", 100)
    fault = proxied.proxy.drop_reply(match=b"INCRBY")
    with pytest.raises(OutcomeUnknown, match=r"INCRBY.*outcome is unknown"):
        store.incr("n")
    assert fault.hits == 1
    assert proxied.raw().get(server_key(proxied, b"n")) == b"101"  # applied once, not twice
    assert store.incr("n") == 102  # the next call works on a new connection


def test_incr_of_a_big_number_is_not_resent(proxied: Proxied, opener: Callable[..., Any]) -> None:
    """Past 64 bits incr runs a script (EVALSHA): not idempotent either."""
    store = opener(proxied.url)
    store.store_int("n", 2**70)
    store.incr("n")  # loads the script
    proxied.proxy.drop_reply(match=b"EVALSHA")
    with pytest.raises(OutcomeUnknown, match="EVALSHA"):
        store.incr("n")
    assert store.load_int("n") == 2**70 + 2


def test_add_is_not_resent_after_a_lost_reply(proxied: Proxied, opener: Callable[..., Any]) -> None:
    store = opener(proxied.url)
    proxied.proxy.drop_reply(match=b"NX")
    with pytest.raises(OutcomeUnknown, match="SET"):
        store.add("lock", "me")
    assert store.load("lock") == "me"  # it did take the lock; it never reported False for it
    assert store.add("lock", "other") is False


def test_under_fail_open_a_lost_add_reply_is_still_an_unknown_outcome(
    proxied: Proxied, opener: Callable[..., Any]
) -> None:
    """fail_open skips writes during an outage, but an add that may have taken the lock is not
    a skipped write: answering False would report the caller's own lock as someone else's."""
    store = opener(proxied.url, fail_open=True, probe_interval=0)
    fault = proxied.proxy.drop_reply(match=b"NX")
    with pytest.raises(OutcomeUnknown, match="SET"):
        store.add("lock", "me")
    assert fault.hits == 1
    assert store.load("lock") == "me"
    assert store.add("lock", "other") is False


def test_replace_is_resent_after_a_lost_reply(proxied: Proxied, opener: Callable[..., Any]) -> None:
    """SET XX never creates the key, so sending it again is safe: a resent one finds the key
    as the first one left it (stored again: True) or absent (nothing written back)."""
    store = opener(proxied.url)
    store.store("k", "v")
    fault = proxied.proxy.drop_reply(match=b"XX")
    assert store.replace("k", "w") is True  # not an OutcomeUnknown: resent
    assert fault.hits == 1
    assert store.load("k") == "w"
    fault = proxied.proxy.drop_reply(match=b"XX")
    assert store.replace("absent", "w") is False
    assert fault.hits == 1
    assert not store.exists("absent")


@pytest.mark.parametrize("call", ["store", "load", "delete", "expire", "load_many"])
def test_idempotent_commands_are_resent(
    proxied: Proxied, opener: Callable[..., Any], call: str
) -> None:
    store = opener(proxied.url)
    store.store("k", "v")
    fault = proxied.proxy.drop_reply()
    result = {
        "store": lambda: store.store("k", "w"),
        "load": lambda: store.load("k"),
        "delete": lambda: store.delete("k"),
        "expire": lambda: store.expire("k", 60),
        "load_many": lambda: store.load_many(["k", "x"]),
    }[call]()
    assert fault.hits == 1
    assert (
        result
        == {"store": None, "load": "v", "delete": False, "expire": True, "load_many": {"k": "v"}}[
            call
        ]
        or call == "delete"
    )
    if call == "store":
        assert store.load("k") == "w"
    if call == "delete":
        assert store.load("k") is None


def test_cut_mid_reply_is_a_lost_reply(proxied: Proxied, opener: Callable[..., Any]) -> None:
    store = opener(proxied.url)
    store.store_int("n", 5)
    proxied.proxy.cut_reply(after=2, match=b"INCRBY")  # ":6" of ":6\r\n"
    with pytest.raises(OutcomeUnknown):
        store.incr("n")
    assert store.load_int("n") == 6
    big = "x" * 100_000
    store.store("big", big)
    proxied.proxy.cut_reply(after=1000, match=b"GET")
    assert store.load("big") == big  # a GET is sent again


def test_retries_are_bounded(proxied: Proxied, opener: Callable[..., Any]) -> None:
    store = opener(proxied.url, retries=2)
    store.store("k", "v")
    proxied.proxy.drop_reply(count=None, match=b"GET")
    with pytest.raises(BackendUnavailable) as info:
        store.load("k")
    assert not isinstance(info.value, OutcomeUnknown)
    assert (
        sum(
            proxied.proxy.connections[i].faults.count(proxied.proxy._faults[0].kind)
            for i in range(len(proxied.proxy.connections))
        )
        == 3
    )  # one try, two retries


def test_refused_connections_are_retried_then_reported(
    proxied: Proxied, opener: Callable[..., Any]
) -> None:
    """Connections reset as soon as they are accepted: retried (nothing was sent), then a
    BackendUnavailable; never an OSError from the half-open socket (asyncio used to raise
    "Bad file descriptor" setting keepalive on it)."""
    store = opener(proxied.url, retries=3)
    for _ in range(5):
        proxied.proxy.refuse(count=2)
        store.store_int("n", 1)  # the third connection gets through
        assert store.incr("n") == 2
        proxied.proxy.cut_all()
    proxied.proxy.refuse()
    proxied.proxy.cut_all()
    # accepted, then reset: a client that wrote INCRBY before the reset cannot tell this from
    # a server that ran it and crashed, so OutcomeUnknown is allowed; an OSError is not
    with pytest.raises(BackendUnavailable):
        store.incr("n")
    proxied.proxy.clear()
    assert store.load_int("n") == 2  # the proxy relayed nothing
