"""Keys: validation, encoding and the namespace prefix, built once for every backend."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidKey

Key = str | bytes
MAX_KEY_BYTES = 65536
"""Longest final key accepted (namespace included); backends with lower limits digest keys."""


class KeySpace:
    """Turns caller keys into final backend keys: ``namespace + ":" + key`` as UTF-8 bytes.

    An empty namespace adds nothing. ``prefix`` is what ``clear()`` removes.
    """

    __slots__ = ("namespace", "prefix")

    def __init__(self, namespace: str = "") -> None:
        if not isinstance(namespace, str):
            raise InvalidKey(f"namespace must be a str, not {type(namespace).__name__}")
        self.namespace = namespace
        self.prefix = (namespace + ":").encode() if namespace else b""

    def make(self, key: Key) -> bytes:
        """Return the final key for ``key``; raise InvalidKey naming it when it cannot be used."""
        if type(key) is str:
            try:
                raw = key.encode()
            except UnicodeEncodeError as exc:
                raise InvalidKey(f"key {key!r} cannot be encoded as UTF-8: {exc.reason}") from None
        elif isinstance(key, bytes | bytearray | memoryview) and not isinstance(key, bool):
            raw = bytes(key)
        elif isinstance(key, str):
            return self.make(str(key))
        else:
            raise InvalidKey(f"key must be str or bytes, not {type(key).__name__}: {key!r}")
        final = self.prefix + raw if self.prefix else raw
        if len(final) > MAX_KEY_BYTES:
            raise InvalidKey(
                f"key {key[:40]!r}... is {len(final)} bytes; the limit is {MAX_KEY_BYTES}"
            )
        return final

    def make_many(self, keys: Iterable[Key]) -> list[bytes]:
        """Final keys for ``keys``, in order; all are validated before any is used."""
        return [self.make(k) for k in keys]
