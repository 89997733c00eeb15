"""``python -m tsot URL ...`` run as a real process against a real Redis server."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.servers.proc import free_port
from tsot import Storage

pytestmark = pytest.mark.server

SECRET = "a-cli-test-secret-of-32-bytes!!!"


def tsot(
    *args: str, stdin: Any = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tsot", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def ns_url(redis_url: str) -> str:
    return f"{redis_url}?namespace=cli-{uuid.uuid4().hex}"


def writer(url: str, **options: Any) -> Storage:
    return Storage.from_url(url, secret=SECRET, **options)


def test_get_prints_the_value_and_exits_0(ns_url: str) -> None:
    store = writer(ns_url)
    store.store("greeting", "hello\nworld")
    store.store("n", 42)
    done = tsot(ns_url, "get", "greeting")
    assert (done.returncode, done.stdout) == (0, "hello\nworld\n")
    as_json = json.loads(tsot(ns_url, "get", "n", "--json").stdout)
    assert as_json == {"ok": True, "command": "get", "key": "n", "type": "int", "value": 42}


def test_get_of_a_missing_key_exits_1(ns_url: str) -> None:
    done = tsot(ns_url, "get", "absent")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "key 'absent' not found" in done.stderr
    as_json = json.loads(tsot(ns_url, "--json", "get", "absent").stdout)
    assert as_json == {
        "ok": False,
        "command": "get",
        "exit": 1,
        "error": "key 'absent' not found",
    }


def test_unsigned_pickles_are_never_unpickled(ns_url: str, tmp_path: Path) -> None:
    """A pickle planted in the server would run code if unpickled: without the secret the
    command refuses to decode it, and says the key exists (exit 6, not a miss)."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    store = Storage.from_url(ns_url, secret=None)
    store.store("planted", Payload())  # an unsigned pickle, as an attacker would write it
    assert not marker.exists()
    done = tsot(ns_url, "get", "planted")
    assert done.returncode == 6, done.stderr
    assert "exists but its value was not decoded" in done.stderr
    assert not marker.exists()
    # with the secret, a signed value shows; the unsigned one still is not unpickled
    writer(ns_url).store("signed", {"a": [1, 2]})
    env = {"TSOT_TEST_SECRET": SECRET}
    signed = tsot(ns_url, "--secret-env", "TSOT_TEST_SECRET", "get", "signed", env=env)
    assert (signed.returncode, signed.stdout) == (0, "{'a': [1, 2]}\n")
    planted = tsot(ns_url, "--secret-env", "TSOT_TEST_SECRET", "get", "planted", env=env)
    assert planted.returncode == 6
    assert not marker.exists()


def test_ttl(ns_url: str) -> None:
    store = writer(ns_url)
    store.store("short", "x", ttl=100)
    store.store("forever", "x", ttl=None)
    seconds = float(tsot(ns_url, "ttl", "short").stdout)
    assert 0 < seconds <= 100
    assert tsot(ns_url, "ttl", "forever").stdout == "never expires\n"
    as_json = json.loads(tsot(ns_url, "ttl", "forever", "--json").stdout)
    assert (as_json["ttl"], as_json["expires"]) == (None, False)
    assert tsot(ns_url, "ttl", "absent").returncode == 1


def test_stats_and_ping(ns_url: str) -> None:
    writer(ns_url).store("k", "v")
    stats = json.loads(tsot(ns_url, "stats", "--json").stdout)
    assert stats["ok"] is True
    assert stats["stats"]["keys"] >= 1
    assert isinstance(stats["stats"]["hits"], int)
    text = tsot(ns_url, "stats")
    assert text.returncode == 0
    assert "\033[" not in text.stdout  # no colour when stdout is not a terminal
    ping = json.loads(tsot(ns_url, "ping", "--json").stdout)
    assert ping["ok"] is True
    assert ping["ms"] >= 0


def test_unreachable_exits_3_and_never_shows_the_password() -> None:
    url = f"redis://user:s3cret-pw@127.0.0.1:{free_port()}/0?socket_connect_timeout=2"
    for args in (("ping",), ("stats",), ("get", "k"), ("--json", "ping")):
        done = tsot(url, *args)
        assert done.returncode == 3, (args, done.stderr)
        assert "s3cret-pw" not in done.stdout + done.stderr
        assert "user:***@" in done.stdout + done.stderr


def test_ping_goes_past_fail_open() -> None:
    """fail_open answers an outage with a miss: ping still reports the server unreachable."""
    url = f"redis://127.0.0.1:{free_port()}/0?fail_open=true&socket_connect_timeout=2"
    assert tsot(url, "ping").returncode == 3


