"""Reading Flask-Caching's CACHE_* keys into a storage URL, tsot options and adapter settings."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from tsot import ConfigurationError, Location, mask_url, parse_url
from tsot import integration as core
from tsot.integration import (
    REDIS_SCHEMES,
    default_sign,
    framework_secrets,
    needs_secret,
    split_url,
)
from tsot_flask.timeouts import whole_seconds

DEFAULT_PREFIX = "flask_cache_"
"""Flask-Caching's own default for CACHE_KEY_PREFIX (``Cache.init_app`` sets it)."""
DEFAULT_THRESHOLD = 500
"""Flask-Caching's default CACHE_THRESHOLD; SimpleCache also uses it when the key is 0."""
DEFAULT_MEMCACHED_SERVERS = ("127.0.0.1:11211",)
"""What Flask-Caching's MemcachedCache connects to when CACHE_MEMCACHED_SERVERS is None."""

# Options that have their own Flask-Caching key: giving them in CACHE_OPTIONS would make two
# sources of truth, so the error points at the key to use instead.
_OWN_KEYS = {
    "namespace": "CACHE_KEY_PREFIX",
    "key_prefix": "CACHE_KEY_PREFIX",
    "default_ttl": "CACHE_DEFAULT_TIMEOUT",
    "threshold": "CACHE_THRESHOLD",
}
# one server: redis://, rediss://, unix://, valkey://, valkeys://
_REDIS_SCHEMES = tuple(s for s, topology in REDIS_SCHEMES.items() if topology == "single")


@dataclass(repr=False)
class Settings:
    """What a ``tsot_flask`` class needs to open its Storage, and where each part came from.

    ``url`` None means a private in-memory store. ``origins`` maps each option name to the
    config key it came from, so an error about an option can name that key; ``url_key`` names
    the key(s) the URL was built from.
    """

    cache_type: str
    url: str | None = field(repr=False)
    url_key: str
    default_timeout: int
    ignore_delete_many_errors: bool
    options: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    unsigned_by_default: bool = False
    """No SECRET_KEY and no CACHE_OPTIONS secret: objects are stored unsigned (warned once)."""
    prefix_callable: Callable[[], object] | None = None
    """A callable CACHE_KEY_PREFIX (tsot_flask.prefixes); ``options["namespace"]`` is then ""."""

    @property
    def masked_url(self) -> str | None:
        """The URL with any password replaced by ``***``."""
        return None if self.url is None else mask_url(self.url)

    def __repr__(self) -> str:
        shown = {
            k: ("***" if v and ("secret" in k or "password" in k) else v)
            for k, v in self.options.items()
        }
        return f"Settings({self.cache_type!r}, url={self.masked_url!r}, options={shown!r})"

    def blame(self, error: ConfigurationError) -> str:
        """The config key ``error`` is about: where its option came from, else the URL's key
        (an option from the URL's query, or no option at all: a malformed URL)."""
        if error.option is not None and error.option in self.origins:
            return self.origins[error.option]
        return self.url_key


def fail(key: str, cache_type: str, problem: str) -> ConfigurationError:
    """The error for a bad Flask-Caching key: it names the key and the CACHE_TYPE."""
    return ConfigurationError(f"invalid {key} for CACHE_TYPE {cache_type!r}: {problem}")


# -- the keys every class reads ---------------------------------------------------------------


