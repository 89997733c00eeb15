"""tsot: That Storage Over There — one cache/storage API over memory, Redis, Memcached, RocksDB."""

from .config import Location, Option, mask_url, parse_url, register_backend
from .errors import (
    BackendUnavailable,
    ConfigurationError,
    InvalidKey,
    LockError,
    LockNotOwnedError,
    MissingDependency,
    NotSupportedError,
    OutcomeUnknown,
    SerializationError,
    StorageClosed,
    StorageLocked,
    TsotError,
    ValueTooLarge,
    WriteRefused,
    WrongType,
)
from .locks import AsyncLock, Lock
from .memoize import memoize
from .storage import DEFAULT, AsyncStorage, Storage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "AsyncLock",
    "AsyncStorage",
    "BackendUnavailable",
    "ConfigurationError",
    "InvalidKey",
    "Location",
    "Lock",
    "LockError",
    "LockNotOwnedError",
    "MissingDependency",
    "NotSupportedError",
    "Option",
    "OutcomeUnknown",
    "SerializationError",
    "Storage",
    "StorageClosed",
    "StorageLocked",
    "TsotError",
    "ValueTooLarge",
    "WriteRefused",
    "WrongType",
    "__version__",
    "mask_url",
    "memoize",
    "parse_url",
    "register_backend",
]
