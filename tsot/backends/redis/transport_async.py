"""Asyncio Redis transports (the async seam: docs/architecture.md#async), auto-pipelined.

Each event loop gets its own transport per config: one ``PipelinedConnection`` per server
(one server, the Sentinel-named primary and, for ``read_from_replicas``, a replica), or one per
Cluster node with our own slot map (``CLUSTER SLOTS``) and MOVED/ASK handling. redis-py still
parses URLs (``redis.config``), asks the Sentinels for addresses and builds TLS contexts.

When a loop shuts down through ``asyncio.run``, ``asyncio.Runner`` or
``loop.shutdown_asyncgens()``, its transport closes its connections on that loop; no
``AsyncStorage.close()`` is needed for that. The backend uses only ``execute``,
``execute_read``, ``pipeline``, ``primaries`` and ``aclose``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from typing import Any

import redis.asyncio.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MovedError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from . import retry, topology
from .config import RedisConfig
from .pipeline import Address, Cmd, Endpoint, PipelinedConnection

Node = Any  # a cluster node's Endpoint; None on other topologies

_NO_RETRY = AsyncRetry(NoBackoff(), 0)
_EVAL = frozenset({"EVAL", "EVALSHA", b"EVAL", b"EVALSHA"})
_REDIRECTS = 5  # MOVED/ASK hops for one command before giving up (a moving slot map)


async def drive(
    steps: Generator[float, retry.Attempt, list[Any]],
    attempt: Callable[[], Awaitable[retry.Attempt]],
) -> list[Any]:
    """Run the policy's retry loop (``redis.retry.retries``) with asyncio sleeps."""
    try:
        delay = next(steps)
        while True:
            await asyncio.sleep(delay)
            delay = steps.send(await attempt())
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def _fixed(address: Address) -> Address:
    return address


