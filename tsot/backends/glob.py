"""Redis's glob syntax (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x``) for backends that scan
their own keys, so ``keys("user:*")`` matches the same keys on memory and RocksDB as on Redis.

The pattern is read the way Redis's ``stringmatchlen`` reads it, edge cases included: a class
left open at the end of the pattern is closed there, ``[a-]`` is the range from ``a`` to ``]``,
a reversed range is accepted, ``[]`` matches nothing and ``[^]`` any one byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_BACKSLASH, _CLOSE, _CARET, _DASH = b"\\"[0], b"]"[0], b"^"[0], b"-"[0]


def _byte(b: int) -> bytes:
    return re.escape(bytes((b,)))


def _class(pattern: bytes, i: int) -> tuple[bytes, int]:
    """The regex of the class whose body starts at ``i`` (after ``[``), and where it ends."""
    n = len(pattern)
    negate = i < n and pattern[i] == _CARET
    i += negate
    ranges: list[tuple[int, int]] = []
    while i < n:
        c = pattern[i]
        if c == _BACKSLASH and n - i >= 2:
            i += 1
            ranges.append((pattern[i], pattern[i]))
        elif c == _CLOSE:
            i += 1
            break
        elif n - i >= 3 and pattern[i + 1] == _DASH:
            lo, hi = sorted((c, pattern[i + 2]))
            ranges.append((lo, hi))
            i += 2
        else:
            ranges.append((c, c))
        i += 1
    if not ranges:
        return (b"." if negate else b"(?!)"), i
    body = b"".join(_byte(lo) if lo == hi else _byte(lo) + b"-" + _byte(hi) for lo, hi in ranges)
    return b"[" + (b"^" if negate else b"") + body + b"]", i


def _translate(pattern: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == b"*"[0]:
            if not out.endswith(b".*"):
                out += b".*"
        elif c == b"?"[0]:
            out += b"."
        elif c == _BACKSLASH and i < n:
            out += _byte(pattern[i])
            i += 1
        elif c == b"["[0]:
            part, i = _class(pattern, i)
            out += part
        else:
            out += _byte(c)
    return bytes(out)


def matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """A test of whole keys against ``pattern`` in Redis's glob syntax."""
    if pattern == b"*":
        return lambda key: True
    compiled = re.compile(_translate(pattern), re.DOTALL)
    return lambda key: compiled.fullmatch(key) is not None
