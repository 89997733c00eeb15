"""Memcached fast paths: the I/O-free steps the sync and asyncio drivers share.

A hot call builds its commands straight from what the cluster already knows (the namespace
generation on each server, the item size) and sends them behind the generation check in one
request per server, without the operation generators of ``memcached.commands``. Each one is a
pure ``*_plan`` (the request, or a ``Handover``), the single request, which is the only line
a driver writes for it (``_hot``), and a pure ``*_done`` (the result, or a ``Handover``).
Whenever anything is unusual (a generation or item size not learnt yet, a dead server, no idle
connection, a broken one, a generation that moved, a reply the fast path does not own) the
call hands over to the full operation, which handles it; both use the same command builders
and reply rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar

from . import commands as ops
from . import protocol as p
from .cluster import Policy, StaleConnection, StepFailed

T = TypeVar("T")
ADD: Final = b" ME"
"""The ``ms`` mode flag of ``add``: store only if the key is absent."""
REPLACE: Final = b" MR"
"""The ``ms`` mode flag of ``replace``: store only if the key is present."""
Batch = tuple[dict[int, ops.Group], dict[int, int]]
"""``server -> keys`` and ``server -> generation`` of a many-key fast path."""
Plan = tuple[int, Any, bool, Any, Any]
"""A hot call's one request: (its server, or -1 for a step to several servers; the command
without the generation check, or the step with it; idempotent; the generation, or the
``Batch``; the call's arguments, for its ``*_done``)."""
Got = Any
"""What a driver got for a ``Plan``: the two replies (generation check, command), the step's
replies, or an int, the attempt the full operation is (0: no connection was idle; 1: the
request failed, and the retry policy allows one more)."""


class Handover(Generic[T]):
    """The full operation a hot call hands over to: ``make()`` builds it, ``attempt`` is the
    retry it starts at, ``idempotent`` as for the retry policy, and ``timed`` if its TTLs
    count from the call (the asyncio driver takes the time since off them)."""

    __slots__ = ("attempt", "idempotent", "make", "timed")

    def __init__(
        self,
        make: Callable[[], ops.Op[T]],
        attempt: int = 0,
        idempotent: bool = True,
        timed: bool = False,
    ) -> None:
        self.make = make
        self.attempt = attempt
        self.idempotent = idempotent
        self.timed = timed


