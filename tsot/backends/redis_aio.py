"""Asyncio Redis transports (the seam DESIGN.md §8 names), one set per event loop.

An asyncio connection belongs to the loop that opened it, so each config has one transport per
running loop. When a loop shuts down through ``asyncio.run``, ``asyncio.Runner`` or
``loop.shutdown_asyncgens()``, its transport closes its connections on that loop; no
``AsyncStorage.close()`` is needed for that. A later auto-pipelined connection replaces
``AsyncDirectTransport`` without touching the backend: it needs only ``execute``,
``execute_read``, ``pipeline``, ``primaries`` and ``aclose``.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import redis.asyncio.connection
import redis.asyncio.sentinel
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError

from .redis_config import RedisConfig
from .redis_transport import (
    Cmd,
    Node,
    PoolExhausted,
    cluster_kwargs,
    connection_factory,
    pool_factory,
    sentinel_pools,
)

_NO_RETRY = AsyncRetry(NoBackoff(), 0)


class AsyncPool:
    """Idle connections of one loop, at most ``limit`` created; waiters queue in order."""

    def __init__(self, factory: Callable[[], Any], limit: int, timeout: float | None) -> None:
        self._factory = factory
        self._limit = limit
        self._timeout = timeout
        self.idle: list[Any] = []
        self._all: list[Any] = []
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()

    async def acquire(self) -> Any:
        if self.idle:
            return self.idle.pop()
        if len(self._all) < self._limit:
            conn = self._factory()
            self._all.append(conn)
            return conn
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, self._timeout)
        except asyncio.TimeoutError:
            raise PoolExhausted(f"all {self._limit} connections busy (max_connections)") from None

    def release(self, conn: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    async def aclose(self) -> None:
        for conn in self._all:
            await conn.disconnect()


async def _read(conn: Any, n: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(n):
        try:
            out.append(await conn.read_response())
        except ResponseError as exc:
            out.append(exc)
    return out


class AsyncDirectTransport:
    """Commands over one loop's pooled connections to one server (Sentinel: the master)."""

    cluster = False

    def __init__(self, cfg: RedisConfig) -> None:
        self.name = cfg.name
        self._retry = cfg.retry
        self._health = cfg.connection["health_check_interval"] > 0
        self._sentinel: list[Any] = []
        if cfg.topology == "sentinel":
            self._sentinel = sentinel_pools(cfg, redis.asyncio.sentinel, _NO_RETRY)
            factories = [pool_factory(p) for p in self._sentinel]
        else:
            factories = [connection_factory(cfg, redis.asyncio.connection, _NO_RETRY)]
        self._pool = self._read_pool = AsyncPool(
            factories[0], cfg.max_connections, cfg.pool_timeout
        )
        if cfg.read_from_replicas:
            self._read_pool = AsyncPool(factories[1], cfg.max_connections, cfg.pool_timeout)

    async def execute(self, *args: Any) -> Any:
        """Send one command to the primary and return its reply (error replies raise)."""
        pool = self._pool
        conn = pool.idle.pop() if pool.idle else await pool.acquire()
        try:
            if not conn.is_connected:
                await conn.connect()  # a Sentinel connection finds its server only here
            await conn.send_packed_command(conn.pack_command(*args), check_health=self._health)
            reply = await conn.read_response()
        except ResponseError:
            pool.release(conn)
            raise
        except BaseException as exc:
            # redis-py has already closed the connection; it reconnects on its next use
            pool.release(conn)
            if isinstance(exc, ConnectionError) and not isinstance(exc, AuthenticationError):
                return (await self._retrying(pool, [args], exc))[0]
            raise
        pool.release(conn)
        return reply

    async def execute_read(self, *args: Any) -> Any:
        if self._read_pool is self._pool:
            return await self.execute(*args)
        return _raise_first(await self._retrying(self._read_pool, [args], None))[0]

    async def pipeline(
        self, cmds: Sequence[Cmd], node: Node = None, read: bool = False
    ) -> list[Any]:
        if len(cmds) == 1 and not read:
            return [await self.execute(*cmds[0])]
        pool = self._read_pool if read else self._pool
        return _raise_first(await self._retrying(pool, cmds, None))

    async def primaries(self) -> list[Node]:
        return [None]

    async def _retrying(
        self, pool: AsyncPool, cmds: Sequence[Cmd], error: BaseException | None
    ) -> list[Any]:
        delays = self._retry.delays()
        while True:
            if error is not None:
                delay = next(delays, None)
                if delay is None:
                    raise error
                await asyncio.sleep(delay)
            conn = await pool.acquire()
            try:
                if not conn.is_connected:
                    await conn.connect()
                await conn.send_packed_command(conn.pack_commands(cmds), check_health=self._health)
                replies = await _read(conn, len(cmds))
            except ConnectionError as exc:
                pool.release(conn)
                if isinstance(exc, AuthenticationError):
                    raise
                error = exc
                continue
            except BaseException:
                pool.release(conn)
                raise
            pool.release(conn)
            return replies

    async def aclose(self) -> None:
        await self._pool.aclose()
        if self._read_pool is not self._pool:
            await self._read_pool.aclose()
        if self._sentinel:  # the clients that ask the Sentinels for addresses
            for client in self._sentinel[0].sentinel_manager.sentinels:
                await client.aclose()


def _raise_first(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


class AsyncClusterTransport:
    """Commands through redis.asyncio's RedisCluster, bound to one loop."""

    cluster = True

    def __init__(self, cfg: RedisConfig) -> None:
        from redis.asyncio.cluster import RedisCluster

        self.name = cfg.name
        kwargs = cluster_kwargs(cfg, AsyncRetry)
        # asyncio's ClusterNode is a different class from the sync one cluster_kwargs made
        kwargs["startup_nodes"] = [ClusterNode(h, p) for h, p in cfg.hosts]
        self.client: Any = RedisCluster(**kwargs)

    async def execute(self, *args: Any) -> Any:
        return await self.client.execute_command(*args)

    execute_read = execute

    async def pipeline(
        self, cmds: Sequence[Cmd], node: Node = None, read: bool = False
    ) -> list[Any]:
        if node is not None:
            return [await self.client.execute_command(*c, target_nodes=node) for c in cmds]
        if len(cmds) == 1:
            return [await self.client.execute_command(*cmds[0])]
        pipe = self.client.pipeline()
        for cmd in cmds:
            pipe.execute_command(*cmd)
        replies: list[Any] = await pipe.execute()
        return replies

    async def primaries(self) -> list[Node]:
        await self.client.initialize()  # a no-op once the slots are known
        return list(self.client.get_primaries())

    async def aclose(self) -> None:
        await self.client.aclose()


AsyncTransport = AsyncDirectTransport | AsyncClusterTransport


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
            # Learn the slots before any command: concurrent first commands on an unready
            # client meet MOVED, and the topology refresh that follows breaks their connections.
            try:
                await made.client.initialize()
            except BaseException:
                await made.aclose()
                raise
        else:
            made = AsyncDirectTransport(cfg)
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