def default_timeout(value: object, cache_type: str) -> int:
    """CACHE_DEFAULT_TIMEOUT as whole seconds (0 = never expires), as cachelib rounds it."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, str):
        # Flask-Caching 2.5 turns the setting into an int first; earlier releases pass it as written
        value = value if whole_seconds(value) is None else whole_seconds(value)
    if isinstance(value, float) and math.isfinite(value):
        value = math.ceil(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(
            "CACHE_DEFAULT_TIMEOUT",
            cache_type,
            f"must be a whole number of seconds (0 = never expires), not {value!r}",
        )
    if value < 0:
        raise fail(
            "CACHE_DEFAULT_TIMEOUT",
            cache_type,
            f"must be >= 0 (0 = never expires), not {value}: a negative default would "
            "expire every value as it is written",
        )
    return value


def key_prefix(value: object, cache_type: str) -> str | Callable[[], object]:
    """CACHE_KEY_PREFIX as the tsot namespace ("" for None), or a callable asked on every call
    (cachelib's ``key_prefix``: tsot_flask.prefixes)."""
    if value is None:
        return ""
    if callable(value):
        return value
    if not isinstance(value, str):
        raise fail(
            "CACHE_KEY_PREFIX",
            cache_type,
            f"must be a str or a callable returning one, not {type(value).__name__}",
        )
    return value


def secret(config: Mapping[str, Any]) -> list[bytes] | None:
    """SECRET_KEY then the non-empty SECRET_KEY_FALLBACKS, checked; None without a SECRET_KEY.

    Raises ConfigurationError whose ``option`` is SECRET_KEY, SECRET_KEY_FALLBACKS or
    SECRET_KEY_FALLBACKS[i] (``tsot.integration.framework_secrets``, as for Django).
    """
    return framework_secrets(config.get("SECRET_KEY"), config.get("SECRET_KEY_FALLBACKS"))


UNSIGNED_FIX = (
    "Set the app's SECRET_KEY (at least 16 bytes) to sign them, or CACHE_OPTIONS="
    '{"secret": None} to accept this.'
)
"""What the startup warning about unsigned pickles tells a Flask app to do."""


def read(
    cache_type: str,
    config: Mapping[str, Any],
    kwargs: Mapping[str, Any],
    url: str | None,
    url_key: str,
) -> Settings:
    """Settings from the keys shared by every class plus the URL a class has built.

    ``kwargs`` is what Flask-Caching passes to ``factory``: ``default_timeout`` (from
    CACHE_DEFAULT_TIMEOUT), ``ignore_delete_many_errors`` (from CACHE_IGNORE_ERRORS) and the
    items of CACHE_OPTIONS, which become tsot Storage options.
    """
    rest = dict(kwargs)
    timeout = default_timeout(rest.pop("default_timeout", 300), cache_type)
    # Flask-Caching passes CACHE_IGNORE_ERRORS to factory only from 2.5 on
    ignore = bool(rest.pop("ignore_delete_many_errors", config.get("CACHE_IGNORE_ERRORS", False)))
    options: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, value in rest.items():
        if name in _OWN_KEYS:
            raise fail(
                "CACHE_OPTIONS", cache_type, f"{name!r} is set with {_OWN_KEYS[name]} instead"
            )
        options[name] = value
        origins[name] = "CACHE_OPTIONS"
    prefix = key_prefix(config.get("CACHE_KEY_PREFIX", DEFAULT_PREFIX), cache_type)
    options["namespace"] = prefix if isinstance(prefix, str) else ""
    origins["namespace"] = "CACHE_KEY_PREFIX"
    unsigned = False
    scheme = url.partition("://")[0] if url else "memory"
    if "secret" not in options and not needs_secret(scheme):
        options["secret"] = None  # process memory is never signed: no SECRET_KEY needed
    if "secret" not in options:
        try:
            options["secret"] = secret(config)
        except ConfigurationError as exc:
            raise fail(exc.option or "SECRET_KEY", cache_type, str(exc)) from exc
        origins["secret"] = "SECRET_KEY"
        unsigned = options["secret"] is None
    if "sign" not in options:  # cached pages are str: signed too on a network store
        options["sign"] = default_sign(scheme, options["secret"] is not None)
    found = Settings(cache_type, url, url_key, timeout, ignore, options, origins, unsigned)
    found.prefix_callable = None if isinstance(prefix, str) else prefix
    return found


def no_args(args: Sequence[Any], cache_type: str) -> None:
    """Per-kind classes take everything from named keys; positional CACHE_ARGS are refused."""
    if args:
        raise fail(
            "CACHE_ARGS",
            cache_type,
            f"takes no positional arguments (got {len(args)}); put storage options in "
            "CACHE_OPTIONS",
        )


# -- one URL builder per class -----------------------------------------------------------------


def tsot_url(config: Mapping[str, Any], args: Sequence[Any], cache_type: str) -> tuple[str, str]:
    """The URL of ``TsotCache``: CACHE_TSOT_URL, or the only item of CACHE_ARGS."""
    url = config.get("CACHE_TSOT_URL")
    if args:
        if url is not None or len(args) != 1:
            raise fail(
                "CACHE_ARGS",
                cache_type,
                "may only hold the storage URL, and only when CACHE_TSOT_URL is not set",
            )
        url, key = args[0], "CACHE_ARGS"
    else:
        key = "CACHE_TSOT_URL"
    if not isinstance(url, str) or not url:
        shown = "not set" if url is None else f"a {type(url).__name__}, not a URL string"
        raise fail(
            key,
            cache_type,
            f"{shown}; set CACHE_TSOT_URL to a storage URL such as memory://, "
            "redis://host:6379/0, memcached://host:11211 or rocksdb:///path",
        )
    _check_url(url, key, cache_type)
    return url, key


def redis_url(config: Mapping[str, Any], cache_type: str) -> tuple[str, str]:
    """The Redis URL: CACHE_REDIS_URL (plus DB/PASSWORD it lacks), else HOST/PORT/DB/PASSWORD."""
    db = config.get("CACHE_REDIS_DB", 0)
    if isinstance(db, str) and db.isdigit():
        db = int(db)
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise fail("CACHE_REDIS_DB", cache_type, f"must be an integer >= 0, not {db!r}")
    password = config.get("CACHE_REDIS_PASSWORD")
    if password is not None and not isinstance(password, str):
        raise fail(
            "CACHE_REDIS_PASSWORD", cache_type, f"must be a str, not {type(password).__name__}"
        )
    url = config.get("CACHE_REDIS_URL")
    if url:
        if not isinstance(url, str):
            raise fail("CACHE_REDIS_URL", cache_type, f"must be a str, not {type(url).__name__}")
        location = _check_url(url, "CACHE_REDIS_URL", cache_type)
        if location.scheme not in _REDIS_SCHEMES:
            raise fail(
                "CACHE_REDIS_URL",
                cache_type,
                f"{mask_url(url)!r} is not a redis://, rediss://, valkey://, valkeys:// or "
                "unix:// URL "
                "(use tsot_flask.TsotCache with CACHE_TSOT_URL for other storage)",
            )
        return _complete_redis_url(url, location, db, password), "CACHE_REDIS_URL"
    host = config.get("CACHE_REDIS_HOST", "localhost") or "localhost"
    if not isinstance(host, str) or any(c in host for c in "/@?#, "):
        shown = repr(mask_url(host)) if isinstance(host, str) else type(host).__name__
        raise fail("CACHE_REDIS_HOST", cache_type, f"must be a host name or address, not {shown}")
    port = config.get("CACHE_REDIS_PORT", 6379)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise fail("CACHE_REDIS_PORT", cache_type, f"must be a port number, not {port!r}")
    url = core.redis_url(host, port, db, password)
    key = "CACHE_REDIS_HOST/PORT/DB/PASSWORD"
    _check_url(url, key, cache_type)
    return url, key


def _complete_redis_url(url: str, location: Location, db: int, password: str | None) -> str:
    """Add CACHE_REDIS_DB and CACHE_REDIS_PASSWORD to a URL that does not give them itself.

    Where the URL says something it wins (Flask-Caching's rule for the db); it is only completed.
    The URL is cut by tsot's own splitter, so a password with ``/``, ``?`` or ``#`` stays whole.
    """
    parts = split_url(url)
    path, query = parts.path, parts.query
    if db:
        if location.scheme == "unix":
            if "db" not in location.query:
                query = f"{query}&db={db}" if query else f"db={db}"
        elif not path.strip("/"):
            path = f"/{db}"
    userinfo = parts.userinfo
    if password and location.password is None:
        userinfo = f"{userinfo or ''}:{quote(password, safe='')}"
    auth = f"{userinfo}@" if userinfo is not None else ""
    return f"{parts.scheme}://{auth}{parts.hostpart}{path}" + (f"?{query}" if query else "")


def memcached_url(config: Mapping[str, Any], cache_type: str) -> tuple[str, str]:
    """``memcached://h1:p1,h2:p2`` from CACHE_MEMCACHED_SERVERS (a list, or one str).

    Socket paths (``/run/memcached.sock`` or ``unix:/run/...``, pylibmc's forms) are servers
    too; the URL is built by ``tsot.integration.memcached_url``, as Django's MemcachedCache does.
    """
    key = "CACHE_MEMCACHED_SERVERS"
    servers = config.get(key)
    if servers is None:
        servers = DEFAULT_MEMCACHED_SERVERS
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",")]
    if not isinstance(servers, list | tuple) or not servers:
        raise fail(
            key,
            cache_type,
            f"must be a non-empty list of 'host:port' strings, not "
            f"{'an empty' if isinstance(servers, list | tuple) else 'a'} {type(servers).__name__}",
        )
    try:
        url = core.memcached_url(servers)
    except ConfigurationError as exc:
        raise fail(key, cache_type, str(exc)) from exc
    _check_url(url, key, cache_type)
    return url, key


