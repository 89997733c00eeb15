"""Signing secrets: checked before use, and a warning when pickles reach a server unsigned.

A secret anyone can compute is no secret: an empty or short secret (or an empty list of them)
is a ConfigurationError, never a signature with a public key and never signing silently off.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from .errors import ConfigurationError
from .logs import logger

if TYPE_CHECKING:
    from .config import Location

MIN_SECRET_BYTES: Final = 16
"""Shortest secret accepted (UTF-8 bytes): shorter ones can be guessed or brute-forced."""

LOCAL_SCHEMES: Final = frozenset({"memory", "rocksdb"})
"""Storage in this process or on its own disk; every other scheme is a server others may reach."""


class _Unset:
    """The value of ``secret`` when it was not given at all (``secret=None`` is an explicit no)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def secret_keys(value: object, name: str = "option 'secret'") -> list[bytes] | None:
    """The secrets in ``value`` as bytes (first signs, all verify); None for None or UNSET.

    ``value`` is a str, bytes, or a non-empty list/tuple of them. Raises ConfigurationError
    naming ``name`` (and the position in a list) for an empty list, an empty or short secret or
    a wrong type; the message never contains the secret.
    """
    if value is None or value is UNSET:
        return None
    if isinstance(value, str | bytes):
        return [_one(value, name)]
    if isinstance(value, list | tuple):
        if not value:
            raise ConfigurationError(
                f"{name} is an empty list: give at least one secret, or None to turn signing off"
            )
        return [_one(item, f"{name}[{i}]") for i, item in enumerate(value)]
    raise ConfigurationError(
        f"{name} must be a str, bytes or a list of them, not {type(value).__name__}"
    )


def _one(secret: object, name: str) -> bytes:
    if isinstance(secret, str):
        try:
            raw = secret.encode()
        except UnicodeEncodeError:
            raise ConfigurationError(f"{name} cannot be encoded as UTF-8") from None
    elif isinstance(secret, bytes):
        raw = secret
    else:
        raise ConfigurationError(f"{name} must be a str or bytes, not {type(secret).__name__}")
    if not raw:
        raise ConfigurationError(
            f"{name} is empty: an empty secret signs with a key anyone can compute"
        )
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{name} is {len(raw)} bytes; a signing secret needs at least {MIN_SECRET_BYTES} "
            "(use a long random value, e.g. secrets.token_urlsafe(32))"
        )
    return raw


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_unsigned(location: Location, namespace: str, serializer: str, fix: str) -> bool:
    """Log once per process, location and namespace that pickles go unsigned to a server.

    Only network backends storing pickles warn: memory and RocksDB stay in this host, and JSON
    or msgpack payloads do not run code. ``fix`` says how to sign or to opt out. True if logged.
    """
    if location.scheme in LOCAL_SCHEMES or serializer != "pickle":
        return False
    key = (location.digest, namespace)
    with _warned_lock:
        if key in _warned:
            return False
        _warned.add(key)
    logger.warning(
        "tsot: %s (namespace %r) stores pickles unsigned: anyone who can write to that server "
        "can make this process run code when it reads them. %s",
        location.masked,
        namespace,
        fix,
    )
    return True
