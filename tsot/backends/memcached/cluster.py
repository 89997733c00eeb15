"""Memcached servers as one cluster: rendezvous routing, dead-server skipping, cached state.

Shared by the sync and asyncio transports of one location (process-wide, thread-safe).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ...errors import BackendUnavailable, OutcomeUnknown, TsotError
from ...logs import limited

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")
Address = tuple[str, int] | str  # (host, port) or a unix socket path


@dataclass(frozen=True)
class ServerSpec:
    address: Address

    @property
    def name(self) -> str:
        a = self.address
        return a if isinstance(a, str) else f"{a[0]}:{a[1]}"


class Cluster:
    """The servers of one location and what is known about them.

    Keys go to servers by rendezvous (highest random weight) hashing over the servers that are
    not marked dead: losing or adding a server moves only the keys it owns. A server that
    fails is marked dead for ``dead_timeout`` seconds; its keys go to the others meanwhile,
    and the first operation after that probes it again (one timeout per interval at most).
    """

    def __init__(
        self,
        servers: Sequence[ServerSpec],
        dead_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servers = list(servers)
        self.names = [s.name for s in servers]
        self.dead_timeout = dead_timeout
        self.clock = clock
        self._salts = [hashlib.sha256(n.encode()).digest()[:16] for n in self.names]
        self._dead: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self.gens: dict[tuple[int, bytes], int] = {}
        """(server, namespace prefix) -> generation last seen on that server."""
        self.limits: dict[int, int] = {}
        """server -> item_size_max reported by ``stats settings``."""

    # -- liveness ----------------------------------------------------------------------------
    def live(self) -> list[int]:
        """Indexes of the servers to use now (dead ones whose time is up are probed again)."""
        if not self._dead:
            return list(range(len(self.servers)))
        now = self.clock()
        return [i for i in range(len(self.servers)) if self._dead.get(i, (0.0, ""))[0] <= now]

    def mark_dead(self, server: int, why: str) -> None:
        with self._lock:
            self._dead[server] = (self.clock() + self.dead_timeout, why)
        limited.warning(
            f"memcached-dead-{self.names[server]}",
            "tsot: memcached %s failed (%s); skipped for %.1f s",
            self.names[server],
            why,
            self.dead_timeout,
        )

    def mark_alive(self, server: int) -> None:
        if server in self._dead:
            with self._lock:
                self._dead.pop(server, None)

    def is_dead(self, server: int) -> bool:
        entry = self._dead.get(server)
        return entry is not None and entry[0] > self.clock()

    def skipped(self, server: int, failures: dict[int, tuple[BaseException, bool]]) -> bool:
        """True, with the failure noted (nothing sent), if a step must skip ``server``."""
        if self._dead and self.is_dead(server):
            failures[server] = (self.dead_error(server), False)
            return True
        return False

    def settle(
        self, out: dict[int, T], failures: dict[int, tuple[BaseException, bool]]
    ) -> dict[int, T]:
        """A step's end in both transports: the servers that answered are alive; StepFailed
        names those that did not; else ``out``, every server's replies."""
        if self._dead:
            for s in out:
                self.mark_alive(s)
        if failures:
            raise StepFailed(failures)
        return out

    def dead_error(self, server: int) -> BackendUnavailable:
        _, why = self._dead.get(server, (0.0, "unknown"))
        return BackendUnavailable(
            f"memcached {self.names[server]} is skipped for up to {self.dead_timeout:g} s "
            f"(dead_timeout) after failing: {why}"
        )

    # -- routing -----------------------------------------------------------------------------
    def route(self, key: bytes, live: list[int]) -> int:
        """The server for ``key`` among ``live`` (rendezvous hashing, BLAKE2b-64 scores)."""
        if len(live) == 1:
            return live[0]
        if not live:
            raise self.no_server()
        best, best_score = live[0], b""
        for i in live:
            score = hashlib.blake2b(key, digest_size=8, salt=self._salts[i]).digest()
            if score > best_score:
                best, best_score = i, score
        return best

    def no_server(self) -> BackendUnavailable:
        if len(self.servers) == 1:
            return self.dead_error(0)
        return BackendUnavailable(
            f"every memcached server ({', '.join(self.names)}) is skipped after failing; "
            f"retried after dead_timeout ({self.dead_timeout:g} s)"
        )


