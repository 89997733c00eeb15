"""Redis ``stats()``: the counters of ``INFO``, per primary, summed (free of I/O).

``stats_steps`` is an operation in the style of ``redis.commands``: it yields one ``INFO`` per
primary (one on a single server or Sentinel set, each primary on a Cluster) and returns the
backend stats (``tsot.backends.base.STATS_KEYS``). The reply arrives as INFO's text from
tsot's own connections, or as redis-py's parsed dict through RedisCluster: both are read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from .commands import Steps

FIELDS: Final = {
    "hits": "keyspace_hits",
    "misses": "keyspace_misses",
    "memory_bytes": "used_memory",
    "evictions": "evicted_keys",
    "clients": "connected_clients",
}
"""tsot's stats name -> the INFO field summed into it (``keys`` comes from the ``db<N>`` line)."""
UNKNOWN: Final[dict[str, int | None]] = dict.fromkeys(("keys", *FIELDS))
"""The stats of a user the server does not allow to run INFO (an ACL without ``+info``)."""


def info_fields(reply: Any) -> Mapping[str, Any]:
    """INFO as a mapping of field -> value (text values are left as str)."""
    if isinstance(reply, Mapping):
        return reply
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    if text.startswith("txt:"):  # a RESP3 verbatim string that kept its format prefix
        text = text[4:]
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[name] = value.strip()
    return fields


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(float(value)) if value not in (None, "") else 0


def db_keys(fields: Mapping[str, Any], db: int) -> int:
    """The ``keys`` count of database ``db`` (0 when INFO has no line for it: it is empty)."""
    line = fields.get(f"db{db}")
    if line is None:
        return 0
    if isinstance(line, Mapping):
        return _int(line.get("keys"))
    parts = dict(part.partition("=")[::2] for part in str(line).split(","))
    return _int(parts.get("keys"))


def stats_result(replies: Sequence[Any], db: int) -> dict[str, int | None]:
    """The summed counters of the INFO replies of every primary."""
    totals = dict.fromkeys(("keys", *FIELDS), 0)
    for reply in replies:
        fields = info_fields(reply)
        totals["keys"] += db_keys(fields, db)
        for name, field in FIELDS.items():
            totals[name] += _int(fields.get(field))
    return dict(totals)


def stats_steps(nodes: Sequence[Any], db: int) -> Steps:
    """``INFO`` on each primary (``nodes``: the transport's ``primaries()``), then the sums."""
    replies: list[Any] = []
    for node in nodes:
        (reply,) = yield [("INFO",)], node
        replies.append(reply)
    return stats_result(replies, db)
