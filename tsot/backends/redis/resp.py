"""A pure-Python RESP2/RESP3 encoder and reader, used only when hiredis is not installed, and
the packing of set_many's runs of ``SET`` commands (``pack_sets``), used by both transports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final


def _part(arg: Any) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int | float):
        return repr(arg).encode()
    if isinstance(arg, bytearray | memoryview):
        return bytes(arg)
    raise TypeError(f"cannot send a {type(arg).__name__} to Redis")


def pack_command(args: Sequence[Any]) -> bytes:
    """One command as a RESP array of bulk strings (what hiredis.pack_command returns)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _part(arg)
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


_SET: Final = "SET"


def spellings(names: Sequence[str]) -> frozenset[Any]:
    """Every way a command (or flag) name may stand in a command: str or bytes, upper or lower
    case."""
    return frozenset(form for n in names for form in (n, n.lower(), n.encode(), n.lower().encode()))


class SetRun(list[tuple[Any, ...]]):
    """``SET key value FLAG n`` commands of bytes keys and values sharing one FLAG and one int
    ``n``, as ``redis.commands.set_run`` makes them (it vouches for that form): packed in one go,
    with no check per command."""

    __slots__ = ("flag", "n")

    def __init__(self, items: Sequence[tuple[bytes, bytes]], flag: str, n: int) -> None:
        super().__init__([(_SET, k, v, flag, n) for k, v in items])
        self.flag, self.n = flag, n


def _set_format(flag: str, n: int) -> bytes:
    """The format of one ``SET key value FLAG n`` (key and value left to fill in)."""
    f, a = flag.encode(), b"%d" % n
    tail = b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(f), f, len(a), a)
    return b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" + tail.replace(b"%", b"%%")


def pack_sets(cmds: Sequence[Sequence[Any]]) -> bytes | None:
    """set_many's run of ``SET key value FLAG n`` (a ``SetRun``, or a list of such commands
    sharing one FLAG and one int ``n``), each packed by one ``bytes`` format with the shared
    tail made once: about half what hiredis takes. None if any command differs (then hiredis
    packs them)."""
    if type(cmds) is SetRun:
        fmt = _set_format(cmds.flag, cmds.n)
        return b"".join([fmt % (len(c[1]), c[1], len(c[2]), c[2]) for c in cmds])
    if len(cmds) < 2 or len(cmds[0]) != 5 or cmds[0][0] is not _SET:
        return None
    flag, at = cmds[0][3], cmds[0][4]
    if type(flag) is not str or type(at) is not int:
        return None
    fmt = _set_format(flag, at)
    out: list[bytes] = []
    append = out.append
    for cmd in cmds:  # identity: the same objects for the whole run, or hiredis packs it
        if len(cmd) != 5 or cmd[4] is not at or cmd[3] is not flag or cmd[0] is not _SET:
            return None
        k, v = cmd[1], cmd[2]
        if type(k) is not bytes or type(v) is not bytes:
            return None
        append(fmt % (len(k), k, len(v), v))
    return b"".join(out)


def pack_batch(cmds: Sequence[Sequence[Any]], pack_one: Callable[[Any], bytes]) -> bytes:
    """The commands in RESP, one buffer: a run of SETs by ``pack_sets``, else each by
    ``pack_one`` (hiredis packs in C; redis-py's ``pack_commands`` encodes every argument in
    Python, most of a 100-key pipeline's cost)."""
    packed = pack_sets(cmds)
    return packed if packed is not None else b"".join([pack_one(c) for c in cmds])


class _Incomplete(Exception):
    pass


class Reader:
    """``hiredis.Reader``'s interface: ``feed(bytes)``; ``gets()`` is a reply or False."""

    def __init__(self, replyError: type[Exception] = Exception) -> None:
        self._error = replyError
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def gets(self) -> Any:
        try:
            reply, pos = self._parse(self._pos)
        except _Incomplete:
            return False
        self._pos = pos
        if pos > 65536:  # compact now and then, not after every reply
            del self._buf[:pos]
            self._pos = 0
        return reply

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        line, pos = self._line(pos)
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"("):
            return (rest if kind == b"+" else int(rest)), pos
        if kind == b":":
            return int(rest), pos
        if kind in (b"-", b"!"):
            if kind == b"!":
                rest, pos = self._bulk(int(rest), pos)
            return self._error(rest.decode(errors="replace")), pos
        if kind == b"_":
            return None, pos
        if kind == b"#":
            return rest == b"t", pos
        if kind == b",":
            return float(rest), pos
        if kind in (b"$", b"="):
            n = int(rest)
            return (None, pos) if n < 0 else self._bulk(n, pos)
        if kind in (b"*", b"~", b">", b"%"):
            n = int(rest)
            if n < 0:
                return None, pos
            items = []
            for _ in range(n * 2 if kind == b"%" else n):
                item, pos = self._parse(pos)
                items.append(item)
            if kind == b"%":
                return dict(zip(items[::2], items[1::2], strict=True)), pos
            return items, pos
        raise ValueError(f"unknown RESP type {kind!r}")

    def _bulk(self, n: int, pos: int) -> tuple[bytes, int]:
        if len(self._buf) < pos + n + 2:
            raise _Incomplete
        return bytes(self._buf[pos : pos + n]), pos + n + 2