def test_usage_errors_exit_2(redis_url: str) -> None:
    assert tsot(redis_url, "frobnicate").returncode == 2
    bad = tsot(f"{redis_url}?colour=blue", "stats")
    assert bad.returncode == 2
    assert "unknown option 'colour'" in bad.stderr
    assert tsot("nosuchscheme://x", "stats").returncode == 2
    missing = tsot(redis_url, "--secret-env", "TSOT_TEST_UNSET_VAR", "stats")
    assert missing.returncode == 2
    assert "$TSOT_TEST_UNSET_VAR is not set" in missing.stderr


def test_clear_needs_yes_when_stdin_is_not_a_terminal(ns_url: str, redis_url: str) -> None:
    store = writer(ns_url)
    other = writer(f"{redis_url}?namespace=other-{uuid.uuid4().hex}")
    store.store("k", "v")
    other.store("k", "v")
    refused = tsot(ns_url, "clear", stdin=subprocess.PIPE)  # a pipe is never consent
    assert refused.returncode == 2
    assert "without --yes" in refused.stderr
    assert store.load("k") == "v"
    done = tsot(ns_url, "clear", "--yes", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["namespace"] == store.namespace
    assert store.load("k") is None
    assert other.load("k") == "v"  # another namespace is untouched


def _answer(url: str, answer: bytes) -> tuple[int, bytes]:
    """Run ``clear`` with a terminal as stdin and type ``answer`` at its prompt."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tsot", url, "clear"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.write(leader, answer)
        _out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    return proc.returncode, err


def test_clear_asks_on_a_terminal(ns_url: str) -> None:
    store = writer(ns_url)
    store.store("k", "v")
    code, err = _answer(ns_url, b"n\n")
    assert code == 5
    assert b"Remove namespace" in err
    assert store.load("k") == "v"
    code, _ = _answer(ns_url, b"y\n")
    assert code == 0
    assert store.load("k") is None


def _on_terminal(url: str, env: dict[str, str], *args: str) -> bytes:
    """``ping`` (or ``args``) with a terminal as stdout; what it printed."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tsot", url, *(args or ("ping",))],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env={**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, **env},
        )
        assert proc.wait(timeout=60) == 0
        return os.read(leader, 65536)
    finally:
        os.close(leader)
        os.close(follower)


def test_colour_only_on_a_terminal(redis_url: str) -> None:
    assert b"\033[32mPONG" in _on_terminal(redis_url, {})
    assert b"\033[" not in _on_terminal(redis_url, {"NO_COLOR": "1"})


def test_keys_of_the_namespace_only(ns_url: str, redis_url: str) -> None:
    store = writer(ns_url)
    store.store_many({"user:1": "a", "user:2": "b", "item:1": "c"})
    writer(f"{redis_url}?namespace=elsewhere-{uuid.uuid4().hex}").store("user:3", "x")
    done = tsot(ns_url, "keys", "user:*")
    assert done.returncode == 0
    assert sorted(done.stdout.split()) == ["user:1", "user:2"]
    assert sorted(tsot(ns_url, "keys").stdout.split()) == ["item:1", "user:1", "user:2"]
    limited = json.loads(tsot(ns_url, "keys", "--limit", "2", "--json").stdout)
    assert limited["count"] == 2
    assert set(limited["keys"]) <= {"item:1", "user:1", "user:2"}


def test_keys_on_memcached_is_not_supported() -> None:
    """memcached cannot list keys: exit 4 and a message naming the alternatives (no server is
    needed to say so)."""
    done = tsot(f"memcached://127.0.0.1:{free_port()}", "keys")
    assert done.returncode == 4
    assert "memcached cannot list its keys" in done.stderr
    assert (
        json.loads(tsot(f"memcached://127.0.0.1:{free_port()}", "keys", "--json").stdout)["exit"]
        == 4
    )


def test_control_characters_never_reach_a_terminal(ns_url: str) -> None:
    """A value (or key) planted with escape sequences is shown as its repr on a terminal."""
    store = writer(ns_url)
    store.store("evil\x1b[2J", "\x1b]0;owned\x07text")
    shown = _on_terminal(ns_url, {"NO_COLOR": "1"}, "get", "evil\x1b[2J")
    assert b"\x1b" not in shown
    assert b"'\\x1b]0;owned\\x07text'" in shown
    assert b"\x1b" not in _on_terminal(ns_url, {"NO_COLOR": "1"}, "keys")
    assert tsot(ns_url, "get", "evil\x1b[2J").stdout == "\x1b]0;owned\x07text\n"  # a pipe: as is
