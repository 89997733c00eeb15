"""Synchronous Redis transports: send encoded commands, return raw replies (the I/O seam).

``DirectTransport`` (one server, or the master/replicas Sentinel names) keeps its own small
pool of redis-py connections: redis-py's client and pool add tens of microseconds of
bookkeeping per call that a cache does not need. Its single commands share one connection
between threads (``Shared``): whichever thread finds it idle writes the commands every other
thread queued meanwhile in one write and hands each its reply, so 8 threads cost the server a
few batched reads instead of 8 round trips each. ``SyncClusterTransport`` leaves routing, MOVED and
ASK to redis-py's ``RedisCluster``. A failed attempt goes through the retry policy of
``redis.retry`` (the asyncio transports drive the same one); both raise redis-py exceptions,
which the backend translates.
"""

from __future__ import annotations

import select
import threading
import time
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable, Generator, Sequence
from typing import Any

import redis.cluster
import redis.connection
import redis.sentinel
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ConnectionError,
    MaxConnectionsError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TimeoutError,
)
from redis.retry import Retry as RedisRetry

from . import retry, topology
from .config import RedisConfig
from .resp import pack_batch

_pack: Callable[[Any], bytes]
try:
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    from .resp import pack_command as _pack

Cmd = Sequence[Any]
Node = Any  # a cluster node; None on other topologies

_MORE: Any = object()  # the hiredis reader's "no whole reply yet"
_HIREDIS_PARSER: Any = None
try:  # as redis-py's hiredis parser makes its reader
    import redis._parsers.hiredis as _parsers

    _MORE, _HIREDIS_PARSER = _parsers.NOT_ENOUGH_DATA, _parsers._HiredisParser
except (ImportError, AttributeError):  # pragma: no cover - other layouts: all via read_response
    pass

_NO_RETRY = RedisRetry(NoBackoff(), 0)  # connections never retry on their own: we do
BATCH_ARGS = 10_000  # arguments per write of a batch, before its replies are read


class PoolExhausted(MaxConnectionsError):
    """Every one of ``max_connections`` stayed busy for ``pool_timeout`` seconds."""


class Pool:
    """Idle connections (most recently used first), at most ``limit`` created.

    ``list.pop``/``append`` are atomic, so the common path takes no lock; the condition is used
    only to wait when every connection is busy.
    """

    def __init__(self, factory: Callable[[], Any], limit: int, timeout: float | None) -> None:
        self._factory = factory
        self._limit = limit
        self._timeout = timeout
        self._idle: list[Any] = []
        self._all: list[Any] = []
        self._cond = threading.Condition()
        self._waiting = 0

    def acquire(self) -> Any:
        try:
            return self._idle.pop()
        except IndexError:
            return self._grow()

    def _grow(self) -> Any:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            self._waiting += 1  # before looking at _idle: see release()
            try:
                while True:
                    if self._idle:
                        return self._idle.pop()
                    if len(self._all) < self._limit:
                        conn = self._factory()
                        self._all.append(conn)
                        return conn
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise PoolExhausted(
                            f"all {self._limit} connections busy for "
                            f"pool_timeout={self._timeout:g} s (max_connections)"
                        )
                    self._cond.wait(left)
            finally:
                self._waiting -= 1

    def release(self, conn: Any) -> None:
        self._idle.append(conn)
        if self._waiting:
            with self._cond:
                self._cond.notify()

    def disconnect(self) -> None:
        for conn in list(self._all):
            conn.disconnect()


class _Waiter:
    """A queued command of ``Shared``: its lock is held until the leader releases it, with the
    reply (or the error) filled in, or with ``lead`` set: then the waiter leads the next batch."""

    __slots__ = ("error", "lead", "lock", "packed", "reply", "sent")

    def __init__(self, packed: bytes) -> None:
        self.packed = packed
        self.lock = allocate_lock()  # the cheapest wake-up CPython has: one futex
        self.lock.acquire()
        self.reply: Any = None
        self.error: BaseException | None = None
        self.sent = False
        self.lead = False


