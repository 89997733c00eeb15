"""The one exception tree of tsot.

    TsotError
    ├── ConfigurationError (ValueError)      bad URL, option or argument value
    │   └── MissingDependency (ImportError)  an optional driver is not installed
    ├── InvalidKey (ValueError)              a key that cannot be stored
    ├── ValueTooLarge (ValueError)           a value over the backend's size limit
    ├── WrongType (TypeError)                load_int of a str, incr of a pickled object, ...
    ├── SerializationError (ValueError)      a value that cannot be encoded (unpicklable, ...)
    ├── WriteRefused                         the server is up but refused to store (full, ACL)
    ├── StorageClosed (RuntimeError)         a Storage used after ``close()``
    ├── NotSupportedError (NotImplementedError)  the backend cannot (memcached listing keys)
    ├── LockError                            a lock used in a way its state forbids
    │   └── LockNotOwnedError                release/extend of a lock another owner now holds
    ├── BackendUnavailable (ConnectionError) the server or database cannot be reached
    │   └── OutcomeUnknown                   the reply of a command not safe to resend was lost
    └── StorageLocked (BackendUnavailable)   a local database is held by another process

Driver errors are translated in one place per backend and chained with ``raise ... from``.
Messages never contain credentials.
"""

from __future__ import annotations


class TsotError(Exception):
    """Base class of every error raised by tsot."""


class ConfigurationError(TsotError, ValueError):
    """A URL, option or argument is malformed or unknown; the message names it.

    ``option`` is the name of the option or setting at fault when there is one (``"namespace"``,
    ``"socket_timeout"``, ``"SECRET_KEY_FALLBACKS[1]"``), else None (a malformed URL, a bad
    argument). Adapters use it to name the framework setting the option came from, never the
    message text:

    >>> ConfigurationError("option 'db' must be an integer, not 'x'", option="db").option
    'db'
    """

    def __init__(self, message: str = "", *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class MissingDependency(ConfigurationError, ImportError):
    """An optional driver is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed: "
            f'pip install "tsot[{extra}]"'
        )
        self.package = package
        self.extra = extra
        self.feature = feature

    def __reduce__(self) -> tuple[type[MissingDependency], tuple[str, str, str]]:
        # pickle re-creates an exception from its args (the message): give it the three names
        return type(self), (self.package, self.extra, self.feature)


class InvalidKey(TsotError, ValueError):
    """A key is not a str or bytes, cannot be encoded, or is too long."""


class ValueTooLarge(TsotError, ValueError):
    """An encoded value is larger than the backend accepts."""


class WrongType(TsotError, TypeError):
    """A stored value is not of the type the operation needs."""


class SerializationError(TsotError, ValueError):
    """A value cannot be serialized with the configured serializer."""


class WriteRefused(TsotError):
    """The server answered and refused the command: it is full (Redis ``OOM`` under
    ``noeviction``, memcached "out of memory storing object"), cannot persist (Redis
    ``MISCONF``), or the user may not run it (Redis ``NOPERM``).

    The server is up and keeps serving reads, so this is never an outage: with ``fail_open`` it
    does not open the circuit breaker.
    """


class StorageClosed(TsotError, RuntimeError):
    """A Storage or AsyncStorage was used after ``close()``."""


class NotSupportedError(TsotError, NotImplementedError):
    """The backend cannot do this at all (memcached cannot list its keys); the message names the
    alternative."""


class LockError(TsotError):
    """A lock cannot do what was asked: released while unlocked, a blocking ``with`` that timed
    out. Named after redis-py's, so code written for django-redis locks reads the same."""


class LockNotOwnedError(LockError):
    """``release``/``extend`` of a lock that expired and is now held by another owner (or by
    nobody): nothing was changed."""


class BackendUnavailable(TsotError, ConnectionError):
    """The backend cannot be reached or did not answer in time."""


class OutcomeUnknown(BackendUnavailable):
    """The connection was lost after a command that must not run twice (``incr``, ``add``) was
    sent: the server may or may not have applied it, and it was not sent again."""


class StorageLocked(BackendUnavailable):
    """A local database is held by another process."""


def require(module: str, package: str, extra: str, feature: str) -> object:
    """Import ``module`` or raise MissingDependency naming ``tsot[extra]``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(package, extra, feature) from exc
