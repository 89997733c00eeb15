"""The Redis retry policy, written once for the sync and asyncio transports (free of I/O).

Each command has an idempotency class (``idempotent``). After a failed attempt, ``after``
decides what happens next from the error, the commands and whether any byte of them may have
reached a server:

- a timeout is never retried, on any topology: the server may be stalled mid-command, and a
  retry would double the wait (for an at-most-once command the caller is told the outcome is
  unknown);
- a wrong password, an exhausted pool and "no master found" (every Sentinel asked, within one
  ``socket_timeout``) are not retried either: nothing would change a moment later;
- an error reply that proves the command did not run (``READONLY`` from a demoted primary,
  ``TRYAGAIN``, ``CLUSTERDOWN``, ``LOADING``) may be retried, whatever the command;
- a lost connection before anything was sent may be retried; after, only when every command is
  idempotent. Otherwise the caller gets ``LostReply`` (``tsot.OutcomeUnknown``): the server
  may or may not have applied it, and sending it again could apply it twice (an ``incr``
  counted twice, an ``add`` that finds its own value and reports False).

Every reply list, of a first attempt or a retry, single command or batch, goes through
``checked``, which raises the first error reply: an error is never returned as a value.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Iterator, Sequence
from typing import Any, Final

from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFound
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    MaxConnectionsError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)
from redis.sentinel import MasterNotFoundError

from .pipeline import NotSent
from .resp import spellings

Cmd = Sequence[Any]
MASTER_NOT_FOUND: Final = (MasterNotFoundError, AsyncMasterNotFound)

# Commands whose second run changes nothing the first did not (and whose reply does not depend
# on whether they ran before). SET is idempotent only without NX and GET. SET XX (``replace``)
# is idempotent like SET: XX never creates a key, so a first run leaves the key present exactly
# when it was, and a resent one finds what the first found: the key there (stored again, OK as
# before) or gone (nil as before, or deleted in between: nothing is written back, the key is not
# resurrected). SET NX is not: a resent one finds the first one's value and answers nil.
_IDEMPOTENT = [
    "GET",
    "MGET",
    "SET",
    "MSET",
    "PSETEX",
    "SETEX",
    "DEL",
    "UNLINK",
    "EXISTS",
    "PTTL",
    "TTL",
    "PEXPIRE",
    "EXPIRE",
    "PEXPIREAT",
    "EXPIREAT",
    "PERSIST",
    "SCAN",
    "PING",
    "CLUSTER",
    "INFO",
    "DBSIZE",
    "TYPE",
    "STRLEN",
    "SELECT",
    "ASKING",
    "READONLY",
]
IDEMPOTENT: Final = spellings(_IDEMPOTENT)
_SET: Final = spellings(["SET"])
_CONDITIONS: Final = spellings(["NX", "GET"])

# Demoted primary (redis-py's Sentinel connection turns READONLY into this ConnectionError).
DEMOTED: Final = "The previous master is now a slave"


class Class(enum.Enum):
    """What sending a command twice may do."""

    IDEMPOTENT = "idempotent"  # GET, SET, SET XX, UNLINK, PEXPIRE...: the same state and reply
    AT_MOST_ONCE = "at-most-once"  # INCRBY, SET NX, scripts, anything unknown: never resent


def classify(cmd: Cmd) -> Class:
    """The idempotency class of one command (unknown commands are at-most-once)."""
    name = cmd[0]
    if name not in IDEMPOTENT:
        return Class.AT_MOST_ONCE
    if name in _SET and any(a in _CONDITIONS for a in cmd[3:] if isinstance(a, str | bytes)):
        return Class.AT_MOST_ONCE
    return Class.IDEMPOTENT


def idempotent(cmds: Sequence[Cmd]) -> bool:
    """Whether every command may be sent again after a lost reply."""
    return all(classify(c) is Class.IDEMPOTENT for c in cmds)


def command_names(cmds: Sequence[Cmd]) -> str:
    """The distinct command names of a batch, for messages (never arguments: keys, values)."""
    names = dict.fromkeys(
        (c[0].decode() if isinstance(c[0], bytes) else str(c[0])).upper() for c in cmds
    )
    return "/".join(names)


class LostReply(ConnectionError):
    """The connection was lost after a command that must not run twice was sent."""


def refused(exc: BaseException) -> bool:
    """An error reply (or its redis-py translation) that proves the command did not run."""
    if isinstance(exc, ReadOnlyError | TryAgainError | ClusterDownError | BusyLoadingError):
        return True
    return isinstance(exc, ConnectionError) and str(exc) == DEMOTED


def after(exc: BaseException, cmds: Sequence[Cmd], sent: bool) -> BaseException | None:
    """After an attempt of ``cmds`` failed with ``exc``: None to retry (if retries are left),
    else the error to raise. ``sent``: a byte of the commands may have reached a server."""
    if isinstance(exc, TimeoutError):
        return unknown(exc, cmds) if sent and not idempotent(cmds) else exc
    if isinstance(exc, (AuthenticationError, MaxConnectionsError, *MASTER_NOT_FOUND)):
        return exc
    if refused(exc) or isinstance(exc, NotSent):
        return None
    if isinstance(exc, ConnectionError):
        if not sent or idempotent(cmds):
            return None
        return unknown(exc, cmds)
    return exc


def connect_failure(exc: BaseException) -> bool:
    """redis-py's error for a connection that could not be opened (nothing was sent on it)."""
    text = str(exc)
    return (
        isinstance(exc, ConnectionError)
        and text.startswith("Error ")
        and (" connecting to " in text)
    )


