"""Redis commands for the backend protocol: building and parsing, free of I/O.

Sync and async backends share everything here. Operations of more than one step (``incr``'s
exact fallback, ``clear``) are generators that yield ``(commands, node)`` and receive the
replies, so each backend only sends what they yield.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from operator import itemgetter
from typing import Any, Final

from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from ...errors import SerializationError, ValueTooLarge, WrongType
from ...ints import MAX_INT_DIGITS, format_int, parse_int
from ...keys import shown
from ..base import TTL_MISSING, TTL_PERSISTENT
from .config import MAX_VALUE_BYTES
from .resp import SetRun

Cmd = tuple[Any, ...]
Step = tuple[list[Cmd], Any]
Steps = Generator[Step, list[Any], Any]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
SCAN_COUNT: Final = 1000
MAX_KEYS: Final = 10_000  # keys per MGET/MSET/UNLINK: bounds each request and each reply

# Exact decimal addition in the server, atomically: INCRBY stops at 64 bits, and Lua numbers
# are doubles, so big values are added as base-10^7 limbs. The TTL is kept (KEEPTTL). A result
# of more than ARGV[3] digits (tsot's MAX_INT_DIGITS) is refused before anything is written.
INCR_SCRIPT: Final = b"""
local cur = redis.call('GET', KEYS[1])
if not cur then
  if ARGV[2] ~= '1' then return false end
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
if not string.find(cur, '^%-?%d+$') or #(string.gsub(cur, '^%-', '')) > tonumber(ARGV[3]) then
  return redis.error_reply('WRONGTYPE value is not an integer')