class Shared:
    """One connection that every thread's single commands share (flat combining).

    A caller that takes the lead (a lock nobody waits on: it is only ever tried) writes its own
    command and every command queued so far in one write, reads their replies, releases each
    waiter with its reply, then passes the lead to the oldest command queued meanwhile (or
    drops it). A caller that finds the lead taken queues its command and sleeps on its own lock.
    One thread costs what a pooled connection costs; 8 threads cost the server one read per
    batch. A failure fails the batch (each command then says whether it was written, and goes
    through the retry policy on its own); the connection reopens for the next batch.

    No command is left queued with nobody leading: a leader looks at the queue after dropping
    the lead, and a caller tries the lead again after queueing, so whichever comes second sees
    the other (``deque.append``/``popleft`` are atomic; only the leader takes from the queue).
    """

    def __init__(self, factory: Callable[[], Any], health: bool) -> None:
        self.conn = factory()
        self._health = health
        self._lead = allocate_lock()
        self._queue: deque[_Waiter] = deque()

    def call(self, packed: bytes) -> tuple[Any, BaseException | None, bool]:
        """(reply, None, True), an error reply in place of the reply, or (None, error, sent)."""
        lead = self._lead
        if lead.acquire(False):  # alone: a batch of one, inlined (the one-thread path)
            conn = self.conn
            sent = False
            try:
                _ready(conn, self._health)
                sent = True
                conn.send_packed_command([packed], check_health=False)
                try:
                    reply = conn.read_response()
                except ResponseError as exc:
                    reply = exc
            except BaseException as exc:
                return self._failed(exc, [], sent)
            lead.release()
            if self._queue:  # queued while this call held the lead
                self._pass_lead()
            return reply, None, True
        me = _Waiter(packed)
        self._queue.append(me)
        if lead.acquire(False):  # the leader dropped the lead before seeing this command
            return self._lead_batch(me, self._drain())
        me.lock.acquire()
        if not me.lead:
            return me.reply, me.error, me.sent
        return self._lead_batch(me, [me, *self._drain()])

    def _drain(self) -> list[_Waiter]:
        queue = self._queue
        batch = []
        while queue:
            batch.append(queue.popleft())
        return batch

    def _lead_batch(
        self, me: _Waiter, batch: list[_Waiter]
    ) -> tuple[Any, BaseException | None, bool]:
        """Write ``batch`` (``me`` among them) in one write, read every reply, wake the other
        threads, pass the lead on: ``me``'s own result."""
        conn = self.conn
        others = [w for w in batch if w is not me]
        sent = False
        try:
            _ready(conn, self._health)
            sent = True
            # one buffer: redis-py writes each item of a list on its own
            conn.send_packed_command([b"".join([w.packed for w in batch])], False)
            replies = _read(conn, len(batch))
        except BaseException as exc:
            return self._failed(exc, others, sent)
        mine = None
        for w, reply in zip(batch, replies, strict=True):
            if w is me:
                mine = reply
            else:
                w.reply, w.sent = reply, True
                w.lock.release()
        self._lead.release()
        if self._queue:
            self._pass_lead()
        return mine, None, True

    def _failed(
        self, exc: BaseException, others: list[_Waiter], sent: bool
    ) -> tuple[Any, BaseException | None, bool]:
        """The leader met ``exc``: close the connection, fail the others, pass the lead on."""
        self.conn.disconnect()
        error = exc if isinstance(exc, RedisError) else ConnectionError(repr(exc))
        for w in others:
            w.error, w.sent = error, sent
            w.lock.release()
        self._lead.release()
        if self._queue:
            self._pass_lead()
        if not isinstance(exc, RedisError):
            raise exc
        return None, exc, sent

    def _pass_lead(self) -> None:
        """After dropping the lead with commands queued: take it back (unless a queued caller
        did) and hand it to the oldest of them."""
        while self._queue and self._lead.acquire(False):
            try:
                nxt = self._queue.popleft()
            except IndexError:  # a queued caller took the lead and the queue meanwhile
                self._lead.release()  # and look again: one may have queued while it was held
                continue
            nxt.lead = True
            nxt.lock.release()
            return

    def disconnect(self) -> None:
        self.conn.disconnect()


