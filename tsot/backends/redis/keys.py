"""Redis commands for listing keys (SCAN MATCH) and for compare-and-delete / compare-and-expire
(the owner checks of tsot.locks), free of I/O like ``redis.commands``."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from redis.exceptions import NoScriptError

from .commands import SCAN_COUNT, Cmd, Steps, glob_escape, scan_reply

# GET and the write in one script: no other client runs between the comparison and the write.
DELETE_IF: Final = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
EXPIRE_IF: Final = b"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('PERSIST', KEYS[1]) + 1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# asyncio: the deadline of the call (PEXPIREAT), as for every async write. A deadline already
# past when the script runs deletes the key (the lock expired as asked) and reports 0.
EXPIRE_AT_IF: Final = b"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('PERSIST', KEYS[1]) + 1 end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return redis.call('EXISTS', KEYS[1])
"""
_SHA: Final = {s: hashlib.sha1(s).hexdigest() for s in (DELETE_IF, EXPIRE_IF, EXPIRE_AT_IF)}


def scan_cmd(cursor: int, prefix: bytes, pattern: bytes, count: int | None) -> Cmd:
    """``SCAN cursor MATCH <escaped prefix><pattern> COUNT n``: the namespace is a literal."""
    return ("SCAN", cursor, "MATCH", glob_escape(prefix) + pattern, "COUNT", count or SCAN_COUNT)


def scan_steps(
    nodes: Sequence[Any], prefix: bytes, pattern: bytes, count: int | None, page: list[bytes]
) -> Steps:
    """SCAN MATCH each node in turn, a page a step: each reply's keys replace what ``page``
    holds (the backend hands them on before it sends the next step, and after the last)."""
    for node in nodes:
        cursor = 0
        while True:
            (reply,) = yield [scan_cmd(cursor, prefix, pattern, count)], node
            cursor, page[:] = scan_reply(reply)
            if cursor == 0:
                break


def script_steps(script: bytes, key: bytes, *args: Any) -> Steps:
    """Run ``script`` on ``key``: EVALSHA, then EVAL once if the server does not know it."""
    try:
        (reply,) = yield [("EVALSHA", _SHA[script], 1, key, *args)], None
    except NoScriptError:
        (reply,) = yield [("EVAL", script, 1, key, *args)], None
    return bool(reply)


def delete_if_steps(key: bytes, value: bytes) -> Steps:
    return script_steps(DELETE_IF, key, value)


def expire_if_steps(key: bytes, value: bytes, ttl_ms: int | None) -> Steps:
    return script_steps(EXPIRE_IF, key, value, b"" if ttl_ms is None else ttl_ms)


def expire_at_if_steps(
    key: bytes, value: bytes, ttl_ms: int | None, clock: Callable[[], float] = time.time
) -> Steps:
    """``expire_if_steps`` with the deadline taken now (``PEXPIREAT now + ms``), not when the
    script reaches the server: an extension held back by a busy loop ends when it was asked to.
    """
    at = b"" if ttl_ms is None else int(clock() * 1000) + ttl_ms  # before the first step runs
    return script_steps(EXPIRE_AT_IF, key, value, at)
