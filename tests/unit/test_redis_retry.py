"""The Redis retry policy, free of I/O: idempotency classes and what follows a failed attempt."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)
from redis.sentinel import MasterNotFoundError

from tsot.backends.redis import commands as ops
from tsot.backends.redis import retry
from tsot.backends.redis.transport_sync import chunks


@pytest.mark.parametrize(
    ("cmd", "cls"),
    [
        (("GET", b"k"), retry.Class.IDEMPOTENT),
        ((b"MGET", b"a", b"b"), retry.Class.IDEMPOTENT),
        (("SET", b"k", b"v"), retry.Class.IDEMPOTENT),
        (("SET", b"k", b"v", "PX", 100), retry.Class.IDEMPOTENT),
        (("SET", b"k", b"v", "NX"), retry.Class.AT_MOST_ONCE),
        (("SET", b"k", b"v", "NX", "PX", 5), retry.Class.AT_MOST_ONCE),
        (("set", b"k", b"v", b"get"), retry.Class.AT_MOST_ONCE),
        # replace: XX never creates a key, so a resent one finds what the first one found
        (("SET", b"k", b"v", "XX"), retry.Class.IDEMPOTENT),
        (("SET", b"k", b"v", "XX", "PX", 5), retry.Class.IDEMPOTENT),
        (("SET", b"k", b"v", b"xx", b"GET"), retry.Class.AT_MOST_ONCE),
        (ops.set_cmd(b"k", b"v", 5, xx=True), retry.Class.IDEMPOTENT),
        (ops.set_cmd(b"k", b"v", 5, nx=True), retry.Class.AT_MOST_ONCE),
        (("SET", b"NX", b"NX"), retry.Class.IDEMPOTENT),  # a key or value named NX is data
        (("UNLINK", b"k"), retry.Class.IDEMPOTENT),
        (("PEXPIRE", b"k", 5), retry.Class.IDEMPOTENT),
        (("INCRBY", b"k", 1), retry.Class.AT_MOST_ONCE),
        (("EVALSHA", ops.INCR_SHA, 1, b"k", "1", b"1"), retry.Class.AT_MOST_ONCE),
        (("EVAL", b"return 1", 0), retry.Class.AT_MOST_ONCE),
        (("LPUSH", b"k", b"v"), retry.Class.AT_MOST_ONCE),  # unknown: at most once
    ],
)
def test_idempotency_classes(cmd: tuple[object, ...], cls: retry.Class) -> None:
    assert retry.classify(cmd) is cls


GET = [("GET", b"k")]
INCR = [("INCRBY", b"k", 1)]


def test_what_follows_a_failed_attempt() -> None:
    lost = ConnectionError("Connection closed by server.")
    assert retry.after(lost, GET, sent=True) is None  # idempotent: again
    assert retry.after(lost, INCR, sent=False) is None  # never sent: again
    unknown = retry.after(lost, INCR, sent=True)
    assert isinstance(unknown, retry.LostReply)
    assert "INCRBY" in str(unknown) and "outcome is unknown" in str(unknown)
    assert "b'k'" not in str(unknown)  # names commands, never keys or values
    assert retry.after(lost, [*GET, *INCR], sent=True) is not None  # one at-most-once: the batch
    timeout = TimeoutError("Timeout reading from x")
    assert retry.after(timeout, GET, sent=True) is timeout  # never retried
    assert isinstance(retry.after(timeout, INCR, sent=True), retry.LostReply)
    for final in (AuthenticationError("no"), MasterNotFoundError("none")):
        assert retry.after(final, GET, sent=False) is final
    for refusal in (
        ReadOnlyError("READONLY"),
        TryAgainError("TRYAGAIN"),
        ConnectionError(retry.DEMOTED),
    ):
        assert retry.after(refusal, INCR, sent=True) is None  # proves it did not run
    reply = ResponseError("ERR x")
    assert retry.after(reply, GET, sent=True) is reply


def test_resend_after_refusal_needs_every_at_most_once_command_refused() -> None:
    ro = ReadOnlyError("READONLY")
    assert retry.resend_after_refusal([*GET, *INCR], [b"v", ro])
    assert not retry.resend_after_refusal([*INCR, *INCR], [5, ro])  # the first one ran
    assert not retry.resend_after_refusal(GET, [b"v"])


def test_the_retry_loop_raises_error_replies_and_settles() -> None:
    steps = retry.retries(GET, ConnectionError("reset"), True, iter([0.1, 0.2]))
    assert next(steps) == 0.1
    with pytest.raises(NoScriptError) as info:
        steps.send(([NoScriptError("NOSCRIPT")], None, True))
    assert info.type is NoScriptError  # an error reply of a retry raises, never a value
    steps = retry.retries(GET, ConnectionError("reset"), True, iter([0.1]))
    next(steps)
    with pytest.raises(ConnectionError) as lost:
        steps.send(([], ConnectionError("again"), True))  # no delay left
    assert retry.settled(lost.value)
    steps = retry.retries(INCR, ConnectionError("reset"), True, iter([0.1]))
    with pytest.raises(retry.LostReply):
        next(steps)


def test_batches_are_cut_into_bounded_runs() -> None:
    cmds = [("SET", b"k", b"v", "PX", 1)] * 5
    assert [len(run) for run in chunks(cmds, limit=10)] == [2, 2, 1]
    assert [len(run) for run in chunks([("MGET", *[b"k"] * 30)], limit=10)] == [1]
    groups = ops.slot_groups([b"k%d" % i for i in range(25_001)], cluster=False)
    assert [len(g) for g in groups] == [10_000, 10_000, 5_001]
    assert len(ops.set_many_cmds([(b"k", b"v")] * 20_001, None, cluster=False)) == 3
