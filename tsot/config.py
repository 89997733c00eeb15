"""URLs, options and the backend registry: every setting is parsed and checked here, by name."""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote

from .errors import ConfigurationError, MissingDependency
from .secrets import LOCAL_SCHEMES, UNSET

# -- options ---------------------------------------------------------------------------------


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
    raise ConfigurationError(
        f"option {name!r} must be a boolean (true/false), not {value!r}", option=name
    )


def _number(name: str, value: object, kind: type) -> Any:
    if isinstance(value, bool):
        raise ConfigurationError(f"option {name!r} must be a number, not {value!r}", option=name)
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            raise ConfigurationError(
                f"option {name!r} must be {'an integer' if kind is int else 'a number'}, "
                f"not {value!r}",
                option=name,
            ) from None
    elif kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if kind is int and not isinstance(value, int):
        raise ConfigurationError(f"option {name!r} must be an integer, not {value!r}", option=name)
    if kind is float and not isinstance(value, int | float):
        raise ConfigurationError(f"option {name!r} must be a number, not {value!r}", option=name)
    if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
        raise ConfigurationError(
            f"option {name!r} must be a finite number, not {value!r}", option=name
        )
    return kind(value)


def _names(name: str, value: object, choices: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise ConfigurationError(
            f"option {name!r} must be a list of names or a comma-separated string, not "
            f"{type(value).__name__}",
            option=name,
        )
    bad = [v for v in items if not isinstance(v, str) or v not in choices]
    if bad or not items:
        raise ConfigurationError(
            f"option {name!r} must name one or more of {', '.join(choices)}, not {value!r}",
            option=name,
        )
    return tuple(dict.fromkeys(items))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Option:
    """One option: its name, type (bool, int, float, str), default, bounds and documentation.

    ``nullable`` lets None through, and the string "none" for options a URL can give; for
    objects and credentials (which never come from a URL) "none" is a value like any other, so a
    secret or password "none" never turns signing or authentication off. ``secret`` marks
    credentials, never shown.
    """

    name: str
    kind: type
    default: Any
    doc: str
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    secret: bool = False

    @property
    def none_string_is_none(self) -> bool:
        """True if the string "none" means None for this option (URL-given, not a secret)."""
        return self.kind is not object and not self.secret

    def parse(self, value: object) -> Any:
        """Convert ``value`` (a Python value or a URL string) or raise naming the option."""
        if self.nullable and (
            value is None
            or (self.none_string_is_none and isinstance(value, str) and value.lower() == "none")
        ):
            return None
        if value is None:
            raise ConfigurationError(f"option {self.name!r} cannot be None", option=self.name)
        if self.kind is bool:
            out: Any = _bool(self.name, value)
        elif self.kind in (int, float):
            out = _number(self.name, value, self.kind)
            if self.minimum is not None and out < self.minimum:
                raise ConfigurationError(
                    f"option {self.name!r} must be >= {self.minimum:g}, not {value!r}",
                    option=self.name,
                )
        elif self.kind is tuple:  # names: a list, or one comma-separated string (URLs)
            out = _names(self.name, value, self.choices or ())
            return out
        elif self.kind is str:
            if not isinstance(value, str):
                raise ConfigurationError(
                    f"option {self.name!r} must be a string, not {type(value).__name__}",
                    option=self.name,
                )
            out = value
        else:  # an arbitrary Python object (clock, secret, ssl context): keyword arguments only
            out = value
        if self.choices is not None and out not in self.choices:
            shown = "***" if self.secret else repr(value)
            raise ConfigurationError(
                f"option {self.name!r} must be one of {', '.join(self.choices)}, not {shown}",
                option=self.name,
            )
        return out


OBSERVABILITY_OPTIONS: tuple[Option, ...] = (
    Option(
        "metrics",
        tuple,
        None,
        "Export operation metrics: stats (counters in stats() only), prometheus, otel.",
        choices=("stats", "prometheus", "otel"),
        nullable=True,
    ),
    Option("tracing", bool, False, "One OpenTelemetry span per backend operation."),
    Option("label", str, "", "Name of this storage in metrics and traces (default: its URL)."),
    Option(
        "prometheus_registry",
        object,
        None,
        "The prometheus_client CollectorRegistry for metrics=prometheus (default: REGISTRY).",
        nullable=True,
    ),
)
"""docs/observability.md: the options that attach tsot.events listeners when a storage opens."""

CORE_OPTIONS: tuple[Option, ...] = (
    Option("namespace", str, "", "Prefix (plus ':') of every key; clear() removes only it."),
    Option(
        "serializer", str, "pickle", "Object serializer.", choices=("pickle", "json", "msgpack")
    ),
    Option(
        "compression",
        str,
        "none",
        "Compression of large values.",
        choices=("none", "zlib", "zstd", "lz4"),
    ),
    Option(
        "compress_threshold", int, 1024, "Compress payloads of at least this many bytes.", minimum=0
    ),
    Option("default_ttl", float, None, "TTL in seconds when a write passes none.", nullable=True),
    Option("pickle_protocol", int, 5, "Pickle protocol for new values.", minimum=2),
    Option(
        "secret",
        object,
        UNSET,
        "Secret (or list of secrets, the first signs) of at least 16 bytes that signs serialized "
        "objects; None turns signing off (not given: off, with a warning on network backends).",
        nullable=True,
        secret=True,
    ),
    Option(
        "max_value_size",
        int,
        64 * 1024 * 1024,
        "Largest value payload (bytes, before compression) written or inflated on read; "
        "at most 512 MiB.",
        minimum=1,
    ),
    Option(
        "accept",
        tuple,
        None,
        "Object serializers a read decodes (default: the serializer); others are misses.",
        choices=("pickle", "json", "msgpack"),
        nullable=True,
    ),
    Option(
        "sign",
        str,
        "objects",
        "What the secret signs: objects, or all (str, bytes and floats too).",
        choices=("objects", "all"),
    ),
    Option(
        "accept_unbound",
        bool,
        False,
        "Also accept values signed before signatures covered the key (tsot 0.1); "
        "removed in the next release.",
    ),
    Option(
        "fail_open",
        bool,
        False,
        "Turn backend outages into misses and skipped writes; refused writes are reported, "
        "not raised. Invalidations and incr still raise.",
    ),
    Option(
        "fail_open_invalidation",
        bool,
        False,
        "With fail_open: skip delete, delete_many, clear and expire/touch/persist while the "
        "backend is out (the old value may be served after it returns) instead of raising.",
    ),
    Option(
        "probe_interval",
        float,
        5.0,
        "With fail_open: seconds between probes of a dead backend.",
        minimum=0.0,
    ),
    # stampede protection of get_or_compute and the framework read-throughs (docs/stampede.md)
    Option(
        "stampede",
        bool,
        True,
        "Read-throughs (get_or_compute, Django get_or_set and cache_page) let one caller "
        "compute a missing value (a lease) and refresh hot values early.",
    ),
    Option(
        "grace",
        float,
        0.0,
        "Seconds a read-through still serves an expired value while one caller refreshes it "
        "or when its compute raises (stale-while-revalidate, stale-if-error); 0: off.",
        minimum=0.0,
    ),
    Option(
        "beta",
        float,
        1.0,
        "Early refresh eagerness (XFetch): 0 turns early refresh off, larger refreshes earlier.",
        minimum=0.0,
    ),
    Option(
        "lease_timeout",
        float,
        10.0,
        "Seconds a read-through's compute may hold the lease before a waiter takes over; also "
        "the longest a waiter waits.",
        minimum=0.001,
    ),
    *OBSERVABILITY_OPTIONS,
)


def reject_unknown(given: Iterable[str], specs: Iterable[Option], where: str) -> None:
    """Raise ConfigurationError naming every option in ``given`` that ``specs`` do not know
    (its ``option`` is the first of them, in sorted order)."""
    known = {o.name for o in specs}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {where}; known options: {', '.join(sorted(known))}",
            option=unknown[0],
        )


