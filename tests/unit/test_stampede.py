"""The pure stampede decisions (XFetch, grace, entry times), the entry format and the options."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tsot import ConfigurationError, Storage
from tsot.codec import MISS, Codec, Signer
from tsot.stampede import (
    Entry,
    Freshness,
    Policy,
    Timing,
    entry_times,
    freshness,
    is_fresh,
    refresh_window,
)

from ..helpers import FakeClock

SECRET = "s" * 32
POLICY = Policy(grace=5.0, beta=1.0)


def test_a_value_without_soft_expiry_is_always_fresh() -> None:
    assert freshness(Entry("v", None, None), 1e12, POLICY, 0.999) is Freshness.FRESH


def test_xfetch_refreshes_with_a_lead_of_delta_plus_delta_beta_ln_1_over_u() -> None:
    entry = Entry("v", 100.0, 2.0)  # expires at 100, took 2 s to compute
    # u = 1 - r; the lead is the compute time plus 2 * ln(1 / u): r = 0.5 gives 2 + 1.386 s
    lead = 2.0 + 2.0 * math.log(2.0)
    assert freshness(entry, 100.0 - lead - 0.01, POLICY, 0.5) is Freshness.FRESH
    assert freshness(entry, 100.0 - lead + 0.01, POLICY, 0.5) is Freshness.EARLY
    # a larger beta refreshes earlier
    assert freshness(entry, 100.0 - lead - 0.01, POLICY._replace(beta=2.0), 0.5) is (
        Freshness.EARLY
    )


@pytest.mark.parametrize(
    ("policy", "delta"),
    [(POLICY._replace(beta=0.0), 2.0), (POLICY._replace(stampede=False), 2.0), (POLICY, None)],
)
def test_no_early_refresh_without_beta_protection_or_a_known_delta(
    policy: Policy, delta: float | None
) -> None:
    assert freshness(Entry("v", 100.0, delta), 99.99, policy, 0.999999) is Freshness.FRESH
    assert freshness(Entry("v", 100.0, 2.0), 90.0, POLICY, 0.0) is Freshness.FRESH


def test_grace_classifies_stale_then_expired() -> None:
    entry = Entry("v", 100.0, 1.0)
    assert freshness(entry, 100.0, POLICY, 0.0) is Freshness.STALE
    assert freshness(entry, 104.99, POLICY, 0.0) is Freshness.STALE
    # then its refresh window, one compute time (delta = 1 s), with early refresh on
    assert freshness(entry, 105.0, POLICY, 0.0) is Freshness.OVERDUE
    assert freshness(entry, 105.99, POLICY, 0.0) is Freshness.OVERDUE
    assert freshness(entry, 106.0, POLICY, 0.0) is Freshness.EXPIRED
    no_grace = POLICY._replace(grace=0.0)
    assert freshness(entry, 100.0, no_grace, 0.0) is Freshness.OVERDUE
    assert freshness(entry, 101.0, no_grace, 0.0) is Freshness.EXPIRED
    # no window without early refresh, or without a known compute time
    assert freshness(entry, 100.0, no_grace._replace(beta=0.0), 0.0) is Freshness.EXPIRED
    assert freshness(entry, 100.0, no_grace._replace(stampede=False), 0.0) is (Freshness.EXPIRED)
    assert freshness(Entry("v", 100.0, None), 100.0, no_grace, 0.0) is Freshness.EXPIRED


def _no_draw() -> float:
    raise AssertionError("the fast path drew")


def test_the_fast_path_skips_the_draw_only_where_no_draw_could_refresh() -> None:
    clock = FakeClock(1000.0)
    soft_ms, delta_ms = 1_100_000, 2_000  # expires at 1100 s, took 2 s
    never = Timing(clock=clock, random=_no_draw)
    assert is_fresh([0, -1], b"k", POLICY, never)  # a plain value: no soft expiry
    # XFetch's lead is at most delta * (1 + beta * 36.7) = 75.5 s: before that, no draw
    clock.now = 1100.0 - 76.0
    assert is_fresh([soft_ms, delta_ms], b"fast", POLICY, never)
    # within reach, the draw decides exactly as freshness does (the largest draw refreshes)
    clock.now = 1100.0 - 74.0
    assert not is_fresh([soft_ms, delta_ms], b"near", POLICY, Timing(clock, lambda: 1 - 2**-53))
    assert is_fresh([soft_ms, delta_ms], b"near2", POLICY, Timing(clock, lambda: 0.0))
    clock.now = 1100.0  # at or past the soft expiry: never fresh
    assert not is_fresh([soft_ms, delta_ms], b"late", POLICY, Timing(clock, lambda: 0.0))
    assert not is_fresh([soft_ms, 0], b"late2", POLICY, Timing(clock, lambda: 0.0))


def test_entry_times_keep_the_value_grace_longer_in_the_backend() -> None:
    assert entry_times(10_000, 2.5, 1000.0) == (1_010_000, 12_500)
    assert entry_times(None, 2.5, 1000.0) == (0, None)
    assert entry_times(10_000, 2.5, 1000.0, 1000) == (1_010_000, 13_500)  # memcached's step
    # and its refresh window (``refresh_window``: one compute time) on top
    assert entry_times(10_000, 2.5, 1000.0, 0, 0.25) == (1_010_000, 12_750)
    assert refresh_window(POLICY, 0.25) == 0.25
    assert refresh_window(POLICY._replace(beta=0.0), 0.25) == 0.0
    assert refresh_window(POLICY, None) == 0.0


def test_memcached_entries_outlive_its_whole_second_expiry() -> None:
    from tsot.backends.memcached.backend import MemcachedAsync, MemcachedSync
    from tsot.readthrough import expiry_step_ms

    class Wrapper:  # as fail-open and the event hook wrap a backend
        def __init__(self, inner: object) -> None:
            self.inner = inner

    sync = MemcachedSync.__new__(MemcachedSync)
    assert expiry_step_ms(sync) == 1000
    assert expiry_step_ms(Wrapper(Wrapper(sync))) == 1000
    assert expiry_step_ms(MemcachedAsync.__new__(MemcachedAsync)) == 1000
    assert expiry_step_ms(Wrapper(object())) == 0
    with Storage.new_imc() as s:
        assert expiry_step_ms(s.backend) == 0  # milliseconds: no margin


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("value", ["s", b"b", 1.5, -12, 10**40, {"o": [1]}, None, "x" * 5000])
def test_entries_round_trip_and_plain_reads_see_the_value(value: object, signed: bool) -> None:
    codec = Codec(
        compression="zlib", signer=Signer([SECRET]) if signed else None, compress_threshold=100
    )
    data = codec.encode_entry(value, b"ns:k", 1_700_000_000_123, 250)
    assert data[:1] == (b"h" if signed else b"e")
    assert codec.decode_entry(data, b"ns:k") == (value, 1_700_000_000_123, 250)
    assert codec.decode(data, b"ns:k") == value
    assert codec.decode_entry(codec.encode(value, b"ns:k"), b"ns:k") == (value, 0, -1)


def test_the_signature_covers_the_entry_times() -> None:
    codec = Codec(signer=Signer([SECRET]))
    data = bytearray(codec.encode_entry("v", b"k", 1_000, 5))
    data[1 + 32 + 1] ^= 1  # the soft expiry, inside the signed part
    assert codec.decode_entry(bytes(data), b"k") is MISS
    assert codec.decode_entry(b"", b"k") is MISS  # empty: a logged miss, never an error
    unsigned = Codec().encode_entry("v", b"k", 1_000, 5)  # an entry an attacker wrote
    assert codec.decode_entry(unsigned, b"k") is MISS
    assert codec.decode(unsigned, b"k") is MISS


@given(st.binary(max_size=64))
def test_hostile_entries_are_misses_never_errors(tail: bytes) -> None:
    codec = Codec()
    for data in (b"e" + tail, b"e" + bytes(12) + b"e" + tail, b"e" + bytes(12) + b"h" + tail):
        out = codec.decode_entry(data, b"k")
        assert out is MISS or (isinstance(out, tuple) and len(out) == 3)


@given(st.binary(max_size=64), st.sampled_from([None, "inprocess", "signed", "small"]))
def test_decode_times_reads_whatever_decode_reads(tail: bytes, kind: str | None) -> None:
    # its shortcut (an unsigned entry holding a str) gives what the general decode gives
    from tsot.inprocess import LocalCodec

    codec = {
        None: Codec(),
        "inprocess": LocalCodec(),
        "signed": Codec(signer=Signer([SECRET])),
        "small": Codec(max_value_size=20),
    }[kind]
    head = b"e" + (1_700_000_000_123).to_bytes(8, "big") + (250).to_bytes(4, "big")
    for data in (head + b"s" + tail, head + tail, b"s" + tail, codec.encode_entry("v", b"k", 9, 1)):
        expected = [0, -1]
        value = codec.decode(data, b"k", expected)
        times = [0, -1]
        out = codec.decode_times(data, b"k", times)
        assert (out is MISS) == (value is MISS)
        assert repr(out) == repr(value)  # (a float NaN is not equal to itself)
        if value is not MISS:
            assert times == expected


def test_entries_inside_entries_are_refused() -> None:
    codec = Codec()
    inner = codec.encode_entry("v", b"k", 1, 1)
    assert codec.decode(b"e" + bytes(12) + inner, b"k") is MISS


def test_the_options_are_checked_by_name() -> None:
    with Storage.from_url("memory://?stampede=false&grace=2.5&beta=0&lease_timeout=3") as s:
        assert s.policy == Policy(stampede=False, grace=2.5, beta=0.0, lease_timeout=3.0)
    for bad, name in [
        ({"grace": -1}, "grace"),
        ({"beta": "eager"}, "beta"),
        ({"lease_timeout": 0}, "lease_timeout"),
        ({"stampede": "maybe"}, "stampede"),
        ({"grace": math.nan}, "grace"),
    ]:
        with pytest.raises(ConfigurationError, match=name):
            Storage.new_imc(**bad)
    with Storage.new_imc() as s, pytest.raises(ConfigurationError, match="grace"):
        s.get_or_compute("k", lambda: 1, 10, grace=-2)


def test_memoize_sync_and_async() -> None:
    import asyncio

    from tsot import AsyncStorage, memoize

    calls: list[int] = []
    store = Storage.new_imc()

    @memoize(store, ttl=60)
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    assert (square(3), square(3), square(4)) == (9, 9, 16)
    assert calls == [3, 4]

    astore = AsyncStorage.new_imc()

    @memoize(astore, ttl=60, key=lambda n: f"cube:{n}")
    async def cube(n: int) -> int:
        calls.append(-n)
        return n**3

    async def run() -> tuple[int, int, Any]:
        return await cube(2), await cube(2), await astore.load("cube:2")

    assert asyncio.run(run()) == (8, 8, 8)
    assert calls == [3, 4, -2]
    with pytest.raises(ConfigurationError, match="AsyncStorage"):
        memoize(store)(cube)
    with pytest.raises(ConfigurationError, match="needs a Storage"):
        memoize(astore)(square)


def test_the_draw_is_the_entrys_whatever_the_process() -> None:
    import os
    import subprocess
    import sys

    from tsot.stampede import DRAWS, Entry, draw, shared_draw

    u = shared_draw(b"ns:k", 1_700_000_000_000)
    assert u == shared_draw(b"ns:k", 1_700_000_000_000)
    assert u != shared_draw(b"ns:k", 1_700_000_000_001)  # a new entry: a new draw
    assert u != shared_draw(b"ns:other", 1_700_000_000_000)
    assert DRAWS.draw(b"ns:k", 1_700_000_000_000) == u
    assert draw(Timing(), b"ns:k", Entry("v", 1_700_000_000.0, 0.1)) == u
    assert draw(Timing(random=lambda: 0.25), b"ns:k", Entry("v", 1_700_000_000.0, 0.1)) == 0.25
    # another interpreter (another hash seed) draws the same for the same entry
    code = "from tsot.stampede import shared_draw; print(repr(shared_draw(b'ns:k', 1700000000000)))"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert float(out.stdout) == u
    # uniform over entries: the mean and the spread of 4000 draws
    draws = [shared_draw(b"k%d" % i, 1_700_000_000_000 + i) for i in range(4000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert abs(sum(draws) / len(draws) - 0.5) < 0.02
    assert sum(d < 0.1 for d in draws) in range(340, 460)


def test_stampede_events_reach_listeners() -> None:
    from tests.helpers import FakeClock
    from tsot.stampede import Timing

    clock = FakeClock()
    store = Storage.new_imc(clock=clock)
    seen: list[str] = []
    store.listen(lambda e: seen.append(e.fields["reason"]) if e.kind == "stampede" else None)

    def slow() -> str:
        clock.advance(10)
        return "v"

    store.get_or_compute("k", slow, 100, timing=Timing(clock=clock))
    clock.advance(95)
    eager = Timing(clock=clock, random=lambda: 0.99)
    assert store.get_or_compute("k", lambda: "w", 100, timing=eager) == "v"
    assert "refresh" in seen
    assert store.stats()["events"]["stampede:refresh"] >= 1


def test_an_abandoned_refresh_keeps_its_lease_a_backoff_and_an_abandoned_miss_frees_it() -> None:
    from tsot.readthrough import LEASE_SUFFIX
    from tsot.splitread import MISSING, SplitReadThrough

    clock = FakeClock(1000.0)
    with Storage.new_imc(grace=60.0, lease_timeout=30.0) as s:
        split = SplitReadThrough(s, Timing(clock=clock, random=lambda: 0.0))
        lease = s._keys.make("k") + LEASE_SUFFIX
        assert split.get("k") is MISSING  # a miss: this thread holds the lease
        split.abandon()  # its compute raised
        assert s.backend.get(lease) is None  # freed at once: a waiter computes
        assert split.get("k") is MISSING
        split.set("k", "v1", 10)
        clock.advance(11.0)  # stale, within grace: this thread wins the refresh
        assert split.get("k") is MISSING
        split.abandon()  # the refresh raised: retried at most once a backoff
        assert 0 < s.backend.ttl(lease) <= 1000
        split.abandon()  # nothing pending: no effect
        assert 0 < s.backend.ttl(lease) <= 1000


def test_a_refresh_reads_again_and_skips_a_value_stored_since_its_draw() -> None:
    from tsot.stampede import Op, refresh

    flow = refresh(POLICY, seen_soft=100.0)
    assert next(flow).op is Op.GET
    assert flow.send(Entry("newer", 160.0, 1.0)).op is Op.RELEASE  # another caller refreshed
    with pytest.raises(StopIteration) as stop:
        flow.send(None)
    assert stop.value.value == "newer"  # no compute, no store

    flow = refresh(POLICY, seen_soft=100.0)
    next(flow)
    assert flow.send(Entry("old", 100.0, 1.0)).op is Op.COMPUTE  # still the value it drew on
    assert flow.send(("v2", 1.0)).op is Op.STORE
    assert flow.send(None).op is Op.RELEASE


@pytest.mark.parametrize("value", ["kept as a str", {"kept": ["as", "an", "object"]}, 7])
def test_a_value_stored_by_store_on_memory_is_a_fresh_hit(value: Any) -> None:
    # the memory table keeps values as objects (tsot.inprocess): decode_entry reads them too
    with Storage.new_imc() as s:
        s.store("k", value, 60)
        assert s.get_or_compute("k", lambda: pytest.fail("computed"), 60) == value