def connection_kwargs(cfg: RedisConfig, retry: Any) -> dict[str, Any]:
    """Keyword arguments of one redis-py connection (sync or asyncio) for ``cfg``."""
    kwargs = dict(cfg.connection, retry=retry)
    if cfg.unix_path is not None:
        kwargs.pop("socket_keepalive")
        kwargs["path"] = cfg.unix_path
    elif cfg.topology == "single":
        kwargs.update(host=cfg.hosts[0][0], port=cfg.hosts[0][1])
    return kwargs


def connection_factory(cfg: RedisConfig, module: Any, retry: Any) -> Callable[[], Any]:
    """A callable making one unconnected connection of ``module`` (redis[.asyncio].connection)."""
    kwargs = connection_kwargs(cfg, retry)
    if cfg.unix_path is not None:
        cls = module.UnixDomainSocketConnection
    else:
        cls = module.SSLConnection if "ssl_cert_reqs" in kwargs else module.Connection
    return lambda: cls(**kwargs)


def sentinel_pools(cfg: RedisConfig, module: Any, retry: Any) -> list[Any]:
    """redis-py Sentinel pools [master, replicas] of ``module`` (redis[.asyncio].sentinel).

    Only their master/replica discovery and connection class are used, not their pooling.
    """
    kwargs = connection_kwargs(cfg, retry)
    manager = module.Sentinel(list(cfg.hosts), sentinel_kwargs={**cfg.sentinel, "retry": retry})
    ssl = "ssl_cert_reqs" in kwargs
    return [
        module.SentinelConnectionPool(cfg.service, manager, is_master=m, ssl=ssl, **kwargs)
        for m in (True, False)
    ]


def pool_factory(pool: Any) -> Callable[[], Any]:
    """Make connections the way a redis-py (Sentinel) pool would, bypassing its bookkeeping."""
    return lambda: pool.connection_class(**pool.connection_kwargs)


def _buffered(conn: Any) -> Any:
    """The hiredis reader of ``conn`` if later replies of a batch may be taken from it directly:
    RESP2 (no push message can come between replies) on redis-py's hiredis parser; else None."""
    parser = conn._parser
    if type(parser) is not _HIREDIS_PARSER or conn.protocol not in (2, "2", None):
        return None
    return parser._reader


def _read(conn: Any, n: int) -> list[Any]:
    """Read ``n`` replies; error replies are returned in place so the connection stays in step.

    Once ``read_response`` has read from the socket, the replies that came with that read are
    taken from the hiredis reader directly: redis-py's own layers (timeouts, host name, health
    bookkeeping) cost more than parsing a reply, most of reading a 100-command pipeline. An
    error reply taken that way is handled as ``read_response`` would raise it.
    """
    out: list[Any] = []
    append = out.append
    gets = None
    for i in range(n):
        try:
            reply = gets() if gets is not None else _MORE
            if type(reply) is bytes:  # the commonest reply, before any other test
                append(reply)
                continue
            if reply is _MORE or reply is False:  # (False: a reader made without the sentinel)
                reply = conn.read_response()
                if gets is None:
                    reader = _buffered(conn)
                    gets = None if reader is None else reader.gets
            elif isinstance(reply, Exception) or (
                type(reply) is list and reply and isinstance(reply[0], ConnectionError)
            ):
                error = reply if isinstance(reply, Exception) else reply[0]
                if not isinstance(error, ResponseError):
                    conn.disconnect()  # as read_response does for a failure it raises
                raise error
            append(reply)
        except ResponseError as exc:
            append(exc)
        except ConnectionError as exc:
            if i and str(exc) == retry.DEMOTED:
                # refused after earlier commands ran: not a refusal of the whole batch
                raise ConnectionError(f"the primary was demoted after {i} commands") from exc
            raise
    return out