def parse_options(
    given: Mapping[str, object],
    specs: Iterable[Option],
    where: str,
    from_url: Iterable[str] = (),
) -> dict[str, Any]:
    """Check ``given`` against ``specs``: unknown names and bad values raise, naming them.

    ``from_url`` names the options that came from a URL query (objects and secrets may not).
    """
    by_name = {o.name: o for o in specs}
    for name in from_url:
        spec = by_name.get(name)
        if spec is not None and (spec.kind is object or spec.secret):
            raise ConfigurationError(
                f"option {name!r} cannot be given in a URL; pass it as a keyword argument",
                option=name,
            )
    reject_unknown(given, by_name.values(), where)
    out = {name: spec.default for name, spec in by_name.items()}
    for name, value in given.items():
        out[name] = by_name[name].parse(value)
    return out


# -- URLs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """A parsed storage URL. ``hosts`` keeps every ``host:port`` of a multi-host netloc."""

    url: str = field(repr=False)
    scheme: str
    hosts: tuple[tuple[str, int | None], ...]
    path: str
    query: Mapping[str, str]
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def masked(self) -> str:
        """The URL with any password replaced by ``***`` (safe for logs and pages)."""
        return mask_url(self.url)

    @property
    def digest(self) -> str:
        """A SHA-256 of the whole URL: identifies it in registries without holding a password."""
        return hashlib.sha256(self.url.encode("utf-8", "surrogatepass")).hexdigest()

    def __repr__(self) -> str:
        return f"Location({self.masked!r})"


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_SECRET_QUERY_WORDS = ("password", "secret", "token")
_EXAMPLES = "memory://, redis://host:6379/0, memcached://host:11211 or rocksdb:///path"


