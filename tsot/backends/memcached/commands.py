"""Memcached operations as I/O-free generators, run by both the sync and the asyncio driver.

Each operation yields a ``Step`` (meta commands per server, one reply each) and receives the
replies, so routing, namespace generations, size limits, TTL translation and the incr rules are
written once. A driver sends each step as one request per server.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Final, Generic, TypeVar

from ...errors import BackendUnavailable, ValueTooLarge, WrongType
from ...ints import format_int
from ...keys import shown
from ..base import TTL_MISSING, TTL_PERSISTENT
from . import protocol as p
from .cluster import Cluster, StepFailed

T = TypeVar("T")
Step = dict[int, list[bytes]]
Replies = dict[int, list[p.Reply]]
Op = Generator[Step, Replies, T]
Group = list[tuple[int, bytes]]
"""The keys one server gets, each with its position among the operation's keys."""


class Done(Generic[T]):
    """What ``resume`` returns once an operation has finished: its ``value``."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


def resume(op: Op[T], got: Replies | StepFailed | None) -> Step | Done[T]:
    """The one move of every driver: hand ``op`` the replies to its last step (a StepFailed
    is thrown in; None starts it) and return its next step, or Done with its result."""
    try:
        if isinstance(got, StepFailed):
            return op.throw(got)
        return op.send(got)  # type: ignore[arg-type]
    except StopIteration as stop:
        return Done(stop.value)


DEFAULT_ITEM_SIZE_MAX: Final = 1024 * 1024
ITEM_OVERHEAD: Final = 64
"""Bytes of item header next to key and value (59 measured on memcached 1.6, flags 0, CAS)."""
_GEN_ROUNDS: Final = 5
_CAS_ROUNDS: Final = 10_000
_NON_NUMERIC: Final = b"non-numeric"


class Namespace:
    """The pure steps of one namespace prefix on one cluster."""

    __slots__ = ("_heads", "cluster", "gen_cmd", "gen_key", "prefix")

    def __init__(self, cluster: Cluster, prefix: bytes) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self.gen_key = p.gen_key(prefix)
        self.gen_cmd = p.SharedRead(p.mg(self.gen_key, b"v"))
        self._heads: dict[int, bytes] = {}  # generation -> valid ``<prefix><gen hex>|``

    def current(self, server: int, head: p.Reply, gen: int) -> bool:
        """True if the generation check ``head`` shows ``gen``; else note what it shows
        (error replies raise) and return False: the commands behind it must be sent again."""
        if head.code == b"VA" and int(head.value or b"-1") == gen:
            return True
        p.check(head, self.cluster.names[server])
        if head.code == b"VA":
            self.cluster.gens[(server, self.prefix)] = int(head.value or b"0")
        else:  # the generation key was evicted or the server restarted
            self.cluster.gens.pop((server, self.prefix), None)
        return False

    def wire(self, final: bytes, gen: int) -> bytes:
        """The key memcached holds for ``final`` in generation ``gen`` (``p.wire_key``)."""
        head = self._heads.get(gen)
        if head is not None and final.startswith(self.prefix):
            rest = final[len(self.prefix) :]
            key = head + rest
            if len(key) <= p.MAX_KEY and len(rest.translate(None, p.BAD_KEY_BYTES)) == len(rest):
                return key
        return self._wire(final, gen)

    def _wire(self, final: bytes, gen: int) -> bytes:
        prefix = self.prefix
        if not final.startswith(prefix):
            return p.wire_key(final, 0, gen)
        head = p.wire_head(prefix, gen)
        if head is not None and gen not in self._heads:
            if len(self._heads) > 64:  # generations only grow: forget the old ones
                self._heads.clear()
            self._heads[gen] = head
        return p.wire_key(final, len(prefix), gen)

    def group(self, keys: Iterable[bytes]) -> dict[int, Group]:
        """``server -> [(position, key)]`` for the servers alive now."""
        cluster = self.cluster
        live = cluster.live()
        if len(live) == 1:
            pairs = list(enumerate(keys))
            return {live[0]: pairs} if pairs else {}
        groups: dict[int, Group] = {}
        for i, key in enumerate(keys):
            groups.setdefault(cluster.route(key, live), []).append((i, key))
        return groups

    def route(self, key: bytes) -> int:
        return self.cluster.route(key, self.cluster.live())

    def exchange(
        self,
        servers: Iterable[int],
        build: Callable[[int, int], list[bytes]],
        limits: bool = False,
    ) -> Op[Replies]:
        """Send ``build(server, generation)`` to each server behind a generation check.

        The check (``mg <generation key> v``) travels in the same request, before the commands;
        memcached runs one connection's commands in order, so a reply whose generation matches
        the one the keys were built with is a result from this generation. A server whose
        generation moved (another process cleared the namespace) is asked again with new keys;
        commands that went to the old generation touched only keys nobody reads any more.
        """
        cluster, prefix, gens = self.cluster, self.prefix, self.cluster.gens
        pending = list(servers)
        out: Replies = {}
        for _ in range(_GEN_ROUNDS):
            first: Step = {}
            for s in pending:
                cmds = []
                if (s, prefix) not in gens:
                    seed = p.new_generation()
                    cmds.append(p.ma(self.gen_key, b"N0 J%d D0 v" % seed))
                if limits and s not in cluster.limits:
                    cmds.append(p.STATS_SETTINGS)
                if cmds:
                    first[s] = cmds
            if first:
                self._learn((yield first))
            step = {s: [self.gen_cmd, *build(s, gens[(s, prefix)])] for s in pending}
            replies = yield step
            retry = []
            for s in pending:
                head, *rest = replies[s]
                if self.current(s, head, gens.get((s, prefix), -1)):
                    out[s] = rest
                else:
                    retry.append(s)
            if not retry:
                return out
            pending = retry
        raise BackendUnavailable(
            f"the generation of namespace {prefix!r} kept changing on memcached "
            f"{', '.join(cluster.names[s] for s in pending)}"
        )

    def _learn(self, replies: Replies) -> None:
        cluster = self.cluster
        for s, rs in replies.items():
            for r in rs:
                p.check(r, cluster.names[s])
                if r.code == b"VA":
                    cluster.gens[(s, self.prefix)] = int(r.value or b"0")
                elif r.code == b"STATS" and r.stats is not None:
                    size = r.stats.get("item_size_max", "")
                    cluster.limits[s] = int(size) if size.isdigit() else DEFAULT_ITEM_SIZE_MAX

    def fit(self, server: int, key: bytes, wire_key: bytes, value: bytes) -> bytes:
        """``value`` if the server can hold it under ``wire_key``, else raise ValueTooLarge."""
        limit = self.cluster.limits.get(server, DEFAULT_ITEM_SIZE_MAX)
        room = limit - len(wire_key) - ITEM_OVERHEAD
        if len(value) > room:
            raise ValueTooLarge(
                f"value for key {shown(key)} is {len(value)} bytes; memcached "
                f"{self.cluster.names[server]} stores items of at most {limit} bytes "
                f"(item_size_max), which leaves {room} bytes for this key's value"
            )
        return value


# -- operations ------------------------------------------------------------------------------


def get_many(ns: Namespace, keys: Sequence[bytes]) -> Op[list[bytes | None]]:
    groups = ns.group(keys)
    replies = yield from ns.exchange(groups, lambda s, gen: get_cmds(ns, groups[s], gen))
    return values(ns, len(keys), groups, replies)


def get_one(ns: Namespace, key: bytes) -> Op[bytes | None]:
    return (yield from get_many(ns, (key,)))[0]


def get_cmds(ns: Namespace, group: Group, gen: int) -> list[bytes]:
    """``mg <key> v`` for each key of one server's group."""
    wire = ns.wire
    return [b"mg " + wire(k, gen) + b" v\r\n" for _, k in group]