def rocksdb_url(config: Mapping[str, Any], cache_type: str) -> tuple[str, str]:
    """``rocksdb:///absolute/path`` from CACHE_DIR (relative paths are from the working dir)."""
    path = config.get("CACHE_DIR")
    if path is None or path == "":
        raise fail("CACHE_DIR", cache_type, "not set; set it to the RocksDB directory")
    try:
        url = core.rocksdb_url(path)
    except ConfigurationError as exc:
        raise fail("CACHE_DIR", cache_type, f"must be a path, not {type(path).__name__}") from exc
    _check_url(url, "CACHE_DIR", cache_type)
    return url, "CACHE_DIR"


def max_entries(config: Mapping[str, Any], cache_type: str) -> int:
    """The memory store's ``max_entries``: CACHE_THRESHOLD, where 0 or None means 500."""
    threshold = config.get("CACHE_THRESHOLD", DEFAULT_THRESHOLD) or DEFAULT_THRESHOLD
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise fail("CACHE_THRESHOLD", cache_type, f"must be an integer >= 0, not {threshold!r}")
    return threshold


def _check_url(url: str, key: str, cache_type: str) -> Location:
    try:
        return parse_url(url)
    except ConfigurationError as exc:
        raise fail(key, cache_type, str(exc)) from exc
