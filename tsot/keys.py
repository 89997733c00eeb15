"""Keys: validation, encoding and the namespace prefix, built once for every backend.

The final key is ``escape(namespace) + ":" + key``. The namespace is escaped so that the first
unescaped ``:`` always ends it: ``%`` becomes ``%25`` and ``:`` becomes ``%3A``. Namespace ``a``
with key ``b:c`` (``a:b:c``) and namespace ``a:b`` with key ``c`` (``a%3Ab:c``) are then different
keys, and no namespace's prefix starts another's, so ``clear()`` on ``a`` cannot reach ``a:b``.
A namespace without ``%`` or ``:`` is stored exactly as before the escaping existed.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidKey

Key = str | bytes
MAX_KEY_BYTES = 65536
"""Longest final key accepted (namespace included); backends with lower limits digest keys."""
SHOWN_KEY_CHARS = 16
"""Characters of a key (after its namespace) shown in messages; keys may hold session ids."""


def escape_namespace(namespace: str) -> str:
    """``namespace`` with ``%`` and ``:`` percent-encoded, so it contains no separator."""
    return namespace.replace("%", "%25").replace(":", "%3A")


def shown(key: object, prefix: bytes = b"") -> str:
    """``key`` for an error or log message, as the caller wrote it: never all of a long key.

    Keys are often made of session ids, tokens or e-mail addresses; a message that repeats a
    whole key could put one in a log or an error page. A key's first part (up to its first
    ``:``, within the first 64 characters; Django's KEY_PREFIX) is shown whole, then at most 16
    characters of the rest, then the total length. A bytes key that is UTF-8 is shown as the
    str it equals (``b"a"`` and ``"a"`` are one key); a final key loses its namespace
    ``prefix``, so messages name the caller's key, not the internal one.
    """
    if isinstance(key, bytes | bytearray | memoryview):
        raw = bytes(key)
        if prefix and raw.startswith(prefix):
            raw = raw[len(prefix) :]
        try:
            key = raw.decode()
        except UnicodeDecodeError:
            cut = raw.find(b":", 0, 64) + 1 + SHOWN_KEY_CHARS
            return repr(raw) if len(raw) <= cut else f"{raw[:cut]!r}... ({len(raw)} bytes)"
    if isinstance(key, str):
        cut = key.find(":", 0, 64) + 1 + SHOWN_KEY_CHARS
        return repr(key) if len(key) <= cut else f"{key[:cut]!r}... ({len(key)} characters)"
    return f"a {type(key).__name__}"


def rekey(exc: BaseException, pairs: Iterable[tuple[bytes, Key]]) -> None:
    """Rewrite ``exc``'s message in place so that it names the caller's key.

    Backends and the codec see only final keys (namespace included) and name them through
    ``shown``; the facade, which knows both, calls this on the way out. ``pairs`` are (final
    key, caller's key). Only the error path pays for it.
    """
    if not exc.args or not isinstance(exc.args[0], str):
        return
    text = exc.args[0]
    for final, key in pairs:
        internal = shown(final)
        if internal in text:
            text = text.replace(internal, shown(key))
    exc.args = (text, *exc.args[1:])


class KeySpace:
    """Turns caller keys into final backend keys: ``escape(namespace) + ":" + key`` as UTF-8.

    An empty namespace adds nothing (its keys share the store with every namespace, and its
    ``clear()`` removes everything). ``prefix`` is what ``clear()`` removes.
    """

    __slots__ = ("namespace", "prefix")

    def __init__(self, namespace: str = "") -> None:
        if not isinstance(namespace, str):
            raise InvalidKey(f"namespace must be a str, not {type(namespace).__name__}")
        try:
            prefix = (escape_namespace(namespace) + ":").encode() if namespace else b""
        except UnicodeEncodeError as exc:
            raise InvalidKey(
                f"namespace {shown(namespace)} cannot be encoded as UTF-8: {exc.reason}"
            ) from None
        self.namespace = namespace
        self.prefix = prefix

    def make(self, key: Key) -> bytes:
        """Return the final key for ``key``; raise InvalidKey naming it when it cannot be used."""
        if type(key) is str:
            try:
                raw = key.encode()
            except UnicodeEncodeError as exc:
                raise InvalidKey(
                    f"key {shown(key)} cannot be encoded as UTF-8: {exc.reason}"
                ) from None
        elif isinstance(key, bytes | bytearray | memoryview) and not isinstance(key, bool):
            raw = bytes(key)
        elif isinstance(key, str):
            return self.make(str(key))
        else:
            raise InvalidKey(f"key must be str or bytes, not {type(key).__name__}")
        final = self.prefix + raw if self.prefix else raw
        if len(final) > MAX_KEY_BYTES:
            raise InvalidKey(
                f"key {shown(key)} is {len(final)} bytes with its namespace; "
                f"the limit is {MAX_KEY_BYTES}"
            )
        return final

    def make_many(self, keys: Iterable[Key]) -> list[bytes]:
        """Final keys for ``keys``, in order; all are validated before any is used."""
        return [self.make(k) for k in keys]
