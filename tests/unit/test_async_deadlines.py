"""asyncio writes carry their deadline from the call: the command builders, on an injected clock.

Redis gets an absolute deadline (PXAT, PEXPIREAT); memcached, whose clock counts whole seconds
and maps absolute times with slack, gets the time its write was held back taken off its
relative TTLs (``retime``). tests/reliability/test_busy_loop.py checks both on real servers.
"""

from __future__ import annotations

from tests.helpers import FakeClock
from tsot.backends.memcached import protocol as mp
from tsot.backends.redis import commands as redis_ops


def test_redis_async_writes_carry_an_absolute_deadline_from_the_call() -> None:
    clock = FakeClock(1_700_000_000.25)
    assert redis_ops.set_at_cmd(b"k", b"v", 1500, clock=clock) == (
        "SET",
        b"k",
        b"v",
        "PXAT",
        1_700_000_001_750,
    )
    assert redis_ops.set_at_cmd(b"k", b"v", 1, nx=True, clock=clock)[3:] == (
        "NX",
        "PXAT",
        1_700_000_000_251,
    )
    assert redis_ops.set_at_cmd(b"k", b"v", None, clock=clock) == ("SET", b"k", b"v")
    assert redis_ops.expire_at_cmds(b"k", 2000, clock=clock) == [
        ("PEXPIREAT", b"k", 1_700_000_002_250)
    ]
    assert redis_ops.expire_at_cmds(b"k", None, clock=clock) == redis_ops.expire_cmds(b"k", None)
    clock.advance(10)  # a later call: a later deadline, one for every item
    many = redis_ops.set_many_at_cmds([(b"a", b"1"), (b"b", b"2")], 500, True, clock=clock)
    assert many == [
        ("SET", b"a", b"1", "PXAT", 1_700_000_010_750),
        ("SET", b"b", b"2", "PXAT", 1_700_000_010_750),
    ]
    assert redis_ops.set_many_at_cmds([(b"a", b"1")], None, False, clock=clock) == [
        ("MSET", b"a", b"1")
    ]


def test_memcached_retime_takes_the_held_seconds_off_relative_ttls_only() -> None:
    value = b"T5 ms x 3 T7\r\n"  # a value that looks like flags and commands stays as it is
    data = (
        mp.ms(b"k", value, b"T5 ME")
        + mp.ms(b"never", b"v", b"T0")
        + mp.ms(b"far", b"v", b"T%d" % (mp.RELATIVE_MAX + 10))
        + b"mg t T1 v\r\n"
        + b"ma n N0 J1 D1 T3\r\n"
        + b"md gone q\r\n"
        + mp.MN
    )
    assert mp.retime(data, 2) == (
        mp.ms(b"k", value, b"T3 ME")
        + mp.ms(b"never", b"v", b"T0")
        + mp.ms(b"far", b"v", b"T%d" % (mp.RELATIVE_MAX + 10))
        + b"mg t T-1 v\r\n"  # ran out: expired at once, never 0 (= never expires)
        + b"ma n N0 J1 D1 T1\r\n"
        + b"md gone q\r\n"
        + mp.MN
    )
    assert mp.retime(data, 0) == data


def test_memcached_exptime_still_rounds_up_to_whole_seconds() -> None:
    assert [mp.exptime(ms) for ms in (None, 1, 1000, 1001, 4000)] == [0, 1, 1, 2, 4]


def test_redis_async_lock_extension_carries_the_deadline_of_the_call() -> None:
    """The async ``expire_if`` script gets ``now + ms`` (PEXPIREAT), computed when the steps
    are made, not when the script is sent; ``None`` (persist) stays empty."""
    from tsot.backends.redis import keys as redis_keys

    clock = FakeClock(1_700_000_000.25)
    steps = redis_keys.expire_at_if_steps(b"k", b"tok", 1500, clock=clock)
    clock.advance(5)  # the loop is busy before the first step runs
    (cmd,), node = next(steps)
    assert node is None
    assert cmd[0] == "EVALSHA" and cmd[2:] == (1, b"k", b"tok", 1_700_000_001_750)
    (cmd,), _ = next(redis_keys.expire_at_if_steps(b"k", b"tok", None, clock=clock))
    assert cmd[2:] == (1, b"k", b"tok", b"")
    assert b"PEXPIREAT" in redis_keys.EXPIRE_AT_IF and b"PEXPIRE'" in redis_keys.EXPIRE_IF
