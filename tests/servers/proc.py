"""Start and stop real server processes on free loopback ports (helpers, not a plugin)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """A needed server cannot run: fail under CI=true, skip (with the reason) elsewhere."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def need_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (scripts/setup-system installs it)")
    assert path is not None
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except pytest.fail.Exception:
            raise
        except Exception:
            pass
        time.sleep(0.02)
    unavailable(f"{what} did not become ready within {timeout:.0f}s")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Server:
    """One server process we started; stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, argv: Sequence[str], port: int, log: Path, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.port = port
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 10.0) -> Server:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
            )
        wait_for(
            lambda: self._alive() and port_open(self.port),
            ready_timeout,
            f"{Path(self.argv[0]).name} on port {self.port}",
        )
        return self

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            unavailable(
                f"{self.argv[0]} exited with {self.proc.returncode}; log: "
                f"{self.log.read_text(errors='replace')[-2000:]}"
            )
        return True

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; always reaps the process."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