def _ready(conn: Any, health: bool = False) -> None:
    """Connect ``conn``; or, if the server closed it while it sat in the pool (a restart, an
    idle timeout), open it again: no byte of a command goes to a socket already closed, so a
    command is never in doubt because of a connection that was dead before it was sent.
    ``health``: then PING it if it was idle past ``health_check_interval`` (before, not inside,
    the command's send: a failed PING leaves the command unsent)."""
    sock = conn._sock
    if sock is None:
        # connect() rather than send's implicit connect: a Sentinel connection looks up the
        # master (or a replica) only in connect()
        conn.connect()
        return
    try:
        readable = bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        readable = True
    if not readable:
        if health:
            conn.check_health()
        return
    try:
        stale = conn.can_read(timeout=0)  # TLS records with no data (session tickets): False
    except (ConnectionError, TimeoutError, OSError):
        stale = True
    if stale:
        conn.disconnect()
        conn.connect()
    elif health:
        conn.check_health()


def pack(cmds: Sequence[Cmd]) -> bytes:
    """The commands in RESP, one buffer (``redis.resp.pack_batch``)."""
    return pack_batch(cmds, _pack)


def chunks(cmds: Sequence[Cmd], limit: int = BATCH_ARGS) -> list[Sequence[Cmd]]:
    """``cmds`` cut into runs of at most ``limit`` arguments (a longer command alone)."""
    if sum(map(len, cmds)) <= limit:  # the common case, in C: one run
        return [cmds]
    out: list[Sequence[Cmd]] = []
    start = size = 0
    for i, cmd in enumerate(cmds):
        if size and size + len(cmd) > limit:
            out.append(cmds[start:i])
            start, size = i, 0
        size += len(cmd)
    out.append(cmds[start:])
    return out