end
local B = 10000000
local function parse(s)
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  s = (string.gsub(s, '^0+', ''))
  local limbs, i = {}, #s
  while i > 0 do
    local j = math.max(1, i - 6)
    limbs[#limbs + 1] = tonumber(string.sub(s, j, i))
    i = j - 1
  end
  return neg and #limbs > 0, limbs
end
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  for i = #a, 1, -1 do
    if a[i] ~= b[i] then return a[i] < b[i] and -1 or 1 end
  end
  return 0
end
local function add(a, b)
  local r, c = {}, 0
  for i = 1, math.max(#a, #b) do
    local s = (a[i] or 0) + (b[i] or 0) + c
    if s >= B then r[i] = s - B; c = 1 else r[i] = s; c = 0 end
  end
  if c > 0 then r[#r + 1] = c end
  return r
end
local function sub(a, b)
  local r, c = {}, 0
  for i = 1, #a do
    local s = a[i] - (b[i] or 0) - c
    if s < 0 then r[i] = s + B; c = 1 else r[i] = s; c = 0 end
  end
  while #r > 0 and r[#r] == 0 do r[#r] = nil end
  return r
end
local an, a = parse(cur)
local bn, b = parse(ARGV[1])
local neg, r
if an == bn then
  neg, r = an, add(a, b)
elseif cmp(a, b) >= 0 then
  neg, r = an, sub(a, b)
else
  neg, r = bn, sub(b, a)
end
local out = '0'
if #r > 0 then
  local parts = {string.format('%d', r[#r])}
  for i = #r - 1, 1, -1 do parts[#parts + 1] = string.format('%07d', r[i]) end
  out = table.concat(parts)
  if #out > tonumber(ARGV[3]) then
    return redis.error_reply('ERR tsot: the result has more than ' .. ARGV[3] .. ' digits')
  end
  if neg then out = '-' .. out end
end
redis.call('SET', KEYS[1], out, 'KEEPTTL')
return out
"""
INCR_SHA: Final = hashlib.sha1(INCR_SCRIPT).hexdigest()


# -- single commands ---------------------------------------------------------------------------


def check_size(key: bytes, value: bytes) -> None:
    """Raise ValueTooLarge before sending a value Redis would refuse."""
    if len(value) > MAX_VALUE_BYTES:
        raise ValueTooLarge(
            f"value for key {shown(key)} is {len(value)} bytes; Redis stores at most "
            f"{MAX_VALUE_BYTES} bytes per value"
        )


def set_cmd(
    key: bytes, value: bytes, ttl_ms: int | None, nx: bool = False, xx: bool = False
) -> Cmd:
    """``SET key value [NX|XX] [PX ms]``, size checked (NX: ``add``, XX: ``replace``)."""
    check_size(key, value)
    cmd: Cmd = ("SET", key, value)
    if nx:
        cmd += ("NX",)
    elif xx:
        cmd += ("XX",)
    return cmd if ttl_ms is None else (*cmd, "PX", ttl_ms)


def set_at_cmd(
    key: bytes,
    value: bytes,
    ttl_ms: int | None,
    nx: bool = False,
    clock: Callable[[], float] = time.time,
    xx: bool = False,
) -> Cmd:
    """``SET key value [NX|XX] [PXAT now + ms]``: the TTL counts from this call, not from when
    the command reaches the server (asyncio: the loop may run other tasks first). Redis 6.2+."""
    cmd = set_cmd(key, value, None, nx, xx)
    return cmd if ttl_ms is None else (*cmd, "PXAT", int(clock() * 1000) + ttl_ms)


def ttl_result(reply: int) -> int:
    """PTTL's reply in the protocol's terms (-1 and -2 are the same numbers, named)."""
    if reply == -1:
        return TTL_PERSISTENT
    if reply == -2:
        return TTL_MISSING
    return max(0, reply)


def expire_cmds(key: bytes, ttl_ms: int | None) -> list[Cmd]:
    """PEXPIRE; or PERSIST then EXISTS, since PERSIST alone cannot tell "no TTL" from absent."""
    if ttl_ms is None:
        return [("PERSIST", key), ("EXISTS", key)]
    return [("PEXPIRE", key, ttl_ms)]


def get_ttl_cmds(keys: Sequence[bytes]) -> list[Cmd]:
    """GET and PTTL of each key, side by side (one round trip; per key, one slot)."""
    return [cmd for key in keys for cmd in (("GET", key), ("PTTL", key))]


def pairs(replies: Sequence[Any]) -> list[tuple[bytes | None, int]]:
    """The replies of ``get_ttl_cmds``: (value, PTTL) per key."""
    return list(zip(replies[::2], replies[1::2], strict=True))


def expire_at_cmds(
    key: bytes, ttl_ms: int | None, clock: Callable[[], float] = time.time
) -> list[Cmd]:
    """``expire_cmds`` with ``PEXPIREAT now + ms``: the TTL counts from this call."""
    if ttl_ms is None:
        return expire_cmds(key, None)
    return [("PEXPIREAT", key, int(clock() * 1000) + ttl_ms)]


def is_wrongtype(exc: ResponseError) -> bool:
    return str(exc).startswith("WRONGTYPE")


# -- many keys: grouped per hash slot on a cluster ---------------------------------------------


def slot_groups(keys: Sequence[bytes], cluster: bool) -> list[list[int]]:
    """Positions of ``keys`` grouped so each group may go in one multi-key command: one slot
    on a cluster, and at most ``MAX_KEYS`` keys (so no reply, and no request, is unbounded)."""
    if not cluster:
        whole = range(len(keys))
        return [list(whole[i : i + MAX_KEYS]) for i in range(0, len(keys), MAX_KEYS)] or [[]]
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key_slot(key), []).append(i)
    return [g[i : i + MAX_KEYS] for g in groups.values() for i in range(0, len(g), MAX_KEYS)]


def grouped(name: str, keys: Sequence[bytes], groups: list[list[int]]) -> list[Cmd]:
    return [(name, *[keys[i] for i in group]) for group in groups]


def mget_result(n: int, groups: list[list[int]], replies: list[Any]) -> list[bytes | None]:
    out: list[bytes | None] = [None] * n
    for group, values in zip(groups, replies, strict=True):
        for i, value in zip(group, values, strict=True):
            out[i] = value
    return out


def check_sizes(items: Sequence[tuple[bytes, bytes]]) -> None:
    """``check_size`` of every item, at the cost of one pass in C while all fit."""
    if items and max(map(len, map(itemgetter(1), items))) > MAX_VALUE_BYTES:
        for key, value in items:
            check_size(key, value)


def set_many_cmds(
    items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None, cluster: bool
) -> list[Cmd]:
    """One MSET when nothing expires on one server, else one SET per item (pipelined)."""
    check_sizes(items)
    if ttl_ms is None and not cluster:
        return [
            ("MSET", *[part for item in items[i : i + MAX_KEYS] for part in item])
            for i in range(0, len(items), MAX_KEYS)
        ]
    if ttl_ms is None:
        return [("SET", k, v) for k, v in items]
    return SetRun(items, "PX", ttl_ms)


def set_many_at_cmds(
    items: Sequence[tuple[bytes, bytes]],
    ttl_ms: int | None,
    cluster: bool,
    clock: Callable[[], float] = time.time,
) -> list[Cmd]:
    """``set_many_cmds`` with one ``PXAT`` deadline for every item, counted from this call."""
    if ttl_ms is None:
        return set_many_cmds(items, None, cluster)
    check_sizes(items)
    return SetRun(items, "PXAT", int(clock() * 1000) + ttl_ms)


# -- multi-step operations -----------------------------------------------------------------------


class Run:
    """The one loop that drives a multi-step operation; the sync and async backends only do
    each step's I/O inside it::

        run = Run(steps)
        for cmds, node in run:  # what to send, and where (None: where the command goes)
            run.reply = replies_or_error(cmds, node)  # a ResponseError goes into the operation
        return run.value
    """

    __slots__ = ("reply", "steps", "value")

    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        self.reply: list[Any] | ResponseError = []
        self.value: Any = None

    def __iter__(self) -> Iterator[Step]:
        steps = self.steps
        try:
            step = next(steps)
            while True:
                yield step
                reply = self.reply
                step = steps.throw(reply) if isinstance(reply, ResponseError) else steps.send(reply)
        except StopIteration as stop:
            self.value = stop.value


def incr_steps(key: bytes, delta: int, create: bool) -> Steps:
    """INCRBY (one round trip) while it can; else the exact script (EVALSHA, EVAL if unknown).

    INCRBY refuses a stored value that is not a 64-bit integer and a result past 64 bits; the
    script then decides between an exact result and WrongType.
    """
    if create and INT64_MIN <= delta <= INT64_MAX:
        try:
            (reply,) = yield [("INCRBY", key, delta)], None
            return int(reply)
        except ResponseError as exc:
            if is_wrongtype(exc):
                raise WrongType(_not_int(key)) from exc
    args = (1, key, format_int(delta), b"1" if create else b"0", MAX_INT_DIGITS)
    try:
        try:
            (reply,) = yield [("EVALSHA", INCR_SHA, *args)], None
        except NoScriptError:
            (reply,) = yield [("EVAL", INCR_SCRIPT, *args)], None
    except ResponseError as exc:
        if is_wrongtype(exc):
            raise WrongType(_not_int(key)) from exc
        if "tsot: the result has more than" in str(exc):
            raise SerializationError(
                f"incr of key {shown(key)} would store an int of more than "
                f"{MAX_INT_DIGITS} digits; nothing was written"
            ) from None  # a refusal, not a driver failure (Django would unwrap the cause)
        raise
    return None if reply is None else _reply_int(reply, key)


def _not_int(key: bytes) -> str:
    return f"value of key {shown(key)} is not an integer"  # made only when raised: not per call


def _reply_int(reply: Any, key: bytes) -> int:
    value = parse_int(reply if isinstance(reply, bytes) else str(reply).encode())
    if value is None:
        raise WrongType(_not_int(key))
    return value


def glob_escape(prefix: bytes) -> bytes:
    """``prefix`` as a literal for SCAN MATCH (``*?[]\\`` escaped)."""
    out = bytearray()
    for byte in prefix:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


def scan_reply(reply: Any) -> tuple[int, list[bytes]]:
    """(cursor, keys) from a raw SCAN reply or redis-py's parsed one (cluster: {node: cursor})."""
    cursor, keys = reply
    if isinstance(cursor, dict):
        (cursor,) = cursor.values()
    return int(cursor), list(keys)


def clear_steps(prefix: bytes, node: Any, cluster: bool) -> Steps:
    """SCAN one node for ``prefix*`` and UNLINK what it finds, a page at a time."""
    match: Cmd = ("MATCH", glob_escape(prefix) + b"*") if prefix else ()
    cursor = 0
    while True:
        (reply,) = yield [("SCAN", cursor, *match, "COUNT", SCAN_COUNT)], node
        cursor, keys = scan_reply(reply)
        keys = [k for k in keys if k.startswith(prefix)]
        if keys:
            yield grouped("UNLINK", keys, slot_groups(keys, cluster)), None
        if cursor == 0:
            return None
