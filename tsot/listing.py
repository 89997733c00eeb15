"""The pure steps of listing keys: checking a glob pattern and ``itersize``, and turning the
final keys a backend's ``scan`` finds back into the caller's keys."""

from __future__ import annotations

from typing import Final

from .errors import ConfigurationError

DELETE_BATCH: Final = 1000
"""Keys per ``delete_many`` call of ``delete_pattern`` when no ``itersize`` is given."""


def pattern_bytes(pattern: object) -> bytes:
    """``pattern`` (a str in Redis's glob syntax) as the bytes backends match against."""
    if isinstance(pattern, bytes):
        return pattern
    if not isinstance(pattern, str):
        raise ConfigurationError(
            f"key pattern must be a str (glob: * ? [abc] \\x), not {type(pattern).__name__}"
        )
    try:
        return pattern.encode()
    except UnicodeEncodeError as exc:
        raise ConfigurationError(
            f"key pattern {pattern[:40]!r} cannot be encoded as UTF-8: {exc.reason}"
        ) from None


def check_itersize(itersize: object) -> int | None:
    """``itersize``: None (the backend's default) or a positive int of keys per round trip."""
    if itersize is None or (type(itersize) is int and itersize > 0):
        return itersize
    raise ConfigurationError(f"itersize must be a positive int or None, not {itersize!r}")


def user_key(final: bytes, prefix: bytes) -> str:
    """The caller's key for ``final``: the namespace prefix removed, decoded as UTF-8.

    A key stored as bytes that are not UTF-8 keeps its bytes as lone surrogates
    (``surrogateescape``), so ``key.encode("utf-8", "surrogateescape")`` gives them back.
    """
    return final[len(prefix) :].decode("utf-8", "surrogateescape")