class PipelinedTransport:
    """One server, or the primary (and a replica) that the Sentinels name."""

    cluster = False

    def __init__(self, cfg: RedisConfig) -> None:
        self.name = cfg.name
        self._retry = cfg.retry
        self._sentinel: Any = None
        self._service = cfg.service
        conn = cfg.connection
        if cfg.topology == "sentinel":
            # explicit addresses only: nothing may fall back to a default localhost:6379
            # typed in some redis-py releases, untyped in others: keep mypy's verdict stable
            sentinel_class: Any = redis.asyncio.sentinel.Sentinel
            self._sentinel = sentinel_class(
                list(cfg.hosts), sentinel_kwargs={**cfg.sentinel, "retry": _NO_RETRY}
            )
            self._ep = Endpoint(self._master, conn, cfg.max_inflight)
        else:
            address: Address = cfg.unix_path if cfg.unix_path is not None else cfg.hosts[0]
            self._ep = Endpoint(lambda: _fixed(address), conn, cfg.max_inflight)
        self._read_ep = self._ep
        if cfg.read_from_replicas:
            self._read_ep = Endpoint(self._replica, conn, cfg.max_inflight)
        self._turn = itertools.count()
        self._plain = self._sentinel is None  # no READONLY handling needed: the fast path
        if self._read_ep is self._ep:
            self.send_read = self.send  # type: ignore[method-assign]  # one call less per read

    async def _master(self) -> Address:
        host, port = await self._sentinel.discover_master(self._service)
        return (str(host), int(port))

    async def _replica(self) -> Address:
        replicas = await self._sentinel.discover_slaves(self._service)
        if not replicas:  # as redis-py does: no replica up, so read from the primary
            return await self._master()
        host, port = replicas[next(self._turn) % len(replicas)]
        return (str(host), int(port))

    def send(self, cmd: Cmd) -> Awaitable[Any]:
        """``execute(*cmd)`` as an awaitable: the connection's own future when it is ready.

        A failure of that future has not been through the retry policy: the caller passes it
        to ``again`` (``RedisAsync`` does).
        """
        conn = self._ep.conn
        if conn is None or conn.lost is not None or conn.pending >= conn.max_inflight:
            return self.execute(*cmd)
        if self._plain:
            return conn.send(cmd)
        return self.execute(*cmd)

    def send_read(self, cmd: Cmd) -> Awaitable[Any]:
        """``execute_read(*cmd)`` as an awaitable."""
        if self._read_ep is self._ep:
            return self.send(cmd)
        return self.execute_read(*cmd)

    async def execute(self, *args: Any) -> Any:
        """Send one command to the primary and return its reply (error replies raise)."""
        return (await self.pipeline([args]))[0]

    async def execute_read(self, *args: Any) -> Any:
        """Like ``execute``, on a replica when ``read_from_replicas`` is set."""
        return (await self.pipeline([args], read=True))[0]

    async def pipeline(
        self, cmds: Sequence[Cmd], node: Node = None, read: bool = False
    ) -> list[Any]:
        """Send the commands in one batch; return every reply, raising the first error reply."""
        ep = self._read_ep if read else self._ep
        replies, error, sent = await self._attempt(ep, cmds)
        if error is not None:
            return await self._again(ep, cmds, error, sent)
        return retry.checked(replies)

    async def again(self, cmds: Sequence[Cmd], error: BaseException, read: bool = False) -> Any:
        """The policy's answer to a failed first attempt made through ``send``: the checked
        replies of a retry, or the error to raise."""
        if retry.settled(error):
            raise error
        return await self._again(self._read_ep if read else self._ep, cmds, error, True)

    async def _attempt(
        self, ep: Endpoint, cmds: Sequence[Cmd]
    ) -> tuple[list[Any], BaseException | None, bool]:
        """One attempt: (replies, None, sent) or ([], the error, whether it may have been sent).

        READONLY from a Sentinel-named primary means it was demoted: the connection is dropped
        (the next one asks the Sentinels again) and, if it refused every command that must not
        run twice, the attempt failed with a refusal, which the policy retries.
        """
        sent = False
        try:
            conn = ep.conn
            if conn is None or conn.lost is not None:
                conn = await ep.connect()
            if conn.pending >= conn.max_inflight:
                await conn.room()
            fut = conn.send_many(cmds)
            sent = True
            replies = await fut
        except (ConnectionError, TimeoutError) as exc:
            return [], exc, sent
        if self._sentinel is not None and any(isinstance(r, ReadOnlyError) for r in replies):
            if ep.conn is conn:
                ep.drop()
            if retry.resend_after_refusal(cmds, replies):
                return [], retry.first_error(replies), True
        return replies, None, sent

    async def _again(
        self, ep: Endpoint, cmds: Sequence[Cmd], error: BaseException, sent: bool
    ) -> list[Any]:
        return await drive(
            retry.retries(cmds, error, sent, self._retry.delays()), lambda: self._attempt(ep, cmds)
        )

    async def primaries(self) -> list[Node]:
        return [None]

    async def aclose(self) -> None:
        self._ep.close()
        self._read_ep.close()
        if self._sentinel is not None:  # the clients that ask the Sentinels for addresses
            for client in self._sentinel.sentinels:
                await client.aclose()