# -- failures: one translation, one retry policy for both drivers ----------------------------


class StaleConnection(ConnectionResetError):
    """The request was never written: the connection was found closed (or holding bytes
    nobody asked for) before it, or the request waited unwritten behind a failed one. The
    server did not run it, so any operation may retry."""


class StepFailed(Exception):
    """Some servers of a step failed: ``server -> (exception, any byte of the request sent)``."""

    def __init__(self, failures: dict[int, tuple[BaseException, bool]]) -> None:
        super().__init__(failures)
        self.failures = failures


def translate(name: str, exc: BaseException, timeout: float | None) -> Exception:
    """The tsot error for a driver or socket error on server ``name`` (chained by the caller)."""
    if isinstance(exc, TsotError):
        return exc
    if isinstance(exc, TimeoutError):
        return BackendUnavailable(f"memcached {name} did not answer within {timeout:g} s")
    return BackendUnavailable(f"cannot talk to memcached {name}: {type(exc).__name__}: {exc}")


def unknown_outcome(name: str, error: Exception) -> OutcomeUnknown:
    """The error of a request that is not idempotent and may have run: it is never re-sent."""
    return OutcomeUnknown(
        f"{error}; the request was sent, so its outcome is unknown (it may have been applied): "
        "incr, add and compare-and-swap are never sent twice or to another server"
    )


class Policy:
    """What a driver does after a failed step: retry, fail over to other servers, or raise.

    - A tsot error (server skipped, pool exhausted) is final.
    - A request that is not idempotent (``incr``, ``add``, compare-and-swap) and may have
      reached the server (any byte written) is never re-sent nor failed over: the caller gets
      BackendUnavailable saying the outcome is unknown (at most once).
    - A timeout is never retried on its server: the server is marked dead and an idempotent
      routed operation runs again on the remaining servers (each server costs one timeout
      at most per call, and then one per ``dead_timeout``).
    - A broken connection is retried ``retries`` times on a new one; then the server is
      marked dead and an idempotent routed operation runs again on the remaining servers.
    """

    __slots__ = ("cluster", "retries", "timeout")

    def __init__(self, cluster: Cluster, retries: int, timeout: float | None) -> None:
        self.cluster = cluster
        self.retries = retries
        self.timeout = timeout

    def retried(
        self, make: Callable[[], Generator[S, R, T]], idempotent: bool, routed: bool, attempt: int
    ) -> Generator[S, R, T]:
        """The operation ``make()`` builds, made again after each failed step as ``again``
        allows (its StepFailed is thrown in by the driver): the one retry loop of both."""
        while True:
            try:
                return (yield from make())
            except StepFailed as failed:
                self.again(failed, attempt, idempotent, routed)
                attempt += 1

    def again(self, failed: StepFailed, attempt: int, idempotent: bool, routed: bool) -> bool:
        """True to run the operation again; otherwise raise the translated error."""
        cluster = self.cluster
        first: tuple[Exception, BaseException] | None = None
        final: tuple[Exception, BaseException] | None = None
        retry = True
        for server, (exc, sent) in failed.failures.items():
            name = cluster.names[server]
            error = translate(name, exc, self.timeout)
            if first is None:
                first = (error, exc)
            if error is exc:  # a tsot error (dead server, pool exhausted): final
                retry = False
                continue
            timeout = isinstance(exc, TimeoutError)
            if timeout or attempt >= self.retries:
                cluster.mark_dead(server, str(error))
                retry = retry and routed and bool(cluster.live())
            if sent and not idempotent and final is None:
                final = (unknown_outcome(name, error), exc)
        if first is None:  # pragma: no cover - StepFailed always names a server
            raise BackendUnavailable("memcached step failed")
        if final is None and retry and attempt < self.retries + len(cluster.servers):
            return True
        error, cause = final or first
        if error is cause:
            raise error
        raise error from cause
