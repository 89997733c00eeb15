"""Redis URLs and options: topology, addresses, db, TLS, timeouts and retries, checked by name."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ...config import REDIS_SCHEMES, Location, Option
from ...errors import ConfigurationError
from .local import OPTIONS as LOCAL_OPTIONS

MAX_VALUE_BYTES = 512 * 1024 * 1024
"""Redis refuses bulk strings above ``proto-max-bulk-len`` (512 MB by default)."""

OPTIONS: tuple[Option, ...] = (
    Option("db", int, None, "Database number (also the URL path /N).", minimum=0, nullable=True),
    Option("username", str, None, "ACL user (also the URL user part).", nullable=True),
    Option(
        "password", str, None, "Password (also the URL password part).", secret=True, nullable=True
    ),
    Option(
        "socket_timeout",
        float,
        2.0,
        "Seconds to wait for a reply; none = forever.",
        minimum=0.001,
        nullable=True,
    ),
    Option(
        "socket_connect_timeout",
        float,
        1.0,
        "Seconds to wait for a connection.",
        minimum=0.001,
        nullable=True,
    ),
    Option("socket_keepalive", bool, True, "TCP keepalive on every connection."),
    Option(
        "max_connections",
        int,
        64,
        "Most connections per process (per event loop for asyncio) and URL.",
        minimum=1,
    ),
    Option(
        "max_inflight",
        int,
        10_000,
        "asyncio: most commands waiting for replies on one connection; more callers wait.",
        minimum=1,
    ),
    Option("protocol", int, 2, "RESP version: 2, or 3 (HELLO 3; Redis 6 or later).", minimum=2),
    Option(
        "pool_timeout",
        float,
        None,
        "Seconds to wait for a free connection when max_connections are busy "
        "(default: socket_timeout).",
        minimum=0,
        nullable=True,
    ),
    Option(
        "health_check_interval",
        float,
        0.0,
        "PING a connection idle longer than this many seconds before using it; 0 = off.",
        minimum=0,
    ),
    Option(
        "retries",
        int,
        2,
        "Retries after a connection error (refused, reset, master changed); "
        "read timeouts are never retried.",
        minimum=0,
    ),
    Option(
        "retry_backoff", float, 0.05, "First retry delay in seconds; doubles each retry.", minimum=0
    ),
    Option("retry_backoff_max", float, 1.0, "Longest retry delay in seconds.", minimum=0),
    Option("client_name", str, None, "CLIENT SETNAME of every connection.", nullable=True),
    Option(
        "ssl",
        bool,
        False,
        "Use TLS (implied by rediss:// and valkeys://; for sentinel and cluster URLs).",
    ),
    Option(
        "ssl_cert_reqs",
        str,
        "required",
        "Server certificate check.",
        choices=("none", "optional", "required"),
    ),
    Option("ssl_ca_certs", str, None, "CA bundle file (PEM).", nullable=True),
    Option("ssl_certfile", str, None, "Client certificate file (PEM).", nullable=True),
    Option("ssl_keyfile", str, None, "Client private key file (PEM).", nullable=True),
    Option("ssl_check_hostname", bool, True, "Check that the certificate names the host."),
    Option(
        "read_from_replicas",
        bool,
        False,
        "Sentinel and cluster: send reads (get, get_many, exists, ttl) to replicas.",
    ),
    Option("sentinel_username", str, None, "ACL user for the Sentinels.", nullable=True),
    Option(
        "sentinel_password", str, None, "Password for the Sentinels.", secret=True, nullable=True
    ),
    *LOCAL_OPTIONS,
)

SCHEMES: Final[Mapping[str, str]] = REDIS_SCHEMES
"""Every URL scheme of the backend and the topology it names (the table is tsot.config's)."""
TLS_SCHEMES: Final = frozenset({"rediss", "valkeys"})
"""Schemes that imply ``ssl=true``."""
_DEFAULT_PORT = {"single": 6379, "sentinel": 26379, "cluster": 6379}


@dataclass(frozen=True)
class Retry:
    """Retries after connection errors: exponential backoff with full jitter, capped."""

    retries: int
    base: float
    cap: float

    def delays(self) -> Iterator[float]:
        """One delay (seconds) per retry allowed."""
        for attempt in range(self.retries):
            yield random.uniform(0, min(self.cap, self.base * (2**attempt)))


@dataclass(frozen=True, repr=False)
class RedisConfig:
    """Everything a transport needs; ``name`` is the masked URL for messages and logs."""

    topology: str  # single | sentinel | cluster
    name: str
    key: str  # identifies the pool: the same URL and options share one
    hosts: tuple[tuple[str, int], ...]
    unix_path: str | None
    service: str | None
    db: int
    connection: Mapping[str, Any]  # keyword arguments of a redis-py Connection
    sentinel: Mapping[str, Any]  # keyword arguments of the Sentinel connections
    retry: Retry
    max_connections: int
    max_inflight: int
    pool_timeout: float | None
    read_from_replicas: bool

    def __repr__(self) -> str:
        return f"RedisConfig({self.name!r})"


def _family(location: Location) -> str:
    """``valkey`` for a valkey URL, else ``redis``: the scheme prefix that messages suggest."""
    return "valkey" if location.scheme.startswith("valkey") else "redis"


def _db(location: Location, topology: str, given: int | None) -> tuple[str | None, int]:
    """(sentinel service name, db) from the URL path and the ``db`` option."""
    parts = [p for p in location.path.split("/") if p] if location.scheme != "unix" else []
    service = None
    if topology == "sentinel":
        if not parts:
            raise ConfigurationError(
                f"sentinel URL {location.masked!r} needs the master name: "
                f"{_family(location)}+sentinel://host:26379/mymaster/0"
            )
        service, parts = parts[0], parts[1:]
    if len(parts) > 1 or (parts and not parts[0].isdigit()):
        raise ConfigurationError(
            f"bad database {'/'.join(parts)!r} in storage URL {location.masked!r}; "
            "expected a number such as /0"
        )
    db = int(parts[0]) if parts else None
    if db is not None and given is not None and db != given:
        raise ConfigurationError(
            f"storage URL {location.masked!r} names database {db} in its path and {given} "
            "in option 'db'",
            option="db",
        )
    db = db if db is not None else (given or 0)
    if topology == "cluster" and db != 0:
        raise ConfigurationError(
            f"{_family(location).capitalize()} Cluster has only database 0; storage URL "
            f"{location.masked!r} asks for {db}"
        )
    return service, db


def _share(timeout: float | None, n: int) -> float | None:
    return None if timeout is None else timeout / n


def parse(location: Location, options: Mapping[str, Any]) -> RedisConfig:
    """Check the URL and options together; raise ConfigurationError naming what is wrong."""
    topology = SCHEMES[location.scheme]
    family = _family(location)
    service, db = _db(location, topology, options["db"])
    unix_path = None
    if location.scheme == "unix":
        if location.hosts or not location.path:
            raise ConfigurationError(
                f"unix URL {location.masked!r} must be unix:///absolute/path/redis.sock"
            )
        unix_path = location.path
        hosts: tuple[tuple[str, int], ...] = ()
    else:
        port = _DEFAULT_PORT[topology]
        hosts = tuple((h or "localhost", p or port) for h, p in location.hosts) or (
            ("localhost", port),
        )
        if topology == "single" and len(hosts) > 1:
            raise ConfigurationError(
                f"storage URL {location.masked!r} names {len(hosts)} hosts; use "
                f"{family}+sentinel:// or {family}+cluster:// for more than one"
            )
    if options["read_from_replicas"] and topology == "single":
        raise ConfigurationError(
            f"option 'read_from_replicas' needs a sentinel or cluster URL, not {location.masked!r}",
            option="read_from_replicas",
        )
    ssl = options["ssl"] or location.scheme in TLS_SCHEMES
    if unix_path is not None and ssl:
        raise ConfigurationError(f"TLS does not apply to unix socket URL {location.masked!r}")
    tls_given = [
        n for n in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile") if options[n] is not None
    ]
    if tls_given and not ssl:
        raise ConfigurationError(
            f"option {tls_given[0]!r} needs TLS: use {family}s:// or ssl=true "
            f"(storage URL {location.masked!r})",
            option=tls_given[0],
        )
    if options["protocol"] not in (2, 3):
        raise ConfigurationError(
            f"option 'protocol' must be 2 or 3, not {options['protocol']!r} "
            f"(storage URL {location.masked!r})",
            option="protocol",
        )
    username = location.username or options["username"]
    password = location.password if location.password is not None else options["password"]
    conn: dict[str, Any] = {
        "db": db,
        "username": username,
        "password": password,
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
        "socket_keepalive": options["socket_keepalive"],
        "health_check_interval": options["health_check_interval"],
        "client_name": options["client_name"],
        # always explicit: redis-py 8 defaults to RESP3, earlier releases to RESP2
        "protocol": options["protocol"],
    }
    if ssl:
        conn.update(
            ssl_cert_reqs=options["ssl_cert_reqs"],
            ssl_ca_certs=options["ssl_ca_certs"],
            ssl_certfile=options["ssl_certfile"],
            ssl_keyfile=options["ssl_keyfile"],
            ssl_check_hostname=options["ssl_check_hostname"] and options["ssl_cert_reqs"] != "none",
        )
    # Finding the primary asks the Sentinels one after the other: each gets its share of one
    # timeout, so frozen or unreachable Sentinels cost one socket_timeout (connect: one
    # socket_connect_timeout) in all, not one per Sentinel.
    share = len(hosts) if topology == "sentinel" else 1
    sentinel = {
        "username": options["sentinel_username"],
        "password": options["sentinel_password"],
        "socket_timeout": _share(options["socket_timeout"], share),
        "socket_connect_timeout": _share(options["socket_connect_timeout"], share),
        # discovery only (SENTINEL commands): RESP2 whatever the data connections speak, which
        # every supported redis-py parses (6.x fails on RESP3 SENTINEL MASTERS replies)
        "protocol": 2,
    }
    # The pool key covers everything that shapes a connection, credentials included, hashed so
    # that no secret sits in the registry's keys.
    fingerprint = repr((location.url, sorted(options.items())))
    return RedisConfig(
        topology=topology,
        name=location.masked,
        key=hashlib.sha256(fingerprint.encode()).hexdigest(),
        hosts=hosts,
        unix_path=unix_path,
        service=service,
        db=db,
        connection=conn,
        sentinel=sentinel,
        retry=Retry(options["retries"], options["retry_backoff"], options["retry_backoff_max"]),
        max_connections=options["max_connections"],
        max_inflight=options["max_inflight"],
        pool_timeout=(
            options["pool_timeout"]
            if options["pool_timeout"] is not None
            else options["socket_timeout"]
        ),
        read_from_replicas=options["read_from_replicas"],
    )