def values(
    ns: Namespace, count: int, groups: dict[int, Group], replies: Replies
) -> list[bytes | None]:
    """The values of ``get_cmds`` replies, in the order of the keys."""
    out: list[bytes | None] = [None] * count
    names = ns.cluster.names
    for s, rs in replies.items():
        for (i, _), r in zip(groups[s], rs, strict=True):
            if r.code == b"VA":
                out[i] = p.from_wire(r.value or b"")
            elif r.code != b"EN":
                p.check(r, names[s])
    return out


def value(r: p.Reply, server: str) -> bytes | None:
    """The value of a ``mg <key> v`` reply (None for a miss; error replies raise)."""
    if r.code == b"VA":
        return p.from_wire(r.value or b"")
    if r.code != b"EN":
        p.check(r, server)
    return None


def set_many(
    ns: Namespace, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None, mode: bytes = b""
) -> Op[list[bool]]:
    """Store every item (``mode`` b" ME" = add, b" MR" = replace); True per item the server
    stored.

    Every value is checked against its server's item size before any command is sent.
    """
    groups = ns.group(k for k, _ in items)
    wire_values = [p.to_wire(v) for _, v in items]
    flags = b"T%d%b" % (p.exptime(ttl_ms), mode)

    def build(s: int, gen: int) -> list[bytes]:
        return set_cmds(ns, s, groups[s], gen, wire_values, flags)

    # ``exchange`` builds every server's commands before it sends any: nothing half-written
    replies = yield from ns.exchange(groups, build, limits=True)
    return stored_all(ns, len(items), groups, replies)