@dataclass(frozen=True)
class UrlParts:
    """A storage URL cut into its parts, as written (nothing decoded yet).

    ``userinfo`` is everything between ``://`` and the **last** ``@`` (None without one), so a
    password may hold any character, ``/``, ``?``, ``#`` and ``@`` included. The host part ends
    at the first ``/`` or ``?`` after it; the query follows the first ``?`` after that. tsot URLs
    have no fragments: ``#`` is an ordinary character. An ``@`` after the host part (in a query
    value) must be written ``%40``.
    """

    scheme: str
    userinfo: str | None
    hostpart: str
    path: str
    query: str

    @property
    def stray_at(self) -> bool:
        """An ``@`` after the host that no userinfo took: a password the splitter could not place.

        ``redis://?pw@host`` or ``redis:///pw@host`` (a password starting with ``?`` or ``/``, not
        percent-encoded). A RocksDB path may hold an ``@`` (a file name); no other path or query.
        """
        unplaced = self.query if self.scheme.startswith("rocksdb") else self.path + self.query
        return self.userinfo is None and "@" in unplaced

    def masked(self) -> str:
        """These parts joined again with the password and any secret query value as ``***``."""
        out = f"{self.scheme}://"
        if self.stray_at:
            # an "@" the splitter could not place (redis://?pw@host: a password that starts with
            # "/" or "?"): over-mask rather than show a piece of a password
            rest = self.hostpart + self.path + (f"?{self.query}" if self.query else "")
            return out + mask_before_at(rest)
        if self.userinfo is not None:
            user, sep, _ = self.userinfo.partition(":")
            # a lone userinfo (redis://secret@host) is a password for Redis: mask it whole
            out += f"{user}:***@" if sep else "***@"
        out += self.hostpart + self.path
        return out + (f"?{_mask_query(self.query)}" if self.query else "")


def split_url(url: str) -> UrlParts:
    """Cut ``url`` into its parts: the one splitter behind both ``parse_url`` and ``mask_url``.

    Raises ConfigurationError (showing the URL masked) when there is no ``scheme://``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        raise ConfigurationError(
            f"storage URL {mask_before_at(url)!r} has no scheme; expected e.g. {_EXAMPLES}"
        )
    userinfo = None
    if not rest.startswith(("/", "?")):
        userinfo, at, after = rest.rpartition("@")
        if at:
            rest = after
        else:
            userinfo = None
    cut = len(rest)
    for stop in ("/", "?"):
        index = rest.find(stop)
        if 0 <= index < cut:
            cut = index
    hostpart, tail = rest[:cut], rest[cut:]
    path, _, query = tail.partition("?")
    return UrlParts(scheme, userinfo, hostpart, path, query)


def mask_before_at(text: str) -> str:
    """``text`` with everything before its last ``@`` replaced by ``***`` (the fallback mask)."""
    _, at, tail = text.rpartition("@")
    return f"***@{tail}" if at else text


def _mask_query(query: str) -> str:
    return "&".join(
        f"{k}=***"
        if any(word in k.lower() for word in _SECRET_QUERY_WORDS)
        else (f"{k}={quote(v)}" if v else k)
        for k, v in parse_qsl(query, keep_blank_values=True)
    )


def mask_url(url: str) -> str:
    """Return ``url`` with the password (and any secret query value) replaced by ``***``.

    Uses the same splitter as ``parse_url``; when the URL cannot be split (no scheme),
    everything before the last ``@`` is masked.
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}, not a URL>"
    try:
        return split_url(url).masked()
    except (ConfigurationError, ValueError):
        return mask_before_at(url)


def _split_hosts(netloc: str, url_for_errors: str) -> tuple[tuple[str, int | None], ...]:
    hosts: list[tuple[str, int | None]] = []
    if not netloc:
        return ()
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            raise ConfigurationError(f"empty host in storage URL {mask_url(url_for_errors)!r}")
        if part.startswith("["):  # [::1]:6379
            host, _, rest = part[1:].partition("]")
            port_s = rest[1:] if rest.startswith(":") else ""
        elif part.count(":") == 1:
            host, _, port_s = part.partition(":")
        else:
            host, port_s = part, ""
        port: int | None = None
        if port_s:
            if not port_s.isdigit() or not 0 < int(port_s) < 65536:
                raise ConfigurationError(
                    f"bad port {port_s!r} in storage URL {mask_url(url_for_errors)!r}"
                )
            port = int(port_s)
        hosts.append((unquote(host), port))
    return tuple(hosts)


