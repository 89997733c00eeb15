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


def secret_keys(
    value: object, name: str = "option 'secret'", option: str = "secret"
) -> list[bytes] | None:
    """The secrets in ``value`` as bytes (first signs, all verify); None for None or UNSET.

    ``value`` is a str, bytes, or a non-empty list/tuple of them. Raises ConfigurationError
    naming ``name`` (and the position in a list) for an empty list, an empty or short secret or
    a wrong type, with ``option`` as its ``option``; the message never contains the secret.
    """
    if value is None or value is UNSET:
        return None
    if isinstance(value, str | bytes):
        return [_one(value, name, option)]
    if isinstance(value, list | tuple):
        if not value:
            raise ConfigurationError(
                f"{name} is an empty list: give at least one secret, or None to turn signing off",
                option=option,
            )
        return [_one(item, f"{name}[{i}]", option) for i, item in enumerate(value)]
    raise ConfigurationError(
        f"{name} must be a str, bytes or a list of them, not {type(value).__name__}",
        option=option,
    )


def framework_secrets(
    key: object,
    fallbacks: object = None,
    *,
    key_name: str = "SECRET_KEY",
    fallbacks_name: str = "SECRET_KEY_FALLBACKS",
) -> list[bytes] | None:
    """The signing secrets of a web framework's settings, checked: the one place that reads them.

    ``key`` (Django's and Flask's SECRET_KEY) signs; it and every non-empty item of
    ``fallbacks`` (SECRET_KEY_FALLBACKS: None or a list/tuple) verify, so a key can be rotated.
    None when ``key`` is None or empty: the framework has no secret, and the adapter decides
    what that means. An empty fallback is skipped, as the frameworks skip it
    (``os.environ.get("OLD_SECRET_KEY", "")`` is a common idiom), never a public key.

    Raises ConfigurationError whose ``option`` is the setting at fault (``key_name``,
    ``fallbacks_name`` or ``fallbacks_name[i]``): a key that is not a str or bytes, fallbacks
    that are not a list, a secret shorter than MIN_SECRET_BYTES. Messages never show a secret.

    >>> framework_secrets("k" * 16, ["", "old-key-of-16-bytes"])
    [b'kkkkkkkkkkkkkkkk', b'old-key-of-16-bytes']
    >>> framework_secrets("", ["old-key-of-16-bytes"]) is None
    True
    """
    if key is None or key in ("", b""):
        return None
    if not isinstance(key, str | bytes):
        raise ConfigurationError(
            f"{key_name} must be a str or bytes, not {type(key).__name__}", option=key_name
        )
    out = [_one(key, key_name, key_name)]
    given = fallbacks or ()
    if not isinstance(given, list | tuple):
        raise ConfigurationError(
            f"{fallbacks_name} must be a list, not {type(given).__name__}", option=fallbacks_name
        )
    for i, fallback in enumerate(given):
        if fallback:
            where = f"{fallbacks_name}[{i}]"
            out.append(_one(fallback, where, where))
    return out


def _one(secret: object, name: str, option: str) -> bytes:
    if isinstance(secret, str):
        try:
            raw = secret.encode()
        except UnicodeEncodeError:
            raise ConfigurationError(f"{name} cannot be encoded as UTF-8", option=option) from None
    elif isinstance(secret, bytes):
        raw = secret
    else:
        raise ConfigurationError(
            f"{name} must be a str or bytes, not {type(secret).__name__}", option=option
        )
    if not raw:
        raise ConfigurationError(
            f"{name} is empty: an empty secret signs with a key anyone can compute", option=option
        )
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{name} is {len(raw)} bytes; a signing secret needs at least {MIN_SECRET_BYTES} "
            "(use a long random value, e.g. secrets.token_urlsafe(32))",
            option=option,
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
