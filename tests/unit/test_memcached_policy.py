"""The memcached retry policy, decision by decision (no I/O: it only reads what failed)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.helpers import FakeClock
from tsot import BackendUnavailable
from tsot.backends.memcached.cluster import Cluster, Policy, ServerSpec, StaleConnection, StepFailed
from tsot.backends.memcached.commands import Done, resume


def policy(servers: int = 2, retries: int = 1) -> tuple[Policy, Cluster]:
    cluster = Cluster(
        [ServerSpec(("127.0.0.1", 20000 + i)) for i in range(servers)], 10.0, FakeClock()
    )
    return Policy(cluster, retries, 0.5), cluster


def failed(exc: BaseException, sent: bool, server: int = 0) -> StepFailed:
    return StepFailed({server: (exc, sent)})


@pytest.mark.parametrize("exc", [ConnectionResetError("gone"), TimeoutError("late")])
def test_a_request_that_may_have_run_and_is_not_idempotent_is_never_sent_again(
    exc: BaseException,
) -> None:
    p, cluster = policy()
    with pytest.raises(BackendUnavailable, match="outcome is unknown") as raised:
        p.again(failed(exc, sent=True), 0, idempotent=False, routed=True)
    assert raised.value.__cause__ is exc
    # a timeout skips the server (one timeout per dead_timeout); a reset does not
    assert cluster.is_dead(0) is isinstance(exc, TimeoutError)


def test_a_request_never_written_may_be_retried_even_if_not_idempotent() -> None:
    p, cluster = policy()
    assert p.again(failed(StaleConnection("closed"), sent=False), 0, False, True) is True
    assert not cluster.is_dead(0)


def test_an_idempotent_request_is_retried_then_fails_over() -> None:
    p, cluster = policy(retries=1)
    reset = ConnectionResetError("gone")
    assert p.again(failed(reset, sent=True), 0, True, True) is True  # a new connection
    assert not cluster.is_dead(0)
    assert p.again(failed(reset, sent=True), 1, True, True) is True  # the other server
    assert cluster.is_dead(0)


def test_a_timeout_is_not_retried_on_its_server() -> None:
    p, cluster = policy(servers=1, retries=3)
    with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.5 s"):
        p.again(failed(TimeoutError("late"), sent=True), 0, True, True)
    assert cluster.is_dead(0)


def test_the_unknown_outcome_wins_over_other_servers_errors() -> None:
    p, _ = policy(servers=3)
    step = StepFailed(
        {
            1: (ConnectionRefusedError("refused"), False),
            2: (ConnectionResetError("gone"), True),
        }
    )
    with pytest.raises(BackendUnavailable, match="outcome is unknown"):
        p.again(step, 0, idempotent=False, routed=True)


def counting_op(made: list[int]) -> Generator[dict[int, list[bytes]], Any, str]:
    """An operation of two steps that records each time it is made."""
    made.append(len(made))
    first = yield {0: [b"mg a v\r\n"]}
    second = yield {0: [b"mg b v\r\n"]}
    return f"{first}+{second}"


def test_resume_drives_an_operation_to_its_value() -> None:
    made: list[int] = []
    op = counting_op(made)
    assert resume(op, None) == {0: [b"mg a v\r\n"]}
    assert resume(op, {0: []}) == {0: [b"mg b v\r\n"]}
    done = resume(op, {1: []})
    assert isinstance(done, Done) and done.value == "{0: []}+{1: []}"


def test_a_step_failure_thrown_into_retried_makes_the_operation_again() -> None:
    p, _ = policy(retries=1)
    made: list[int] = []
    op = p.retried(lambda: counting_op(made), idempotent=True, routed=True, attempt=0)
    assert resume(op, None) == {0: [b"mg a v\r\n"]}
    assert resume(op, {0: []}) == {0: [b"mg b v\r\n"]}
    # the second step failed: the whole operation starts again, on a new connection
    assert resume(op, failed(ConnectionResetError("gone"), sent=True)) == {0: [b"mg a v\r\n"]}
    assert made == [0, 1]
    assert resume(op, {0: []}) == {0: [b"mg b v\r\n"]}
    assert isinstance(resume(op, {0: []}), Done)


def test_retried_never_makes_again_an_operation_that_may_have_run() -> None:
    p, _ = policy()
    made: list[int] = []
    op = p.retried(lambda: counting_op(made), idempotent=False, routed=True, attempt=0)
    resume(op, None)
    with pytest.raises(BackendUnavailable, match="outcome is unknown"):
        resume(op, failed(ConnectionResetError("gone"), sent=True))
    assert made == [0]