def parse_url(url: str) -> Location:
    """Parse a storage URL into a Location; raise ConfigurationError naming what is wrong.

    Messages show the URL masked (``mask_url``); see ``UrlParts`` for where a password ends.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"storage URL must be a str, not {type(url).__name__}")
    parts = split_url(url)
    if parts.stray_at:
        raise ConfigurationError(
            f"storage URL {parts.masked()!r} has an '@' after its host: percent-encode a password "
            "holding '/', '?' or '#' (%2F, %3F, %23)"
        )
    scheme = parts.scheme.lower()
    username = password = None
    if parts.userinfo is not None:
        user, sep, pw = parts.userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
        if not sep and username and scheme.startswith(("redis", "valkey")):
            password, username = username, None  # redis://secret@host means a password
    query: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in query:
            raise ConfigurationError(
                f"option {k!r} is given twice in storage URL {mask_url(url)!r}", option=k
            )
        query[k] = v
    return Location(
        url=url,
        scheme=scheme,
        hosts=_split_hosts(parts.hostpart, url),
        path=unquote(parts.path),
        query=query,
        username=username,
        password=password,
    )


# -- URLs from the forms framework settings write --------------------------------------------
# One builder per form, shared by the Django and Flask adapters (tsot.integration): a host list,
# a unix socket, a directory, a table name.

_MEMCACHED_SERVER = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^\s:/\[\],;@?#]+)(:\d{1,5})?\Z")
_SOCKET_PREFIXES = ("unix:", "/")


def memcached_url(servers: Iterable[object]) -> str:
    """The ``memcached://`` URL of a server list as Django and Flask-Caching settings write it.

    Each entry is ``host`` or ``host:port`` (``[::1]:11211`` for IPv6) or a unix socket path,
    ``/run/memcached.sock`` or ``unix:/run/memcached.sock`` (pymemcache's forms). One socket
    alone becomes ``memcached:///run/memcached.sock``; in a list, a socket is a percent-encoded
    host (``memcached://%2Frun%2Fmc.sock,h2:11211``). Raises ConfigurationError naming the entry
    that is none of these.

    >>> memcached_url(["unix:/run/mc.sock"])
    'memcached:///run/mc.sock'
    >>> memcached_url(["a:11211", "/run/mc.sock"])
    'memcached://a:11211,%2Frun%2Fmc.sock'
    """
    given = list(servers)
    if not given:
        raise ConfigurationError("the memcached server list is empty")
    hosts: list[str] = []
    for server in given:
        text = server.strip() if isinstance(server, str) else None
        if text is not None and text.startswith(_SOCKET_PREFIXES):
            path = "/" + text.removeprefix("unix:").lstrip("/")
            if len(given) == 1:
                return "memcached://" + quote(path)
            hosts.append(quote(path, safe=""))
        elif text is not None and _MEMCACHED_SERVER.match(text):
            hosts.append(text)
        else:
            shown = repr(mask_url(server)) if isinstance(server, str) else type(server).__name__
            raise ConfigurationError(
                f"memcached server {shown} is not host, host:port or a socket path "
                "(/run/memcached.sock or unix:/run/memcached.sock)"
            )
    return "memcached://" + ",".join(hosts)


def redis_url(
    host: str = "localhost", port: int = 6379, db: int = 0, password: str | None = None
) -> str:
    """The ``redis://`` URL of one server given as host, port, database and password
    (Flask-Caching's CACHE_REDIS_HOST/PORT/DB/PASSWORD). An IPv6 address is bracketed and the
    password percent-encoded, so any character survives ``parse_url``.

    >>> redis_url("::1", 6380, 2, "p@ss/word")
    'redis://:p%40ss%2Fword@[::1]:6380/2'
    """
    netloc = f"[{host}]" if ":" in host else host
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{netloc}:{port}/{db}"


def rocksdb_url(path: str | os.PathLike[str]) -> str:
    """The ``rocksdb://`` URL of a directory, made absolute now (from the working directory).

    Raises ConfigurationError for anything but a non-empty str or os.PathLike.

    >>> rocksdb_url("/var/cache/my app")
    'rocksdb:///var/cache/my%20app'
    """
    raw = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if not isinstance(raw, str) or not raw:
        shown = repr(raw) if isinstance(raw, str) else type(path).__name__
        raise ConfigurationError(f"a RocksDB directory must be a non-empty path, not {shown}")
    return "rocksdb://" + quote(os.path.abspath(raw), safe="/")


def memory_url(name: str = "") -> str:
    """The ``memory://`` URL of a named in-process table (``""``: the default table).

    >>> memory_url("sessions/eu")
    'memory://sessions%2Feu'
    """
    return "memory://" + quote(name, safe="")


# -- backend registry ------------------------------------------------------------------------

REDIS_SCHEMES: Final[Mapping[str, str]] = {
    "redis": "single",
    "rediss": "single",
    "unix": "single",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
    # Valkey speaks the same protocol: its schemes mean exactly what the redis ones do
    "valkey": "single",
    "valkeys": "single",
    "valkey+sentinel": "sentinel",
    "valkey+cluster": "cluster",
}
"""Every URL scheme of the Redis backend and the topology it names (single, sentinel or
cluster): the backend reads it to connect, the adapters to check a LOCATION or CACHE_REDIS_URL."""

_BUILTIN: dict[str, str] = {
    "memory": "tsot.backends.memory:MemoryBackend",
    **dict.fromkeys(REDIS_SCHEMES, "tsot.backends.redis.backend:RedisBackend"),
    "memcached": "tsot.backends.memcached.backend:MemcachedBackend",
    "rocksdb": "tsot.backends.rocksdb.backend:RocksDBBackend",
}
_registered: dict[str, str | Callable[[], Any]] = {}
_lock = threading.Lock()
ENTRY_POINT_GROUP = "tsot.backends"


def register_backend(scheme: str, target: str | Callable[[], Any]) -> None:
    """Map a URL scheme to a backend class (``"pkg.module:Class"`` or the class itself).

    The class offers ``OPTIONS`` (a tuple of Option: its own options, from the URL query or
    keyword arguments) and the classmethods ``open(location, options, prefix)`` and
    ``open_async(location, options, prefix)``, which receive the options parsed and the
    Storage's namespace prefix and return a ``Backend`` / ``AsyncBackend``
    (``tsot/backends/base.py``). It may add ``check(location, options)``, which validates
    without any I/O: ``from_url`` then calls it at once and defers ``open`` to the Storage's
    first call (``tsot.lazy``).
    """
    with _lock:
        _registered[scheme.lower()] = target


def _from_entry_points(scheme: str) -> str | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name.lower() == scheme:
            return str(ep.value)
    return None


def default_sign(scheme: str, signed: bool) -> str:
    """The ``sign`` option the Django and Flask adapters use unless told otherwise: "all" (str
    and bytes too, so cached pages and fragments cannot be altered) on a network store with a
    secret (any scheme but the in-process and local-disk ones), else "objects"."""
    return "all" if signed and scheme.lower() not in LOCAL_SCHEMES else "objects"


def known_schemes() -> list[str]:
    return sorted({*_BUILTIN, *_registered})


def needs_secret(scheme: str) -> bool:
    """Whether values stored under ``scheme`` can be signed: False for an in-process backend
    (process memory: nothing outside the process writes there, so its values are never signed
    and a framework's SECRET_KEY is not needed, however short or empty)."""
    try:
        cls = backend_class(scheme.lower())
    except ConfigurationError:
        return True  # an unknown scheme: the URL's own check names it
    return not getattr(cls, "IN_PROCESS", False)


def backend_class(scheme: str) -> Any:
    """The backend class for ``scheme``: registered, built in, or from the entry-point group."""
    with _lock:
        target: Any = _registered.get(scheme) or _BUILTIN.get(scheme)
    if target is None:
        target = _from_entry_points(scheme)
    if target is None:
        raise ConfigurationError(
            f"unknown storage URL scheme {scheme!r}; known: {', '.join(known_schemes())} "
            f"(third-party backends register through the {ENTRY_POINT_GROUP!r} entry-point group)"
        )
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingDependency:
        raise
    except ImportError as exc:
        raise ConfigurationError(
            f"backend {target!r} for scheme {scheme!r} cannot be imported: {exc}"
        ) from exc
    return getattr(module, attr)


def options_for(scheme: str) -> tuple[Option, ...]:
    """Every option a storage of ``scheme`` takes: the core options, then its backend's.

    Imports the backend module (not its driver); raises ConfigurationError for an unknown scheme
    and MissingDependency when the backend module needs a driver that is not installed.
    """
    return (*CORE_OPTIONS, *backend_class(scheme.lower()).OPTIONS)
