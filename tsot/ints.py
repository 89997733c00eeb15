"""Exact decimal ints of any size up to ``MAX_INT_DIGITS``, free of Python's 4,300-digit limit.

Python refuses ``int(s)`` and ``str(n)`` past ``sys.get_int_max_str_digits()`` (4,300 digits by
default) because the conversion is quadratic. Stored ints are plain ASCII decimal (so servers can
increment them), so tsot converts them itself, by halves, and bounds the size instead: an int of
more than ``MAX_INT_DIGITS`` digits is refused before it is written, and a stored one is not a
valid value (a logged miss). The process-wide limit is never changed.
"""

from __future__ import annotations

from typing import Final

from .errors import SerializationError

MAX_INT_DIGITS: Final = 50_000
"""Most decimal digits (sign not counted) of a stored int; parsing one costs about 5 ms."""
_CHUNK: Final = 4000  # digits converted by int()/str() directly (below Python's limit)
_CHUNK_BITS: Final = 13_000  # ints below 2**13000 have fewer than 4,000 digits
_MAX_BITS: Final = int(MAX_INT_DIGITS * 3.3219280948873626) + 1  # 10**MAX_INT_DIGITS


def _pow10(k: int, cache: dict[int, int]) -> int:
    v = cache.get(k)
    if v is None:
        v = cache[k] = 10**k
    return v


def _parse(digits: bytes, cache: dict[int, int]) -> int:
    n = len(digits)
    if n <= _CHUNK:
        return int(digits)
    low = n // 2
    return _parse(digits[: n - low], cache) * _pow10(low, cache) + _parse(digits[n - low :], cache)


def _format(n: int, width: int, out: list[str], cache: dict[int, int]) -> None:
    """Append the digits of ``n >= 0``, zero-padded to ``width`` (0: no padding)."""
    if n.bit_length() < _CHUNK_BITS:
        s = str(n)
        out.append(s.zfill(width) if width else s)
        return
    low = int(n.bit_length() * 0.30102999566398120) // 2
    high, rest = divmod(n, _pow10(low, cache))
    _format(high, width - low if width else 0, out, cache)
    _format(rest, low, out, cache)


def parse_int(data: bytes) -> int | None:
    """The int that ``data`` spells (``-?[0-9]+``, at most MAX_INT_DIGITS digits), else None.

    Stricter than ``int()``: no ``+``, spaces, underscores or non-ASCII digits.
    """
    digits = data[1:] if data[:1] == b"-" else data
    if not digits.isdigit() or len(digits) > MAX_INT_DIGITS:  # bytes.isdigit is ASCII only
        return None
    if len(digits) <= _CHUNK:
        return int(data)
    value = _parse(digits, {})
    return -value if digits is not data else value


def format_int(value: int) -> bytes:
    """``value`` in ASCII decimal; SerializationError past MAX_INT_DIGITS digits."""
    if -(1 << _CHUNK_BITS) < value < 1 << _CHUNK_BITS:
        return str(value).encode()
    magnitude = -value if value < 0 else value
    if magnitude.bit_length() <= _MAX_BITS:
        out: list[str] = ["-"] if value < 0 else []
        _format(magnitude, 0, out, {})
        text = "".join(out).encode()
        if len(text) - (value < 0) <= MAX_INT_DIGITS:
            return text
    raise SerializationError(
        f"int of about {int(magnitude.bit_length() * 0.30103)} digits is too large to store: "
        f"tsot stores ints of at most {MAX_INT_DIGITS} decimal digits"
    )