def set_one(ns: Namespace, key: bytes, value: bytes, ttl_ms: int | None, mode: bytes) -> Op[bool]:
    return (yield from set_many(ns, ((key, value),), ttl_ms, mode))[0]


def set_all(ns: Namespace, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None) -> Op[None]:
    yield from set_many(ns, items, ttl_ms)


def set_cmds(
    ns: Namespace, s: int, group: Group, gen: int, wire_values: list[bytes], flags: bytes
) -> list[bytes]:
    """``ms`` for each key of server ``s``'s group; ValueTooLarge before any is built."""
    wire, fit = ns.wire, ns.fit
    cmds = []
    for i, k in group:
        wk = wire(k, gen)
        cmds.append(p.ms(wk, fit(s, k, wk, wire_values[i]), flags))
    return cmds


def stored_all(ns: Namespace, count: int, groups: dict[int, Group], replies: Replies) -> list[bool]:
    """Per item of ``set_cmds``, in order: True if the server stored it."""
    out = [False] * count
    names = ns.cluster.names
    for s, rs in replies.items():
        for (i, k), r in zip(groups[s], rs, strict=True):
            out[i] = r.code == b"HD" or stored(r, names[s], k)
    return out


def stored(r: p.Reply, server: str, key: bytes) -> bool:
    """True if a ``ms`` reply says stored, False if not (``add`` of a present key)."""
    if r.code == b"HD":
        return True
    if r.code != b"NS":
        p.check(r, server, key)
    return False


def delete_many(ns: Namespace, keys: Sequence[bytes]) -> Op[int]:
    groups = ns.group(keys)

    def build(s: int, gen: int) -> list[bytes]:
        return [p.md(ns.wire(k, gen)) for _, k in groups[s]]

    replies = yield from ns.exchange(groups, build)
    count = 0
    for s, rs in replies.items():
        name = ns.cluster.names[s]
        for r in rs:
            count += deleted(r, name)
    return count


def delete_one(ns: Namespace, key: bytes) -> Op[bool]:
    return (yield from delete_many(ns, (key,))) == 1


def deleted(r: p.Reply, server: str) -> bool:
    """True if a ``md`` reply says deleted, False if the key was missing."""
    if r.code == b"HD":
        return True
    if r.code != b"NF":
        p.check(r, server)
    return False


def single(
    ns: Namespace, key: bytes, verb: bytes, flags: bytes, value: bytes | None = None
) -> Op[p.Reply]:
    """One meta command (``ms`` when ``value`` is given) on the key's server: its raw reply."""
    s = ns.route(key)

    def build(_s: int, gen: int) -> list[bytes]:
        wk = ns.wire(key, gen)
        if value is not None:
            return [p.ms(wk, ns.fit(s, key, wk, value), flags)]
        return [b"%b %b %b\r\n" % (verb, wk, flags) if flags else b"%b %b\r\n" % (verb, wk)]

    return (yield from ns.exchange((s,), build, limits=value is not None))[s][0]


def one(ns: Namespace, key: bytes, flags: bytes) -> Op[p.Reply]:
    """``mg <key> <flags>`` on the key's server: the reply (error replies raise)."""
    reply = yield from single(ns, key, b"mg", flags)
    return p.check(reply, ns.cluster.names[ns.route(key)], key)


def exists(ns: Namespace, key: bytes) -> Op[bool]:
    return (yield from one(ns, key, b"")).code == b"HD"


def ttl(ns: Namespace, key: bytes) -> Op[int]:
    r = yield from one(ns, key, b"t")
    if r.code != b"HD":
        return TTL_MISSING
    t = int(r.flag(b"t") or b"-1")
    return TTL_PERSISTENT if t < 0 else p.remaining_ms(t)


def expire(ns: Namespace, key: bytes, ttl_ms: int | None) -> Op[bool]:
    """memcached's touch: a new expiry (0 = never) for an existing key."""
    return (yield from one(ns, key, b"T%d" % p.exptime(ttl_ms))).code == b"HD"


