"""Redis's glob syntax (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x``) for backends that scan
their own keys, so ``keys("user:*")`` matches the same keys on memory and RocksDB as on Redis."""

from __future__ import annotations

import re
from collections.abc import Callable


def _translate(pattern: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        i += 1
        if c == b"*":
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"\\" and i < n:
            out += re.escape(pattern[i : i + 1])
            i += 1
        elif c == b"[":
            end = _class_end(pattern, i)
            if end < 0:  # no closing bracket: a literal "["
                out += re.escape(c)
                continue
            out += _class(pattern[i:end])
            i = end + 1
        else:
            out += re.escape(c)
    return bytes(out)


def _class_end(pattern: bytes, i: int) -> int:
    """Index of the ``]`` closing a class that starts at ``i`` (after ``[``), or -1."""
    n = len(pattern)
    if i < n and pattern[i : i + 1] == b"^":
        i += 1
    while i < n:
        c = pattern[i : i + 1]
        if c == b"\\":
            i += 2
            continue
        if c == b"]":
            return i
        i += 1
    return -1


def _class(body: bytes) -> bytes:
    out = bytearray(b"[")
    i, n = 0, len(body)
    if body[:1] == b"^":
        out += b"^"
        i = 1
    if i == n:  # "[]" or "[^]": Redis matches nothing / any byte
        return b"(?!)" if out == b"[" else b"."
    while i < n:
        c = body[i : i + 1]
        if c == b"\\" and i + 1 < n:
            i += 1
            c = body[i : i + 1]
        if i + 2 < n and body[i + 1 : i + 2] == b"-":
            lo, hi = c, body[i + 2 : i + 3]
            if hi == b"\\" and i + 3 < n:
                hi, i = body[i + 3 : i + 4], i + 1
            lo, hi = min(lo, hi), max(lo, hi)  # Redis accepts a reversed range
            out += re.escape(lo) + b"-" + re.escape(hi)
            i += 3
        else:
            out += re.escape(c)
            i += 1
    return bytes(out + b"]")


def matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """A test of whole keys against ``pattern`` in Redis's glob syntax."""
    if pattern == b"*":
        return lambda key: True
    compiled = re.compile(_translate(pattern), re.DOTALL)
    return lambda key: compiled.fullmatch(key) is not None