Attempt = tuple[list[Any], BaseException | None, bool]
"""One attempt's result: (replies, None, sent) or ([], its error, whether a byte was sent)."""


def retries(
    cmds: Sequence[Cmd], error: BaseException, sent: bool, delays: Iterator[float]
) -> Generator[float, Attempt, list[Any]]:
    """The retry loop after a failed first attempt, free of I/O (the sync and asyncio
    transports drive it): yields the delay to wait before each new attempt and is sent that
    attempt's result; returns the checked replies, or raises the error for the caller."""
    while True:
        final = after(error, cmds, sent)
        if final is not None:
            raise settle(final, error)
        delay = next(delays, None)
        if delay is None:
            raise settle(error, error)
        replies, failed, sent = yield delay
        if failed is None:
            return checked(replies)
        error = failed


def unknown(exc: BaseException, cmds: Sequence[Cmd]) -> LostReply:
    """The error for a lost reply of commands that are not resent."""
    what = "no reply came in time" if isinstance(exc, TimeoutError) else "the connection was lost"
    return LostReply(
        f"{what} after {command_names(cmds)} was sent ({exc}); the outcome is unknown and it "
        "is not sent again"
    )


def settle(final: BaseException, cause: BaseException) -> BaseException:
    """Mark ``final`` as the policy's last word (``again`` raises it as it is), chained to the
    error it replaces."""
    final.tsot_settled = True  # type: ignore[attr-defined]
    if final is not cause:
        final.__cause__ = cause
    return final


def settled(exc: BaseException) -> bool:
    """Whether ``exc`` already went through the policy (nothing is retried twice)."""
    return getattr(exc, "tsot_settled", False) is True


def first_error(replies: Sequence[Any]) -> ResponseError | None:
    if len(replies) > 8 and not any(issubclass(t, ResponseError) for t in set(map(type, replies))):
        return None  # a batch without an error reply: its types gathered in one pass in C
    for reply in replies:
        if isinstance(reply, ResponseError):
            return reply
    return None


def checked(replies: list[Any]) -> list[Any]:
    """``replies`` if none is an error reply; else raise the first one."""
    error = first_error(replies)
    if error is not None:
        raise error
    return replies


def resend_after_refusal(cmds: Sequence[Cmd], replies: Sequence[Any]) -> bool:
    """Whether a batch whose replies include a refusal (READONLY, TRYAGAIN...) may be sent again
    whole: every command that must not run twice was refused, so none of them ran."""
    if not any(isinstance(r, RedisError) and refused(r) for r in replies):
        return False
    return all(
        classify(c) is Class.IDEMPOTENT or (isinstance(r, RedisError) and refused(r))
        for c, r in zip(cmds, replies, strict=True)
    )