def drive(
    steps: Generator[float, retry.Attempt, list[Any]], attempt: Callable[[], retry.Attempt]
) -> list[Any]:
    """Run the policy's retry loop (``redis.retry.retries``) with blocking sleeps."""
    try:
        delay = next(steps)
        while True:
            time.sleep(delay)
            delay = steps.send(attempt())
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class DirectTransport:
    """Commands over pooled connections to one server (Sentinel: the current master)."""

    cluster = False

    def __init__(self, cfg: RedisConfig) -> None:
        self.name = cfg.name
        self._retry = cfg.retry
        self._health = cfg.connection["health_check_interval"] > 0
        self._sentinel: list[Any] = []  # kept: their proxies hold them only weakly
        if cfg.topology == "sentinel":
            self._sentinel = sentinel_pools(cfg, redis.sentinel, _NO_RETRY)
            factories = [pool_factory(p) for p in self._sentinel]
        else:
            factories = [connection_factory(cfg, redis.connection, _NO_RETRY)]
        self._pool = self._read_pool = Pool(factories[0], cfg.max_connections, cfg.pool_timeout)
        self._shared = Shared(factories[0], self._health)
        if cfg.read_from_replicas:
            self._read_pool = Pool(factories[1], cfg.max_connections, cfg.pool_timeout)

    def execute(self, *args: Any) -> Any:
        """Send one command to the primary and return its reply (error replies raise)."""
        reply, error, sent = self._shared.call(_pack(args))
        if error is not None:
            return self._again(self._pool, [args], error, sent)[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def execute_read(self, *args: Any) -> Any:
        """Like ``execute``, but on a replica when ``read_from_replicas`` is set."""
        if self._read_pool is self._pool:
            return self.execute(*args)
        return self.pipeline([args], read=True)[0]

    def pipeline(self, cmds: Sequence[Cmd], node: Node = None, read: bool = False) -> list[Any]:
        """Send the commands, read every reply; raise the first error reply.

        Commands go out in runs of at most ``BATCH_ARGS`` arguments, each run's replies read
        before the next is written, so unread replies stay bounded whatever the batch size.
        """
        if len(cmds) == 1 and not read:
            return [self.execute(*cmds[0])]
        pool = self._read_pool if read else self._pool
        replies, error, sent = self._attempt(pool, cmds)
        if error is not None:
            return self._again(pool, cmds, error, sent)
        return retry.checked(replies)

    def primaries(self) -> list[Node]:
        return [None]

    def _attempt(
        self, pool: Pool, cmds: Sequence[Cmd]
    ) -> tuple[list[Any], BaseException | None, bool]:
        """One attempt: (replies, None, sent) or ([], the error, whether a byte was sent)."""
        conn = pool.acquire()
        sent = False
        replies: list[Any] = []
        try:
            _ready(conn, self._health)
            for run in chunks(cmds):
                sent = True
                conn.send_packed_command([pack(run)], check_health=False)
                replies += _read(conn, len(run))
        except RedisError as exc:
            conn.disconnect()
            pool.release(conn)
            return [], exc, sent
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            raise
        pool.release(conn)
        return replies, None, sent

    def _again(
        self, pool: Pool, cmds: Sequence[Cmd], error: BaseException, sent: bool
    ) -> list[Any]:
        """After a failed attempt: retry as the policy says; the checked replies, or raise."""
        return drive(
            retry.retries(cmds, error, sent, self._retry.delays()),
            lambda: self._attempt(pool, cmds),
        )

    def close(self) -> None:
        """Close every connection (they reopen on demand)."""
        self._shared.disconnect()
        self._pool.disconnect()
        if self._read_pool is not self._pool:
            self._read_pool.disconnect()
        if self._sentinel:
            for client in self._sentinel[0].sentinel_manager.sentinels:
                client.close()


class SyncClusterTransport:
    """Commands through redis-py's RedisCluster (slot routing, MOVED/ASK, topology refresh).

    RedisCluster itself retries nothing (it would resend an ``incr`` after a lost reply and
    wait out a frozen node's timeout several times): failed attempts go through the same
    retry policy as every other transport. The client connects on first use, so opening a
    Storage never fails on a down cluster.
    """

    cluster = True

    def __init__(self, cfg: RedisConfig) -> None:
        self.name = cfg.name
        self._cfg = cfg
        self._client: Any = None
        self._lock = threading.Lock()
        self._refresh = False  # reload the slot map before the next attempt

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from redis.cluster import RedisCluster

                    self._client = RedisCluster(**cluster_kwargs(self._cfg))
        return self._client

    def execute(self, *args: Any) -> Any:
        return self.pipeline([args])[0]

    def execute_read(self, *args: Any) -> Any:
        return self.pipeline([args], read=True)[0]

    def pipeline(self, cmds: Sequence[Cmd], node: Node = None, read: bool = False) -> list[Any]:
        """Send the commands (one pipeline, split per node by redis-py); raise the first error
        reply."""
        replies, error, sent = self._attempt(cmds, node, read)
        if error is not None:
            return drive(
                retry.retries(cmds, error, sent, self._cfg.retry.delays()),
                lambda: self._attempt(cmds, node, read),
            )
        return retry.checked(replies)

    def _attempt(self, cmds: Sequence[Cmd], node: Node, read: bool) -> retry.Attempt:
        """One attempt (see ``redis.retry.Attempt``). redis-py does not say whether a failed
        single command was written: only its error for a connection it could not open says
        not."""
        try:
            client = self.client
            if self._refresh:
                self._refresh = False
                client.nodes_manager.initialize()
            if node is not None:
                return [client.execute_command(*c, target_nodes=node) for c in cmds], None, True
            if len(cmds) == 1:
                return [self._one(client, cmds[0])], None, True
            return self._batch(client, cmds, read)
        except ResponseError as exc:
            if retry.refused(exc):  # CLUSTERDOWN, TRYAGAIN after redirections: nothing ran
                return [], exc, True
            return [exc], None, True
        except (ConnectionError, TimeoutError) as exc:
            if isinstance(exc, ConnectionError):  # a node lost, not a slow one
                topology.moved(self._cfg.key)
            return [], exc, not retry.connect_failure(exc)
        except RedisClusterException as exc:  # no node to ask, a slot no node serves
            self._refresh = True
            topology.moved(self._cfg.key)
            return [], ConnectionError(f"{type(exc).__name__}: {exc}"), False

    def _one(self, client: Any, cmd: Cmd) -> Any:
        """One command through the client, which follows MOVED and ASK itself. A MOVED it
        followed patched its slot map, so later batches go to the new owner without meeting
        MOVED: it is reported here (``topology.moved``, as ``_batch`` reports its own), or a
        local cache would keep filling keys of that slot from a node it does not listen to."""
        seen = client.reinitialize_counter  # redis-py counts every MOVED it follows
        try:
            return client.execute_command(*cmd)
        finally:
            if client.reinitialize_counter != seen:
                topology.moved(self._cfg.key)

    def _batch(self, client: Any, cmds: Sequence[Cmd], read: bool) -> retry.Attempt:
        """Several single-key commands: one pipelined write per node, then every reply (errors
        in place). A MOVED or ASK reply (the command did not run) is sent again alone, through
        the client, which follows it. redis-py's own pipeline is not used: it resends commands
        that timed out, one at a time, each waiting its own timeout."""
        replica = read and self._cfg.read_from_replicas
        strategy = client.load_balancing_strategy if replica else None
        groups: dict[str, tuple[Any, list[int]]] = {}
        for i, cmd in enumerate(cmds):
            target = client.nodes_manager.get_node_from_slot(key_slot(cmd[1]), replica, strategy)
            groups.setdefault(target.name, (target, []))[1].append(i)
        taken: list[tuple[Any, Any]] = []
        replies: list[Any] = [None] * len(cmds)
        sent = False
        try:
            for target, positions in groups.values():
                pool = client.get_redis_connection(target).connection_pool
                conn = pool.get_connection()
                taken.append((pool, conn))
                _ready(conn, health=True)  # PINGs only with health_check_interval
                sent = True
                conn.send_packed_command([pack([cmds[i] for i in positions])], check_health=False)
            for (_pool, conn), (_target, positions) in zip(taken, groups.values(), strict=True):
                for i, reply in zip(positions, _read(conn, len(positions)), strict=True):
                    replies[i] = reply
        except (ConnectionError, TimeoutError) as exc:
            for _pool, conn in taken:
                conn.disconnect()  # replies may be left unread: out of step
            self._refresh = True
            if isinstance(exc, ConnectionError):
                topology.moved(self._cfg.key)
            return [], exc, sent and not retry.connect_failure(exc)
        finally:
            for pool, conn in taken:
                pool.release(conn)
        for i, reply in enumerate(replies):
            if isinstance(reply, AskError):  # MOVED is an AskError too
                topology.moved(self._cfg.key)
                try:
                    replies[i] = client.execute_command(*cmds[i])
                except ResponseError as exc:
                    replies[i] = exc
        if retry.resend_after_refusal(cmds, replies):
            return [], retry.first_error(replies), True
        return replies, None, sent

    def primaries(self) -> list[Node]:
        return list(self.client.get_primaries())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def cluster_kwargs(cfg: RedisConfig) -> dict[str, Any]:
    """Keyword arguments of a redis-py RedisCluster for ``cfg`` (it retries nothing itself)."""
    # typed as Any: the installed types-redis stubs predate these redis-py names
    cluster: Any = redis.cluster
    kwargs = {k: v for k, v in cfg.connection.items() if k != "db"}
    if "ssl_cert_reqs" in kwargs:
        kwargs["ssl"] = True
    return dict(
        kwargs,
        startup_nodes=[cluster.ClusterNode(h, p) for h, p in cfg.hosts],
        retry=_NO_RETRY,
        load_balancing_strategy=(
            cluster.LoadBalancingStrategy.ROUND_ROBIN if cfg.read_from_replicas else None
        ),
        max_connections=cfg.max_connections,
    )


Transport = DirectTransport | SyncClusterTransport


def open_transport(cfg: RedisConfig) -> Transport:
    return SyncClusterTransport(cfg) if cfg.topology == "cluster" else DirectTransport(cfg)
