"""Packing set_many's run of SET commands: byte for byte what hiredis writes."""

from __future__ import annotations

import os

from tsot.backends.redis import commands as ops
from tsot.backends.redis.resp import pack_sets
from tsot.backends.redis.transport_sync import _pack, pack


def _hiredis(cmds: list[ops.Cmd]) -> bytes:
    return b"".join(_pack(c) for c in cmds)


def test_set_runs_are_packed_as_hiredis_packs_them() -> None:
    items = [(b"k:%d" % i, os.urandom(i * 37)) for i in range(60)]  # empty, CRLF, any byte
    items.append((b"\r\n$5\r\n", b"\r\n*1\r\n"))
    runs = [
        ops.set_many_cmds(items, 60_000, cluster=False),
        ops.set_many_cmds(items, 1, cluster=True),
        ops.set_many_at_cmds(items, 2**40, cluster=False),
    ]
    for cmds in runs:
        assert pack_sets(cmds) is not None  # the fast path is the one taken
        assert pack(cmds) == _hiredis(cmds)


def test_anything_else_is_packed_by_hiredis() -> None:
    items = [(b"a", b"1"), (b"b", b"2")]
    base = ops.set_many_cmds(items, 60_000, cluster=False)
    others: list[list[ops.Cmd]] = [
        [*base, ("GET", b"a")],  # another command in the run
        [*base, ("SET", b"c", b"3", "PX", 70_000)],  # another expiry
        [*base, ("SET", b"c", b"3", "EX", 60_000)],  # another flag
        [("SET", "str-key", b"1", "PX", 5), ("SET", b"k", b"2", "PX", 5)],  # a str argument
        ops.set_many_cmds(items, None, cluster=True),  # SET without expiry
        ops.set_many_cmds(items, None, cluster=False),  # MSET
    ]
    for cmds in others:
        assert pack(cmds) == _hiredis(cmds)
    assert pack_sets(others[0]) is None and pack_sets(others[1]) is None
