"""The ``tsot`` commands (stats, ping, get, ttl, keys, clear), written once for every front end.

``python -m tsot URL ...`` (``main`` below), ``manage.py tsot`` (tsot_django) and ``flask tsot``
(tsot_flask) parse their own arguments, wrap their storage in a ``Surface`` and call ``run``,
which writes the output and returns the exit code (``Exit``). docs/cli.md is the reference.
"""

from __future__ import annotations

import argparse
import enum
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from .config import parse_url
from .errors import (
    BackendUnavailable,
    ConfigurationError,
    InvalidKey,
    NotSupportedError,
    TsotError,
)
from .failopen import unguarded
from .keys import KeySpace, shown
from .secrets import LOCAL_SCHEMES
from .storage import Storage


class Exit(enum.IntEnum):
    """The exit codes every front end returns (scripts may rely on them)."""

    OK = 0
    MISS = 1  # get/ttl: the key does not exist
    USAGE = 2  # bad arguments, URL or option; clear without --yes when stdin is not a terminal
    UNREACHABLE = 3  # the backend cannot be reached (BackendUnavailable)
    UNSUPPORTED = 4  # the backend cannot do it (keys on memcached)
    DECLINED = 5  # clear: the confirmation was answered no
    ERROR = 6  # any other tsot error (a value of the wrong type, a refused write, ...)


@dataclass
class Surface:
    """What the commands run on: a Storage, plus how a front end names keys.

    ``make_key`` turns the key a user typed into the Storage's key (Django adds KEY_PREFIX and
    VERSION); ``user_key`` turns a listed Storage key back (None: not one of this cache's keys).
    ``pattern`` turns a ``keys`` pattern into a Storage pattern.
    """

    storage: Storage
    make_key: Callable[[str], str] = str
    user_key: Callable[[str], str | None] = str
    pattern: Callable[[str], str] = str
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.storage.url  # credentials masked


@dataclass
class Request:
    """One command and its arguments, as every front end parses them."""

    command: str
    key: str | None = None
    pattern: str = "*"
    limit: int | None = None
    yes: bool = False
    json: bool = False


class Writer(Protocol):
    """A text stream (``sys.stdout``, Django's OutputWrapper, ...)."""

    def write(self, text: str, /) -> Any: ...


class Output:
    """Writes a command's result: plain lines, or one JSON object with ``--json``.

    Colour only when the stream is a terminal (and ``NO_COLOR`` is not set).
    """

    def __init__(self, out: Writer, json_mode: bool, color: bool | None = None) -> None:
        self.out = out
        self.json = json_mode
        self.tty = is_tty(out)
        self.color = self.tty and "NO_COLOR" not in os.environ if color is None else color

    def line(self, text: str, style: str = "") -> None:
        if not self.json:
            codes = {"ok": "32", "warn": "33", "err": "31", "dim": "2"}
            if self.color and style in codes:
                text = f"\033[{codes[style]}m{text}\033[0m"
            self.out.write(text + "\n")

    def data(self, obj: dict[str, Any]) -> None:
        if self.json:
            self.out.write(json.dumps(obj, default=repr, sort_keys=False) + "\n")


