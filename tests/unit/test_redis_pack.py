"""The sync Redis transport packs commands itself (hiredis): the bytes redis-py would send."""

from __future__ import annotations

from typing import Any

from redis.connection import Connection

from tsot.backends import redis_resp
from tsot.backends.redis_transport import pack

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", b"ns:k", b"s" + b"v" * 100, "PX", 300_000),
    ("SET", b"ns:big", b"x" * 100_000),  # redis-py sends this in several buffers
    ("MGET", b"a", b"b", "ünïcode"),
    ("EVALSHA", "0" * 40, 1, b"k", -12345678901234567890, b"1", 50_000),
    ("PING",),
]


def test_pack_matches_redis_py() -> None:
    want = b"".join(Connection().pack_commands(COMMANDS))
    assert pack(COMMANDS) == want
    assert b"".join(redis_resp.pack_command(c) for c in COMMANDS) == want  # the fallback
