"""Memcached fast paths: the I/O-free steps the sync and asyncio drivers share.

A hot call builds its commands straight from what the cluster already knows (the namespace
generation on each server, the item size) and sends them behind the generation check in one
request per server, without the operation generators of ``memcached.commands``. Whenever anything
is unusual (a generation or item size not learnt yet, a dead server, no idle connection, a
generation that moved, a reply the fast path does not own) the driver runs the full
operation, which handles it; both use the same command builders and reply rules.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

from . import commands as ops
from . import protocol as p
from .cluster import Policy, StaleConnection, StepFailed


class Again(enum.Enum):
    AGAIN = 0


AGAIN: Final = Again.AGAIN
"""A fast path's answer when the full operation must run (nothing it did needs undoing)."""
Batch = tuple[dict[int, ops.Group], dict[int, int]]
"""``server -> keys`` and ``server -> generation`` of a many-key fast path."""


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

    # -- one key: the command, then its replies (generation check first) -------------------
    def get_cmd(self, key: bytes, gen: int) -> bytes:
        return b"mg " + self.ns.wire(key, gen) + b" v\r\n"

    def got(self, s: int, gen: int, rs: list[p.Reply]) -> bytes | Again | None:
        head, r = rs
        if not self.ns.current(s, head, gen):
            return AGAIN
        if r.code == b"VA":
            return p.from_wire(r.value or b"")
        return ops.value(r, self.names[s])

    def store_cmd(
        self, s: int, gen: int, key: bytes, value: bytes, ttl_ms: int | None, mode: bytes
    ) -> bytes:
        """``ms`` for ``key`` (``mode`` b" ME" = add); ValueTooLarge if it cannot fit."""
        ns = self.ns
        wk = ns.wire(key, gen)
        flags = b"T%d%b" % (p.exptime(ttl_ms), mode)
        return p.ms(wk, ns.fit(s, key, wk, p.to_wire(value)), flags)

    def stored(self, s: int, gen: int, rs: list[p.Reply], key: bytes) -> bool | Again:
        head, r = rs
        if not self.ns.current(s, head, gen):
            return AGAIN
        return r.code == b"HD" or ops.stored(r, self.names[s], key)

    def delete_cmd(self, key: bytes, gen: int) -> bytes:
        return b"md " + self.ns.wire(key, gen) + b"\r\n"

    def deleted(self, s: int, gen: int, rs: list[p.Reply]) -> bool | Again:
        head, r = rs
        if not self.ns.current(s, head, gen):
            return AGAIN
        return r.code == b"HD" or ops.deleted(r, self.names[s])

    def incr_cmd(self, key: bytes, gen: int, flags: bytes) -> bytes:
        return p.ma(self.ns.wire(key, gen), flags)

    def counted(self, s: int, gen: int, rs: list[p.Reply]) -> int | Again | None:
        """The new value of a native incr, None for a missing key; AGAIN for anything else
        (a value memcached refuses to add to is left unchanged: the full operation handles
        it). A result of NATIVE_MAX or more must be widened (``ops.widen``)."""
        head, r = rs
        if not self.ns.current(s, head, gen):
            return AGAIN
        if r.code == b"VA":
            return int(p.from_wire(r.value or b"0"))
        if r.code == b"NF":
            return None
        return AGAIN

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

    def get_step(self, batch: Batch) -> ops.Step:
        groups, gens = batch
        gen_cmd, ns = self.gen_cmd, self.ns
        return {s: [gen_cmd, *ops.get_cmds(ns, g, gens[s])] for s, g in groups.items()}

    def set_step(
        self, batch: Batch, items: Sequence[tuple[bytes, bytes]], ttl_ms: int | None
    ) -> ops.Step:
        """Every server's ``ms`` commands; ValueTooLarge before any is sent."""
        groups, gens = batch
        gen_cmd, ns = self.gen_cmd, self.ns
        wire_values = [p.to_wire(v) for _, v in items]
        flags = b"T%d" % p.exptime(ttl_ms)
        return {
            s: [gen_cmd, *ops.set_cmds(ns, s, g, gens[s], wire_values, flags)]
            for s, g in groups.items()
        }

    def current(self, batch: Batch, replies: ops.Replies) -> ops.Replies | None:
        """The replies behind each server's generation check, or None if one moved."""
        gens, current = batch[1], self.ns.current
        out: ops.Replies = {}
        for s, rs in replies.items():
            if not current(s, rs[0], gens[s]):
                return None
            out[s] = rs[1:]
        return out

    def values(self, batch: Batch, count: int, replies: ops.Replies) -> list[bytes | None] | Again:
        checked = self.current(batch, replies)
        return AGAIN if checked is None else ops.values(self.ns, count, batch[0], checked)

    def stored_all(self, batch: Batch, count: int, replies: ops.Replies) -> list[bool] | Again:
        checked = self.current(batch, replies)
        return AGAIN if checked is None else ops.stored_all(self.ns, count, batch[0], checked)
