"""Memcached meta protocol without I/O: commands, the reply parser, keys, TTLs and int forms.

Everything here is pure and shared by the sync (pymemcache) and asyncio transports.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Final

from ...errors import BackendUnavailable, ValueTooLarge, WriteRefused
from ...ints import parse_int
from ...keys import shown

# -- replies ---------------------------------------------------------------------------------


class Reply:
    """One reply: ``code`` (VA, HD, EN, NF, NS, EX, MN, STATS, or an error word), the raw
    flag tokens after it, the value of a VA reply, and the fields of a ``stats`` reply."""

    __slots__ = ("code", "flags", "stats", "value")

    def __init__(
        self,
        code: bytes,
        flags: bytes = b"",
        value: bytes | None = None,
        stats: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.flags = flags
        self.value = value
        self.stats = stats

    def flag(self, name: bytes) -> bytes | None:
        """The token of flag ``name`` (one letter), or None when the reply has no such flag."""
        for token in self.flags.split():
            if token[:1] == name:
                return token[1:]
        return None

    def __repr__(self) -> str:
        return f"Reply({self.code!r}, {self.flags!r}, {self.value!r:.40})"


class ReplyParser:
    """Incremental parser: ``feed`` bytes, then ``take``/``next`` return whole replies in order.

    Meta replies are self-describing (``VA <size>`` carries its length); a ``stats`` reply is
    the run of ``STAT`` lines up to ``END``. Bare replies (``HD``, ``EN``, ...) are shared
    objects and values are single slices of the received bytes: no per-byte Python work.
    """

    __slots__ = ("_buf", "_have", "_parts", "_pos", "_want")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._parts: list[bytes] = []
        self._have = 0
        self._want = 0

    @property
    def pending(self) -> bool:
        """True while bytes received are not handed out as replies yet."""
        return self._pos < len(self._buf) or bool(self._want)

    def feed(self, data: bytes) -> None:
        if self._want:  # a large value is arriving: gather the chunks, join them once
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._want:
                return
            self._buf, self._pos, self._want = b"".join(self._parts), 0, 0
            self._parts.clear()
            return
        buf, pos = self._buf, self._pos
        self._buf = data if pos >= len(buf) else buf[pos:] + data
        self._pos = 0

    def take(self, n: int, out: list[Reply]) -> int:
        """Append up to ``n`` complete replies to ``out``; return how many."""
        buf, pos, bare = self._buf, self._pos, _BARE
        got = 0
        while got < n:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            line = buf[pos:end]
            reply = bare.get(line)
            if reply is not None:
                pos = end + 2
            elif line[:3] == b"VA ":
                size, _, flags = line[3:].partition(b" ")
                start = end + 2
                stop = start + int(size)
                if len(buf) < stop + 2:
                    self._wait(pos, stop + 2)
                    return got
                reply = Reply(b"VA", flags, buf[start:stop])
                pos = stop + 2
            elif line[:5] == b"STAT " or line == b"END":
                reply, stop = self._stats(line, end)
                if reply is None:
                    break
                pos = stop
            else:
                code, _, flags = line.partition(b" ")
                reply = Reply(code, flags)
                pos = end + 2
            out.append(reply)
            got += 1
        self._pos = pos
        return got

    def next(self) -> Reply | None:
        """The next complete reply, or None until more bytes arrive."""
        out: list[Reply] = []
        return out[0] if self.take(1, out) else None

    def _wait(self, pos: int, stop: int) -> None:
        """The reply at ``pos`` ends at ``stop``, beyond the bytes received so far."""
        buf = self._buf
        if stop - pos > _GATHER:
            self._parts.append(buf[pos:])
            self._have, self._want = len(buf) - pos, stop - pos
            self._buf, self._pos = b"", 0
        else:
            self._pos = pos

    def _stats(self, line: bytes, end: int) -> tuple[Reply | None, int]:
        fields: dict[str, str] = {}
        buf = self._buf
        while line != b"END":
            _, name, value = line.decode("latin-1").split(" ", 2)
            fields[name] = value
            start = end + 2
            end = buf.find(b"\r\n", start)
            if end < 0:
                return None, 0  # incomplete: parsed again from the start when more arrives
            line = buf[start:end]
        return Reply(b"STATS", stats=fields), end + 2


_BARE: Final = {c: Reply(c) for c in (b"HD", b"EN", b"NF", b"NS", b"EX", b"MN")}
"""Replies without flags or value, shared (replies are never changed once parsed)."""
MN_REPLY: Final = _BARE[b"MN"]
_GATHER: Final = 256 * 1024


# -- commands --------------------------------------------------------------------------------

MN: Final = b"mn\r\n"


class SharedRead(bytes):
    """A read-only command whose one reply may serve every request of the same write that
    starts with it (the namespace generation check): a pipelining transport sends it once."""

    __slots__ = ()


def mg(key: bytes, flags: bytes = b"") -> bytes:
    return b"mg " + key + (b" " + flags if flags else b"") + b"\r\n"


def ms(key: bytes, value: bytes, flags: bytes) -> bytes:
    return b"ms %b %d %b\r\n%b\r\n" % (key, len(value), flags, value)


def md(key: bytes) -> bytes:
    return b"md " + key + b"\r\n"


def ma(key: bytes, flags: bytes) -> bytes:
    return b"ma " + key + b" " + flags + b"\r\n"


STATS_SETTINGS: Final = b"stats settings\r\n"
STATS: Final = b"stats\r\n"


def check(reply: Reply, server: str, key: bytes | None = None) -> Reply:
    """Return ``reply`` unless it is an error reply; raise the tsot error for it."""
    code = reply.code
    if code in (b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR"):
        text = (code + b" " + reply.flags).decode("latin-1").strip()
        if b"too large" in reply.flags:
            raise ValueTooLarge(
                f"memcached {server} refused the value for key {shown(key)}: {text}"
            )
        if b"out of memory" in reply.flags.lower():  # full (-M), or no room for this item
            raise WriteRefused(f"memcached {server} is full and refused key {shown(key)}: {text}")
        raise BackendUnavailable(f"memcached {server} answered {text!r}")
    return reply


# -- keys ------------------------------------------------------------------------------------

MAX_KEY: Final = 250
BAD_KEY_BYTES: Final = bytes(range(0x21)) + b"\x7f"
_LONG_PREFIX: Final = 150  # longer namespace prefixes are digested too (room for the key)


def valid_key(key: bytes) -> bool:
    """True if memcached accepts ``key`` as is: at most 250 bytes, no space or control byte."""
    return len(key) <= MAX_KEY and len(key.translate(None, BAD_KEY_BYTES)) == len(key)


def _digest(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")


def wire_key(final: bytes, plen: int, gen: int) -> bytes:
    """The key sent to memcached for ``final`` (whose first ``plen`` bytes are the namespace
    prefix) in generation ``gen``.

    ``<prefix><gen hex>|<rest>`` when valid, else the stable digest form
    ``<prefix><gen hex>#<base64url sha256 of final>`` (the prefix is left out when it is itself
    unusable). Both carry the generation, so ``clear`` reaches digested keys too; the two forms
    differ in the separator, so they never collide.
    """
    prefix = final[:plen]
    key = prefix + b"%x|" % gen + final[plen:]
    if valid_key(key):
        return key
    head = prefix if len(prefix) <= _LONG_PREFIX and valid_key(prefix) else b""
    return head + b"%x#" % gen + _digest(final)


def wire_head(prefix: bytes, gen: int) -> bytes | None:
    """``<prefix><gen hex>|``, the start of every plain wire key of a generation (None when it
    is not a valid key itself): ``wire_key(final, plen, gen) == head + final[plen:]`` whenever
    that is at most MAX_KEY bytes and ``final[plen:]`` holds no BAD_KEY_BYTES."""
    head = prefix + b"%x|" % gen
    return head if valid_key(head) else None


def gen_key(prefix: bytes) -> bytes:
    """The key holding the generation of namespace ``prefix`` (one copy on every server)."""
    key = b"tsot.gen|" + prefix
    return key if valid_key(key) else b"tsot.gen#" + _digest(prefix)


def new_generation(clock: Callable[[], int] = time.time_ns) -> int:
    """A first generation for a namespace whose generation key is missing (new or evicted).

    Wall-clock microseconds: larger than any generation handed out before (each clear adds
    one, and a key cannot be lost and recreated within a microsecond), so keys written before
    an eviction of the generation key never come back.
    """
    return clock() // 1000


# -- TTLs ------------------------------------------------------------------------------------

RELATIVE_MAX: Final = 30 * 86_400
"""memcached reads an expiry above 30 days as an absolute Unix time (its REALTIME_MAXDELTA)."""
ABSOLUTE_MAX: Final = 2**31 - 1
"""memcached parses expiry times as signed 32-bit: later ones would expire at once."""


def exptime(ttl_ms: int | None, clock: Callable[[], float] = time.time) -> int:
    """memcached's exptime for ``ttl_ms``: 0 = never, whole seconds rounded up (so a
    sub-second TTL is 1 s), an absolute Unix time beyond 30 days (capped in January 2038)."""
    if ttl_ms is None:
        return 0
    seconds = -(-ttl_ms // 1000)
    if seconds <= RELATIVE_MAX:
        return seconds
    return min(int(clock()) + seconds, ABSOLUTE_MAX)


def retime(data: bytes, seconds: int) -> bytes:
    """``data`` (meta commands) with each relative TTL flag (``T<n>``, 0 < n <= 30 days) of its
    ``ms``/``mg``/``ma`` commands shortened by ``seconds``; one that runs out becomes ``T-1``
    (memcached: expired at once). Never (``T0``) and absolute times are left as they are.

    For a write the event loop held back ``seconds`` after the caller asked: its TTL counts
    from the call, not from when it reaches the server.
    """
    out: list[bytes] = []
    pos, size = 0, len(data)
    while pos < size:
        end = data.index(b"\r\n", pos)
        line, pos = data[pos:end], end + 2
        parts = line.split(b" ")
        verb = parts[0]
        if verb in (b"ms", b"mg", b"ma"):
            for i in range(3 if verb == b"ms" else 2, len(parts)):
                token = parts[i]
                if token[:1] == b"T" and 0 < (t := int(token[1:])) <= RELATIVE_MAX:
                    parts[i] = b"T%d" % (t - seconds if t > seconds else -1)
                    line = b" ".join(parts)
        out.append(line + b"\r\n")
        if verb == b"ms":  # its value block follows, whatever bytes it holds
            block = int(parts[2]) + 2
            out.append(data[pos : pos + block])
            pos += block
    return b"".join(out)


def remaining_ms(t: int) -> int:
    """Remaining milliseconds from memcached's ``t`` flag (-1 = no expiry, passed through).

    memcached's clock ticks once per second, so an item reported at ``t`` seconds goes within
    ``(t - 1, t]`` seconds: the middle of that window is reported. Beyond 30 days the expiry was
    sent as a Unix time, which memcached maps onto its monotonic clock with up to two seconds
    of slack, so two seconds are taken off (a TTL is never reported above what was set).
    """
    if t < 0:
        return t
    if t > RELATIVE_MAX:
        return (t - 2) * 1000
    return t * 1000 - 500


# -- ints ------------------------------------------------------------------------------------

_INT_FIRST: Final = frozenset(b"-0123456789")
NATIVE_MIN: Final = -(2**63)
NATIVE_MAX: Final = 2**63
"""Plain decimal values in [NATIVE_MIN, NATIVE_MAX) are safe on the server: memcached's incr
refuses negative ones and cannot wrap positive ones with a native delta below NATIVE_DELTA."""
NATIVE_DELTA: Final = 2**32


def to_wire(value: bytes) -> bytes:
    """The stored form of an encoded value: ints outside [-2**63, 2**63) get an underscore
    after their first digit, so memcached's incr refuses them instead of misreading them
    (it reads ``-9223372036854775809`` as 9223372036854775807 and wraps at 2**64)."""
    if len(value) >= 19 and value[0] in _INT_FIRST:
        n = parse_int(value)
        if n is None:
            return value
        if not NATIVE_MIN <= n < NATIVE_MAX:
            cut = 2 if value[0] == 0x2D else 1
            return value[:cut] + b"_" + value[cut:]
    return value


def from_wire(value: bytes) -> bytes:
    """Undo ``to_wire`` and the space padding memcached leaves after an in-place decr."""
    if value and value[0] in _INT_FIRST:
        if value[-1] == 0x20:
            value = value.rstrip(b" ")
        if b"_" in value:
            value = value.replace(b"_", b"")
    return value


def int_or_none(value: bytes) -> int | None:
    """The int a stored (wire) value holds, or None when it is not a plain decimal int."""
    return parse_int(from_wire(value))