def is_tty(stream: object) -> bool:
    """Whether ``stream`` is a terminal (False for anything that cannot tell)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


@dataclass
class Outcome:
    """The exit code and, when it is not OK, the message the front end shows."""

    code: Exit
    message: str = ""


Confirm = Callable[[str], bool | None]
"""Asks a yes/no question; None when it cannot ask (stdin is not a terminal)."""


def ask(prompt: str, stdin: TextIO | None = None, stderr: TextIO | None = None) -> bool | None:
    """The terminal prompt ``clear`` uses: True for y/yes; None when stdin is not a terminal."""
    stdin = stdin if stdin is not None else sys.stdin
    stderr = stderr if stderr is not None else sys.stderr
    if not is_tty(stdin):
        return None  # never read a pipe or a file as consent
    stderr.write(prompt + " [y/N] ")
    stderr.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def run(surface: Surface, req: Request, out: Output, confirm: Confirm = ask) -> Outcome:
    """Run one command; write its result to ``out``; return the exit code and error message.

    With ``--json`` a failure writes ``{"ok": false, "exit": code, "error": message}`` too.
    """
    try:
        outcome = _COMMANDS[req.command](surface, req, out, confirm)
    except (ConfigurationError, InvalidKey) as exc:
        outcome = Outcome(Exit.USAGE, str(exc))
    except BackendUnavailable as exc:
        outcome = Outcome(Exit.UNREACHABLE, str(exc))
    except NotSupportedError as exc:
        outcome = Outcome(Exit.UNSUPPORTED, str(exc))
    except TsotError as exc:
        outcome = Outcome(Exit.ERROR, f"{type(exc).__name__}: {exc}")
    if outcome.code is not Exit.OK:
        out.data(
            {
                "ok": False,
                "command": req.command,
                "exit": int(outcome.code),
                "error": outcome.message,
            }
        )
    return outcome


# -- the commands --------------------------------------------------------------------------------


def _stats(s: Surface, req: Request, out: Output, confirm: Confirm) -> Outcome:
    stats = s.storage.stats()
    out.data({"ok": True, "command": "stats", **s.extra, "stats": stats})
    width = max(len(k) for k in stats)
    for name, value in stats.items():
        shown_value = "n/a" if value is None else value
        out.line(f"{name:<{width}}  {shown_value}", "dim" if value is None else "")
    return Outcome(Exit.OK)


def _ping(s: Surface, req: Request, out: Output, confirm: Confirm) -> Outcome:
    """One read round trip to the backend itself, past any fail_open circuit breaker."""
    backend = unguarded(s.storage.backend)  # fail_open would answer an outage with a miss
    probe = KeySpace(s.storage.namespace).make("tsot-cli-ping")
    start = time.perf_counter()
    backend.exists(probe)
    ms = round((time.perf_counter() - start) * 1000, 3)
    out.data({"ok": True, "command": "ping", **s.extra, "url": s.url, "ms": ms})
    out.line(f"PONG {s.url} {ms} ms", "ok")
    return Outcome(Exit.OK)


def _missing(req: Request) -> Outcome:
    return Outcome(Exit.MISS, f"key {shown(req.key)} not found")


_ABSENT = object()


def _get(s: Surface, req: Request, out: Output, confirm: Confirm) -> Outcome:
    assert req.key is not None
    key = s.make_key(req.key)
    value = s.storage.load(key, _ABSENT)
    if value is _ABSENT:
        if s.storage.exists(key):
            return Outcome(
                Exit.ERROR,
                f"key {shown(req.key)} exists but its value was not decoded: a pickle not "
                "signed with this storage's secret (python -m tsot: --secret-env), or a corrupt "
                "value",
            )
        return _missing(req)
    out.data(
        {
            "ok": True,
            "command": "get",
            "key": req.key,
            "type": type(value).__name__,
            "value": value if _jsonable(value) else repr(value),
        }
    )
    out.line(value if isinstance(value, str) and _printable(value, out) else repr(value))
    return Outcome(Exit.OK)


def _printable(text: str, out: Output) -> bool:
    """Whether a stored str may go to the output as it is: on a terminal, one holding control
    characters (escape sequences a writer of the store could plant) is shown as its repr."""
    return not out.tty or all(c.isprintable() or c in "\n\t" for c in text)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _ttl(s: Surface, req: Request, out: Output, confirm: Confirm) -> Outcome:
    assert req.key is not None
    seconds = s.storage.ttl(s.make_key(req.key))
    if seconds is None:
        return _missing(req)
    forever = seconds == math.inf
    out.data(
        {
            "ok": True,
            "command": "ttl",
            "key": req.key,
            "ttl": None if forever else seconds,
            "expires": not forever,
        }
    )
    out.line("never expires" if forever else f"{seconds:g}")
    return Outcome(Exit.OK)


def _iter_keys(s: Surface, pattern: str) -> Iterator[str]:
    for key in s.storage.iter_keys(s.pattern(pattern)):
        user = s.user_key(key)
        if user is not None:
            yield user


def _keys(s: Surface, req: Request, out: Output, confirm: Confirm) -> Outcome:
    found: list[str] = []
    for key in _iter_keys(s, req.pattern):
        if req.limit is not None and len(found) >= req.limit:
            break
        found.append(key)
        out.line(key if _printable(key, out) else repr(key))  # streamed, as they are scanned
    out.data(
        {"ok": True, "command": "keys", "pattern": req.pattern, "count": len(found), "keys": found}
    )
    return Outcome(Exit.OK)


def _clear(s: Surface, req: Request, out: Output, confirm: Confirm) -> Outcome:
    ns = s.storage.namespace
    what = f"namespace {ns!r}" if ns else "EVERY key (the namespace is empty)"
    where = f"{what} of {s.label or s.url}"
    if not req.yes:
        answer = confirm(f"Remove {where}?")
        if answer is None:
            return Outcome(
                Exit.USAGE, f"refusing to clear {where} without --yes: stdin is not a terminal"
            )
        if not answer:
            return Outcome(Exit.DECLINED, "clear declined; nothing was removed")
    s.storage.clear()
    out.data({"ok": True, "command": "clear", **s.extra, "url": s.url, "namespace": ns})
    out.line(f"cleared {where}", "ok")
    return Outcome(Exit.OK)


_COMMANDS: dict[str, Callable[[Surface, Request, Output, Confirm], Outcome]] = {
    "stats": _stats,
    "ping": _ping,
    "get": _get,
    "ttl": _ttl,
    "keys": _keys,
    "clear": _clear,
}


# -- python -m tsot ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands and options shared by ``python -m tsot`` and ``manage.py tsot``."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    # --json after the command too (the subcommand's default must not undo the main one's)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    command("stats", "hits, misses, keys and the backend's other counters")
    command("ping", "one round trip to the backend (exit 3 if unreachable)")
    command("get", "print a value (exit 1 if absent)").add_argument("key")
    command("ttl", "seconds left (exit 1 if absent)").add_argument("key")
    keys = command("keys", "list keys matching a glob pattern (not on memcached)")
    keys.add_argument("pattern", nargs="?", default="*")
    keys.add_argument("--limit", type=int, default=None, help="stop after N keys")
    clear = command("clear", "remove every key of the namespace")
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def request_of(ns: argparse.Namespace) -> Request:
    return Request(
        command=ns.command,
        key=getattr(ns, "key", None),
        pattern=getattr(ns, "pattern", "*"),
        limit=getattr(ns, "limit", None),
        yes=getattr(ns, "yes", False),
        json=ns.json,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tsot",
        description="Inspect a tsot storage. Exit codes: 0 ok, 1 not found, 2 usage, "
        "3 unreachable, 4 not supported, 5 declined, 6 other error.",
    )
    p.add_argument("url", help="storage URL, options in its query (?namespace=app)")
    p.add_argument(
        "--secret-env",
        metavar="VAR",
        help="read the signing secret from this environment variable (never from the "
        "command line, where other users could see it)",
    )
    add_arguments(p)
    return p


def _read_options(url: str, secret_env: str | None) -> dict[str, Any]:
    """Options that keep the command safe: a pickle from a server is decoded only when signed.

    Without ``--secret-env``, a network storage is read with the JSON serializer alone (str,
    bytes, int and float are never pickled, so they still show) and no unsigned-pickle warning.
    """
    if secret_env:
        if secret_env not in os.environ:
            raise ConfigurationError(f"--secret-env: ${secret_env} is not set")
        return {"secret": os.environ[secret_env]}
    if parse_url(url).scheme in LOCAL_SCHEMES:
        return {}
    return {"secret": None, "serializer": "json", "accept": ("json",)}


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """``python -m tsot URL COMMAND ...``; returns the exit code."""
    out_stream = stdout if stdout is not None else sys.stdout
    err_stream = stderr if stderr is not None else sys.stderr
    ns = parser().parse_args(argv)
    req = request_of(ns)
    out = Output(out_stream, req.json)
    try:
        storage = Storage.from_url(ns.url, **_read_options(ns.url, ns.secret_env))
    except TsotError as exc:  # a bad URL or option; its message masks the password
        outcome = Outcome(Exit.USAGE, str(exc))
        out.data({"ok": False, "command": req.command, "exit": 2, "error": outcome.message})
    else:
        with storage:
            outcome = run(Surface(storage), req, out)
    if outcome.code is not Exit.OK:
        err = Output(err_stream, False)
        err.line(f"tsot: {outcome.message}", "err")
    return int(outcome.code)
