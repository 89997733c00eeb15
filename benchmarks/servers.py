"""The servers a run needs: redis-server and memcached on free loopback ports, stopped by PID.

Process handling is tests/servers/proc.py's; its ``unavailable()`` speaks pytest (skip/fail),
so this wrapper turns those outcomes into ``ServerUnavailable`` for a plain program.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers.proc import Server, free_port


class ServerUnavailable(Exception):
    """A server could not be started; the message says why."""


def _argv(kind: str, port: int, workdir: Path) -> list[str]:
    program = {"redis": "redis-server", "memcached": "memcached"}[kind]
    path = shutil.which(program)
    if path is None:
        raise ServerUnavailable(f"{program} is not installed (scripts/setup-system installs it)")
    if kind == "redis":
        # No persistence: a benchmark must not measure fork-and-save pauses.
        return [path, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    # one worker thread: with two on 2 vCPUs, a connection's round trip is 17 or 50 us depending
    # on which thread memcached gives it, which swamps every ratio (docs/backends/memcached.md)
    argv = [path, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "512", "-t", "1"]
    if os.geteuid() == 0:  # memcached refuses to run as root without a user to switch to
        argv += ["-u", "root"]
    return argv


@contextmanager
def running(kind: str, workdir: Path) -> Iterator[str]:
    """Start a ``kind`` server ("redis" or "memcached"), yield its ``host:port``, stop it."""
    port = free_port()
    server = Server(_argv(kind, port, workdir), port, workdir / f"{kind}.log")
    try:
        server.start()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        server.stop()
        raise ServerUnavailable(str(exc)) from None
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()
