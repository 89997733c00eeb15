"""Redis commands for listing keys (SCAN MATCH) and for compare-and-delete / compare-and-expire
(the owner checks of tsot.locks), free of I/O like ``redis_ops``."""

from __future__ import annotations

import hashlib
from typing import Any, Final

from redis.exceptions import NoScriptError

from .redis_ops import SCAN_COUNT, Cmd, Steps, glob_escape

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
_SHA: Final = {s: hashlib.sha1(s).hexdigest() for s in (DELETE_IF, EXPIRE_IF)}


def scan_cmd(cursor: int, prefix: bytes, pattern: bytes, count: int | None) -> Cmd:
    """``SCAN cursor MATCH <escaped prefix><pattern> COUNT n``: the namespace is a literal."""
    return ("SCAN", cursor, "MATCH", glob_escape(prefix) + pattern, "COUNT", count or SCAN_COUNT)


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
