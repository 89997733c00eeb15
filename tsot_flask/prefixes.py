"""A callable CACHE_KEY_PREFIX (as cachelib's ``key_prefix``): asked on every call.

Each value the callable returns is a tsot namespace of its own, so keys written under one
prefix are invisible under another and ``clear()`` removes the keys of the current prefix only,
as cachelib's ``clear`` deletes ``prefix*``. The Storage of each prefix is made on first use
(no I/O: it shares the location's pools) and the most recent ``MAX_PREFIXES`` are kept. On the
private in-process store (``tsot_flask.MemoryCache``) each prefix has its own table.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tsot import ConfigurationError, Storage

MAX_PREFIXES = 256


class PrefixedStorages:
    """Stands in for a Storage; every call goes to the Storage of the current prefix."""

    def __init__(
        self,
        prefix: Callable[[], object],
        open_for: Callable[[str], Storage],
        first: Storage,
        cache_type: str,
    ) -> None:
        self._prefix = prefix
        self._open_for = open_for
        self._cache_type = cache_type
        self._by_prefix: OrderedDict[str, Storage] = OrderedDict()
        self._lock = threading.Lock()
        # the same for every prefix: answered without calling the prefix (no app context needed)
        self.location = first.location
        self.codec = first.codec
        self.url = first.url

    @property
    def namespace(self) -> str:
        return f"<{getattr(self._prefix, '__name__', 'callable')}()>"

    def current(self) -> Storage:
        """The Storage of the prefix the callable returns now."""
        prefix = self._prefix()
        if not isinstance(prefix, str):
            raise ConfigurationError(
                f"invalid CACHE_KEY_PREFIX for CACHE_TYPE {self._cache_type!r}: the callable "
                f"returned a {type(prefix).__name__}, not a str"
            )
        with self._lock:
            storage = self._by_prefix.get(prefix)
            if storage is not None:
                self._by_prefix.move_to_end(prefix)
                return storage
        storage = self._open_for(prefix)
        with self._lock:
            storage = self._by_prefix.setdefault(prefix, storage)
            while len(self._by_prefix) > MAX_PREFIXES:
                self._by_prefix.popitem(last=False)
        return storage

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)

    def __repr__(self) -> str:
        return f"<storages of {self.url} per CACHE_KEY_PREFIX {self.namespace}>"