class AsyncClusterTransport:
    """Redis Cluster: a slot map from ``CLUSTER SLOTS``, one pipelined connection per node.

    MOVED updates the slot and marks the map stale (reloaded before the next command); ASK
    sends ``ASKING`` and the command to the importing node together; TRYAGAIN and CLUSTERDOWN
    wait the retry delays. A lost node connection marks the map stale too.
    """

    cluster = True

    def __init__(self, cfg: RedisConfig) -> None:
        self.name = cfg.name
        self._cfg = cfg
        self._nodes: dict[tuple[Address, bool], Endpoint] = {}
        self._slots: list[Endpoint] = []
        self._readers: list[list[Endpoint]] = []
        self._stale = True
        self._lock: asyncio.Lock | None = None
        self._turn = itertools.count()

    def _node(self, address: Address, readonly: bool = False) -> Endpoint:
        ep = self._nodes.get((address, readonly))
        if ep is None:
            cfg = self._cfg
            conn = {k: v for k, v in cfg.connection.items() if k != "db"}
            ep = Endpoint(lambda: _fixed(address), conn, cfg.max_inflight, readonly)
            self._nodes[(address, readonly)] = ep
        return ep

    async def initialize(self) -> None:
        """Load the slot map if it is stale (once, however many tasks ask)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._stale:
                await self._load()

    async def _load(self) -> None:
        known = [a for (a, ro) in self._nodes if not ro]
        errors: list[str] = []
        for address in dict.fromkeys([*known, *self._cfg.hosts]):
            ep = self._node(address)
            try:
                conn = ep.conn if ep.conn is not None and ep.conn.lost is None else None
                conn = conn or await ep.connect()
                reply = await conn.send(("CLUSTER", "SLOTS"))
            except (ConnectionError, TimeoutError, ResponseError) as exc:
                errors.append(f"{address}: {exc}")
                continue
            self._apply(reply, address)
            self._stale = False
            return
        raise ConnectionError(f"no Redis Cluster node answered CLUSTER SLOTS: {'; '.join(errors)}")

    def _apply(self, reply: list[Any], asked: Address) -> None:
        slots: list[Endpoint | None] = [None] * 16384
        readers: list[list[Endpoint]] = [[] for _ in range(16384)] if self._replicas else []
        for start, end, *nodes in reply:
            eps = []
            for i, node in enumerate(nodes):
                host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
                address = (host or asked[0], int(node[1])) if isinstance(asked, tuple) else asked
                eps.append(self._node(address, readonly=i > 0))
            for slot in range(start, end + 1):
                slots[slot] = eps[0]
                if self._replicas:
                    readers[slot] = eps
        missing = slots.count(None)
        if missing:
            raise ClusterDownError(f"{missing} hash slots are not served by any node")
        self._slots = slots  # type: ignore[assignment]
        self._readers = readers

    @property
    def _replicas(self) -> bool:
        return self._cfg.read_from_replicas

    def _route(self, args: Cmd, read: bool) -> Endpoint:
        key = args[3] if args[0] in _EVAL else args[1]
        slot = key_slot(key)
        if read and self._readers:
            eps = self._readers[slot]
            return eps[next(self._turn) % len(eps)]
        return self._slots[slot]

    async def _conn(self, ep: Endpoint) -> PipelinedConnection:
        conn = ep.conn
        if conn is None or conn.lost is not None:
            try:
                conn = await ep.connect()
            except (ConnectionError, TimeoutError) as exc:
                self._stale = True
                if isinstance(exc, ConnectionError):  # a node lost, not a slow one
                    topology.moved(self._cfg.key)
                raise
        if conn.pending >= conn.max_inflight:
            await conn.room()
        return conn

    async def execute(self, *args: Any) -> Any:
        """Send one command to the node serving its key; follow MOVED/ASK."""
        return (await self.pipeline([args]))[0]

    async def execute_read(self, *args: Any) -> Any:
        return (await self.pipeline([args], read=bool(self._readers)))[0]

    def send(self, cmd: Cmd) -> Awaitable[Any]:
        return self.execute(*cmd)  # MOVED/ASK need the coroutine around the reply

    def send_read(self, cmd: Cmd) -> Awaitable[Any]:
        return self.execute_read(*cmd)

    async def again(self, cmds: Sequence[Cmd], error: BaseException, read: bool = False) -> Any:
        """As ``PipelinedTransport.again`` (every call here went through the policy already)."""
        if retry.settled(error):
            raise error
        return await self._again(cmds, None, read, error, True)

    async def _redirected(self, args: Cmd, exc: ResponseError) -> Any:
        """Follow MOVED/ASK; wait out TRYAGAIN/CLUSTERDOWN (nothing ran) with the delays."""
        delays = self._cfg.retry.delays()
        for _ in range(_REDIRECTS + self._cfg.retry.retries):
            try:
                if isinstance(exc, MovedError):
                    self._stale = True  # reload the whole map before the next command
                    topology.moved(self._cfg.key)
                    ep = self._node((exc.host, int(exc.port)))
                    self._slots[exc.slot_id] = ep
                    reply = await (await self._conn(ep)).send(args)
                    return reply
                if isinstance(exc, AskError):
                    topology.moved(self._cfg.key)
                    conn = await self._conn(self._node((exc.host, int(exc.port))))
                    _asking, reply = await conn.send_many([("ASKING",), args], check=False)
                    if isinstance(reply, ResponseError):
                        raise reply
                    return reply
                delay = next(delays, None)  # TRYAGAIN (slot migrating), CLUSTERDOWN
                if delay is None:
                    raise exc
                await asyncio.sleep(delay)
                self._stale = True
                await self.initialize()
                return await (await self._conn(self._route(args, False))).send(args)
            except (MovedError, AskError, TryAgainError, ClusterDownError) as again:
                exc = again
        raise exc

    async def pipeline(
        self, cmds: Sequence[Cmd], node: Node = None, read: bool = False
    ) -> list[Any]:
        """Send the commands, batched per node; return every reply, raising the first error."""
        replies, error, sent = await self._attempt(cmds, node, read)
        if error is not None:
            return await self._again(cmds, node, read, error, sent)
        return retry.checked(replies)

    async def _again(
        self, cmds: Sequence[Cmd], node: Node, read: bool, error: BaseException, sent: bool
    ) -> list[Any]:
        return await drive(
            retry.retries(cmds, error, sent, self._cfg.retry.delays()),
            lambda: self._attempt(cmds, node, read),
        )

    async def _attempt(self, cmds: Sequence[Cmd], node: Node, read: bool) -> retry.Attempt:
        """One attempt of a batch (see ``redis.retry.Attempt``); redirections are followed."""
        sent = False
        futures: list[tuple[list[int], asyncio.Future[list[Any]]]] = []
        try:
            if self._stale:
                await self.initialize()
            if node is not None:
                fut = (await self._conn(node)).send_many(cmds)
                sent = True
                return await fut, None, True
            batches: dict[Endpoint, list[int]] = {}
            for i, cmd in enumerate(cmds):
                batches.setdefault(self._route(cmd, read), []).append(i)
            for ep, positions in batches.items():
                conn = await self._conn(ep)
                futures.append((positions, conn.send_many([cmds[i] for i in positions])))
                sent = True
            replies: list[Any] = [None] * len(cmds)
            for positions, batch in futures:
                for i, reply in zip(positions, await batch, strict=True):
                    replies[i] = reply
            for i, reply in enumerate(replies):
                if isinstance(reply, MovedError | AskError | TryAgainError | ClusterDownError):
                    try:
                        replies[i] = await self._redirected(cmds[i], reply)
                    except ResponseError as exc:
                        replies[i] = exc
        except (ConnectionError, TimeoutError, ClusterDownError) as exc:
            if not isinstance(exc, ClusterDownError):
                self._stale = True
                if isinstance(exc, ConnectionError):
                    topology.moved(self._cfg.key)
            for _, batch in futures:
                batch.cancel()  # their replies are read and dropped
            return [], exc, sent
        return replies, None, sent

    async def primaries(self) -> list[Node]:
        if self._stale:
            await self.initialize()
        return list(dict.fromkeys(self._slots))

    async def aclose(self) -> None:
        for ep in self._nodes.values():
            ep.close()


AsyncTransport = PipelinedTransport | AsyncClusterTransport


class LoopTransports:
    """The transports of one config, one per event loop, each closed when its loop shuts down."""

    def __init__(self, cfg: RedisConfig) -> None:
        self.cfg = cfg
        self._by_loop: dict[asyncio.AbstractEventLoop, AsyncTransport] = {}
        self._guards: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._lock = threading.Lock()

    async def get(self, loop: asyncio.AbstractEventLoop) -> AsyncTransport:
        """The transport of ``loop`` (the running loop), created on first use."""
        transport = self._by_loop.get(loop)
        if transport is not None:
            return transport
        cfg = self.cfg
        made: AsyncTransport
        if cfg.topology == "cluster":
            made = AsyncClusterTransport(cfg)
            # Learn the slots before any command, so concurrent first commands route right.
            try:
                await made.initialize()
            except BaseException:
                await made.aclose()
                raise
        else:
            made = PipelinedTransport(cfg)
        with self._lock:
            # loops that closed without shutting down their async generators: forget them
            for old in [lp for lp in self._by_loop if lp.is_closed()]:
                del self._by_loop[old]
                self._guards.pop(old, None)
            transport = self._by_loop.setdefault(loop, made)
        if transport is made:
            guard = self._until_shutdown(loop, made)
            self._guards[loop] = guard
            await guard.__anext__()  # registers with the loop's async-generator hooks
        else:  # another task of this loop got there first
            await made.aclose()
        return transport

    async def _until_shutdown(
        self, loop: asyncio.AbstractEventLoop, transport: AsyncTransport
    ) -> AsyncGenerator[None, None]:
        # The loop closes this generator in shutdown_asyncgens(), still running: the one moment
        # its connections can be closed cleanly.
        try:
            yield
        finally:
            with self._lock:
                if self._by_loop.get(loop) is transport:
                    del self._by_loop[loop]
                self._guards.pop(loop, None)
            await transport.aclose()