def incr(ns: Namespace, key: bytes, delta: int, create: bool) -> Op[int | None]:
    """Add ``delta`` exactly, whatever the sizes and signs (docs/architecture.md#values).

    memcached's own ``incr`` is used when it is exact: a stored value in [0, 2**63) (wider ones
    are stored so that it refuses them, see ``to_wire``) and 0 <= delta < 2**32, so it cannot
    wrap past 2**64; a missing key is created by the same command. Everything else (decrements,
    since ``decr`` stops at 0; negative or wide values) is a compare-and-swap loop that keeps
    the TTL; a missing key is created with ``add`` and the loop retried if another writer won.
    """
    s = ns.route(key)
    name = ns.cluster.names[s]
    flags = native_incr(delta, create)
    native = flags is not None
    for _ in range(_CAS_ROUNDS):
        if native:
            assert flags is not None
            r = yield from single(ns, key, b"ma", flags)
            if r.code == b"VA":
                n = int(p.from_wire(r.value or b"0"))
                if n >= p.NATIVE_MAX:
                    yield from widen(ns, key)
                return n
            if r.code == b"NF":
                return None
            if r.code == b"CLIENT_ERROR" and _NON_NUMERIC in r.flags:
                native = False
                continue
            p.check(r, name, key)
            continue
        r = yield from one(ns, key, b"v c t")
        if r.code == b"EN":
            if not create:
                return None
            value = format_int(delta)
            if (yield from set_many(ns, [(key, value)], None, b" ME"))[0]:
                return delta
            continue
        old = p.int_or_none(r.value or b"")
        if old is None:
            raise WrongType(f"value of key {shown(key)} is not an integer")
        new = old + delta
        cas = r.flag(b"c") or b"0"
        if 0 <= old < p.NATIVE_MAX and 0 <= new < p.NATIVE_MAX:
            # memcached's arithmetic keeps the TTL exactly; the CAS makes it conditional
            mode = b"MI" if delta >= 0 else b"MD"
            w = yield from single(ns, key, b"ma", b"C%b %b D%d" % (cas, mode, abs(delta)))
        else:
            t = int(r.flag(b"t") or b"-1")
            flags = b"C%b T%d" % (cas, 0 if t < 0 else p.exptime(t * 1000))
            # more than MAX_INT_DIGITS digits: SerializationError before anything is written
            w = yield from single(ns, key, b"ms", flags, p.to_wire(format_int(new)))
        if w.code in (b"HD", b"VA"):
            return new
        if w.code not in (b"EX", b"NF"):
            p.check(w, name, key)
    raise BackendUnavailable(
        f"incr of key {shown(key)} lost {_CAS_ROUNDS} races in a row on {name}"
    )


def native_incr(delta: int, create: bool) -> bytes | None:
    """The ``ma`` flags that add ``delta`` exactly on the server, or None when it cannot."""
    if 0 <= delta < p.NATIVE_DELTA:
        return b"D%d v" % delta + (b" N0 J%d" % delta if create else b"")
    return None


def widen(ns: Namespace, key: bytes) -> Op[None]:
    """Rewrite a plain value that native incr took to 2**63 or more into its refused form."""
    for _ in range(_CAS_ROUNDS):
        r = yield from one(ns, key, b"v c t")
        value = r.value or b""
        n = p.int_or_none(value) if r.code == b"VA" and b"_" not in value else None
        if n is None or n < p.NATIVE_MAX:
            return
        t = int(r.flag(b"t") or b"-1")
        flags = b"C%b T%d" % (r.flag(b"c") or b"0", 0 if t < 0 else p.exptime(t * 1000))
        w = yield from single(ns, key, b"ms", flags, p.to_wire(format_int(n)))
        if w.code == b"HD":
            return
        if w.code not in (b"EX", b"NF"):  # lost a race: read again; an error reply raises
            p.check(w, ns.cluster.names[ns.route(key)], key)


def widened(ns: Namespace, key: bytes, n: int) -> Op[int]:
    """``n``, once the value native incr took to it (NATIVE_MAX or more) is widened."""
    yield from widen(ns, key)
    return n


def clear(ns: Namespace) -> Op[None]:
    """Move the namespace to a new generation on every server (old keys become unreachable
    and age out under memcached's LRU). Raises BackendUnavailable naming a server it missed."""
    cluster = ns.cluster
    step = {
        s: [p.ma(ns.gen_key, b"N0 J%d D1 v" % p.new_generation())]
        for s in range(len(cluster.servers))
    }
    replies = yield step
    for s, rs in replies.items():
        r = p.check(rs[0], cluster.names[s])
        cluster.gens[(s, ns.prefix)] = int(r.value or b"0")


def stats(ns: Namespace) -> Op[dict[str, int | None]]:
    """Server-wide counters (STATS_FIELDS), summed over the live servers."""
    replies = yield {s: [p.STATS] for s in ns.cluster.live()}
    totals = dict.fromkeys(STATS_FIELDS, 0)
    for s, rs in replies.items():
        fields = p.check(rs[0], ns.cluster.names[s]).stats or {}
        for name, field in STATS_FIELDS.items():
            totals[name] += int(fields.get(field, "0"))
    return dict(totals)


STATS_FIELDS: Final = {
    "hits": "get_hits",
    "misses": "get_misses",
    "keys": "curr_items",
    "memory_bytes": "bytes",
    "evictions": "evictions",
    "clients": "curr_connections",
}
"""tsot's stats name -> the memcached ``stats`` field summed into it."""
