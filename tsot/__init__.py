"""tsot: That Storage Over There — one cache/storage API over memory, Redis, Memcached, RocksDB."""

from .config import Location, Option, mask_url, parse_url, register_backend
from .errors import (
    BackendUnavailable,
    ConfigurationError,
    InvalidKey,
    MissingDependency,
    OutcomeUnknown,
    SerializationError,
    StorageClosed,
    StorageLocked,
    TsotError,
    ValueTooLarge,
    WriteRefused,
    WrongType,
)
from .memoize import memoize
from .storage import DEFAULT, AsyncStorage, Storage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "AsyncStorage",
    "BackendUnavailable",
    "ConfigurationError",
    "InvalidKey",
    "Location",
    "MissingDependency",
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