class Hot:
    """The fast-path decisions and command/reply steps of one namespace."""

    __slots__ = ("cluster", "gen_cmd", "gens", "names", "ns", "policy", "prefix", "single")

    def __init__(self, ns: ops.Namespace, policy: Policy) -> None:
        self.ns = ns
        self.policy = policy
        self.cluster = cluster = ns.cluster
        self.single = len(cluster.servers) == 1
        self.gens = cluster.gens
        self.names = cluster.names
        self.prefix = ns.prefix
        self.gen_cmd = ns.gen_cmd

    # -- decisions ---------------------------------------------------------------------------
    def ready(self, key: bytes, limits: bool = False) -> tuple[int, int] | None:
        """``(server, generation)`` when one command can do, else None: the key's server is
        not skipped and its generation (and, for writes, its item size) is known."""
        cluster = self.cluster
        s = 0 if self.single else cluster.route(key, cluster.live())
        gen = self.gens.get((s, self.prefix))
        if gen is None or (limits and s not in cluster.limits):
            return None
        if cluster._dead and cluster.is_dead(s):
            return None
        return s, gen

    def broken(self, server: int, exc: Exception, idempotent: bool) -> int:
        """After a one-command attempt failed: raise, or the attempt the full operation is."""
        sent = not isinstance(exc, StaleConnection)
        self.policy.again(StepFailed({server: (exc, sent)}), 0, idempotent, True)
        return 1

    def failed(self, failed: StepFailed, idempotent: bool) -> int:
        """After a many-key fast step failed: raise, or the attempt the full operation is."""
        self.policy.again(failed, 0, idempotent, True)
        return 1

    def checked(self, plan: Plan, got: Got) -> p.Reply | int:
        """The command's reply behind a current generation check, else the attempt the full
        operation is (0 when the generation moved: the command touched an old key)."""
        if isinstance(got, int):
            return got
        head, r = got
        return r if self.ns.current(plan[0], head, plan[3]) else 0

    # -- one key: the plan, then its replies (generation check first) ----------------------
    def get_plan(self, key: bytes) -> Plan | Handover[bytes | None]:
        ready = self.ready(key)
        if ready is None:
            return self.get_full(key, 0)
        s, gen = ready
        return s, b"mg " + self.ns.wire(key, gen) + b" v\r\n", True, gen, key

    def get_done(self, plan: Plan, got: Got) -> bytes | Handover[bytes | None] | None:
        r = self.checked(plan, got)
        if isinstance(r, int):
            return self.get_full(plan[4], r)
        if r.code == b"VA":
            return p.from_wire(r.value or b"")
        return ops.value(r, self.names[plan[0]])

    def get_full(self, key: bytes, attempt: int) -> Handover[bytes | None]:
        return Handover(lambda: ops.get_one(self.ns, key), attempt)

    def store_plan(
        self, key: bytes, value: bytes, ttl_ms: int | None, mode: bytes
    ) -> Plan | Handover[bool]:
        """``ms`` for ``key`` (``mode`` b" ME" = add, b" MR" = replace); ValueTooLarge if it
        cannot fit. add is not idempotent (a resent one finds its own value: not stored); set
        and replace are (a replace never creates the key, so a resent one finds the key as
        the first one did, or deleted since: it writes nothing back)."""
        args = key, value, ttl_ms, mode
        ready = self.ready(key, limits=True)
        if ready is None:
            return self.store_full(args, 0)
        s, gen = ready
        ns = self.ns
        wk = ns.wire(key, gen)
        cmd = p.ms(wk, ns.fit(s, key, wk, p.to_wire(value)), b"T%d%b" % (p.exptime(ttl_ms), mode))
        return s, cmd, mode != ADD, gen, args

    def store_done(self, plan: Plan, got: Got) -> bool | Handover[bool]:
        r = self.checked(plan, got)
        if isinstance(r, int):
            return self.store_full(plan[4], r)
        return r.code == b"HD" or ops.stored(r, self.names[plan[0]], plan[4][0])

    def store_full(
        self, args: tuple[bytes, bytes, int | None, bytes], attempt: int
    ) -> Handover[bool]:
        key, value, ttl_ms, mode = args
        return Handover(
            lambda: ops.set_one(self.ns, key, value, ttl_ms, mode),
            attempt,
            mode != ADD,
            ttl_ms is not None,
        )

    def delete_plan(self, key: bytes) -> Plan | Handover[bool]:
        ready = self.ready(key)
        if ready is None:
            return self.delete_full(key, 0)
        s, gen = ready
        return s, b"md " + self.ns.wire(key, gen) + b"\r\n", True, gen, key

    def delete_done(self, plan: Plan, got: Got) -> bool | Handover[bool]:
        r = self.checked(plan, got)
        if isinstance(r, int):
            return self.delete_full(plan[4], r)
        return r.code == b"HD" or ops.deleted(r, self.names[plan[0]])

    def delete_full(self, key: bytes, attempt: int) -> Handover[bool]:
        return Handover(lambda: ops.delete_one(self.ns, key), attempt)

    def incr_plan(self, key: bytes, delta: int, create: bool) -> Plan | Handover[int | None]:
        """memcached's own incr (``ops.native_incr``) when it is exact and one command can do."""
        args = key, delta, create
        flags = ops.native_incr(delta, create)
        ready = self.ready(key) if flags is not None else None
        if ready is None or flags is None:
            return self.incr_full(args, 0)
        s, gen = ready
        return s, p.ma(self.ns.wire(key, gen), flags), False, gen, args

    def incr_done(self, plan: Plan, got: Got) -> int | Handover[int | None] | None:
        """The new value, None for a missing key; the full operation for anything else (a
        value memcached refuses to add to is left unchanged). A result of NATIVE_MAX or more
        is widened (``ops.widen``) before it is returned."""
        r = self.checked(plan, got)
        if isinstance(r, int):
            return self.incr_full(plan[4], r)
        if r.code == b"VA":
            n = int(p.from_wire(r.value or b"0"))
            if n < p.NATIVE_MAX:
                return n
            return Handover(lambda: ops.widened(self.ns, plan[4][0], n))  # re-reads: may re-run
        if r.code == b"NF":
            return None
        return self.incr_full(plan[4], 0)

    def incr_full(self, args: tuple[bytes, int, bool], attempt: int) -> Handover[int | None]:
        key, delta, create = args
        return Handover(lambda: ops.incr(self.ns, key, delta, create), attempt, False)

    # -- many keys: one request per server ---------------------------------------------------
    def batch(self, keys: Sequence[bytes], limits: bool = False) -> Batch | None:
        """The servers' keys and generations when no server is skipped and every one's
        generation (and, for writes, item size) is known, else None."""
        cluster = self.cluster
        if cluster._dead or not keys:
            return None
        groups = self.ns.group(keys)
        gens: dict[int, int] = {}
        for s in groups:
            gen = self.gens.get((s, self.prefix))
            if gen is None or (limits and s not in cluster.limits):
                return None
            gens[s] = gen
        return groups, gens

    def get_many_plan(self, keys: Sequence[bytes]) -> Plan | Handover[list[bytes | None]]:
        batch = self.batch(keys)
        if batch is None:
            return self.get_many_full(keys, 0)
        groups, gens = batch
        gen_cmd, ns = self.gen_cmd, self.ns
        step = {s: [gen_cmd, *ops.get_cmds(ns, g, gens[s])] for s, g in groups.items()}
        return -1, step, True, batch, keys

    def get_many_done(
        self, plan: Plan, got: Got
    ) -> list[bytes | None] | Handover[list[bytes | None]]:
        checked = self.current(plan, got)
        if isinstance(checked, int):
            return self.get_many_full(plan[4], checked)
        return ops.values(self.ns, len(plan[4]), plan[3][0], checked)

    def get_many_full(self, keys: Sequence[bytes], attempt: int) -> Handover[list[bytes | None]]:
        return Handover(lambda: ops.get_many(self.ns, keys), attempt)

    def set_many_plan(
        self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None
    ) -> Plan | Handover[None]:
        """Every server's ``ms`` commands; ValueTooLarge before any is sent."""
        args = items, ttl_ms
        batch = self.batch([k for k, _ in items], limits=True)
        if batch is None:
            return self.set_many_full(args, 0)
        groups, gens = batch
        gen_cmd, ns = self.gen_cmd, self.ns
        wire_values = [p.to_wire(v) for _, v in items]
        flags = b"T%d" % p.exptime(ttl_ms)
        step = {
            s: [gen_cmd, *ops.set_cmds(ns, s, g, gens[s], wire_values, flags)]
            for s, g in groups.items()
        }
        return -1, step, True, batch, args

    def set_many_done(self, plan: Plan, got: Got) -> Handover[None] | None:
        checked = self.current(plan, got)
        if isinstance(checked, int):
            return self.set_many_full(plan[4], checked)
        ops.stored_all(self.ns, len(plan[4][0]), plan[3][0], checked)
        return None

    def set_many_full(
        self, args: tuple[Sequence[tuple[bytes, bytes]], int | None], attempt: int
    ) -> Handover[None]:
        items, ttl_ms = args
        return Handover(
            lambda: ops.set_all(self.ns, items, ttl_ms), attempt, True, ttl_ms is not None
        )

    def current(self, plan: Plan, got: Got) -> ops.Replies | int:
        """The replies behind each server's generation check, else the attempt the full
        operation is (0 when a generation moved)."""
        if isinstance(got, int):
            return got
        gens, current = plan[3][1], self.ns.current
        out: ops.Replies = {}
        for s, rs in got.items():
            if not current(s, rs[0], gens[s]):
                return 0
            out[s] = rs[1:]
        return out
