"""Redis backend beyond the contract: URLs and options, pools, round trips, clear, errors."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.servers.proc import Server, wait_for
from tests.servers.redis import Cluster, start_single
from tsot import AsyncStorage, ConfigurationError, Storage, WrongType
from tsot.errors import BackendUnavailable, ValueTooLarge, WriteRefused

pytestmark = pytest.mark.server


def raw(server: Server, **kwargs: Any) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5, **kwargs)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server these tests may reconfigure (ACL users, statistics) without touching others."""
    sock = tmp_path_factory.mktemp("redis-sock") / "redis.sock"
    server = start_single(
        tmp_path_factory.mktemp("redis-own"), "--unixsocket", str(sock), "--unixsocketperm", "700"
    )
    server.sock = sock  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def own_url(own: Server) -> str:
    return f"redis://127.0.0.1:{own.port}/0"


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in client.info("commandstats").items()}


def calls_of(client: redis.Redis, action: Any) -> dict[str, int]:
    """The commands ``action`` made the server run (CONFIG RESETSTAT itself left out)."""
    client.config_resetstat()
    action()
    return {k: v for k, v in commandstats(client).items() if k not in ("config|resetstat", "info")}


# -- URLs and options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("redis://127.0.0.1:99999/0", {}, "bad port '99999'"),
        ("redis://127.0.0.1:6x/0", {}, "bad port '6x'"),
        ("redis://127.0.0.1:1/0?no_such=1", {}, "no_such"),
        ("redis://127.0.0.1:1/0?socket_timeout=soon", {}, "socket_timeout"),
        ("redis://127.0.0.1:1/0", {"socket_timeout": -1}, "socket_timeout"),
        ("redis://127.0.0.1:1/0?max_connections=0", {}, "max_connections"),
        ("redis://127.0.0.1:1/0?ssl_cert_reqs=maybe", {}, "ssl_cert_reqs"),
        ("redis://127.0.0.1:1/zero", {}, "bad database 'zero'"),
        ("redis://127.0.0.1:1/1?db=2", {}, "database 1 in its path and 2"),
        ("redis://h1:1,h2:2/0", {}, "names 2 hosts"),
        ("redis+cluster://127.0.0.1:1/3", {}, "only database 0"),
        ("redis+sentinel://127.0.0.1:1", {}, "needs the master name"),
        ("redis://127.0.0.1:1/0?ssl_ca_certs=/x.pem", {}, "'ssl_ca_certs' needs TLS"),
        ("redis://127.0.0.1:1/0?read_from_replicas=true", {}, "read_from_replicas"),
        ("unix://host/tmp/r.sock", {}, "unix:///absolute/path"),
        ("redis://127.0.0.1:1/0?password=x", {}, "cannot be given in a URL"),
    ],
)
def test_bad_urls_and_options(url: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Storage.from_url(url, **options)
    with pytest.raises(ConfigurationError, match=match):
        AsyncStorage.from_url(url, **options)


def test_defaults_have_timeouts_and_credentials_stay_hidden() -> None:
    from tsot.backends.redis import RedisBackend
    from tsot.config import parse_options, parse_url

    location = parse_url("redis://alice:pa55word@127.0.0.1:1/3")
    cfg = RedisBackend.config(location, parse_options({}, RedisBackend.OPTIONS, "test"))
    assert cfg.connection["socket_timeout"] == 2.0
    assert cfg.connection["socket_connect_timeout"] == 1.0
    assert cfg.db == 3 and cfg.connection["username"] == "alice"
    store = Storage.from_url("redis://alice:pa55word@127.0.0.1:1/3", retries=0)
    for text in (repr(store), repr(store.backend), repr(cfg), store.url):
        assert "pa55word" not in text
    with pytest.raises(BackendUnavailable) as info:
        store.load("k")
    assert "pa55word" not in str(info.value) and "127.0.0.1:1" in str(info.value)


def test_unix_socket_url_and_db(own: Server) -> None:
    sock = own.sock  # type: ignore[attr-defined]
    store = Storage.from_url(f"unix://{sock}?db=2", namespace="ux")
    store.store("k", "via socket")
    assert store.load("k") == "via socket"
    assert raw(own, db=2).exists(b"ux:k") == 1
    assert raw(own, db=0).exists(b"ux:k") == 0
    store.clear()


def test_acl_user_and_password(own: Server) -> None:
    admin = raw(own)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">s3cr3t!", "~app:*", "+@all")
    try:
        store = Storage.from_url(f"redis://app:s3cr3t%21@127.0.0.1:{own.port}/0", namespace="app")
        store.store("k", 1)
        assert store.incr("k") == 2
        assert admin.get(b"app:k") == b"2"
        # The ACL confines "app" to app:* keys: the server says so; it is up, so not "unavailable"
        other = Storage.from_url(f"redis://app:s3cr3t%21@127.0.0.1:{own.port}/0", namespace="x")
        with pytest.raises(WriteRefused, match="no permissions"):
            other.store("k", 1)
        wrong = Storage.from_url(f"redis://app:nope@127.0.0.1:{own.port}/0", retries=3)
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            wrong.load("k")
        assert time.monotonic() - started < 1  # a wrong password is not retried
        assert "nope" not in str(info.value)
    finally:
        admin.execute_command("ACL", "DELUSER", "app")


def test_replies_of_one_read_keep_their_places_and_errors(own: Server) -> None:
    """The sync transport takes the replies that came with one socket read straight from the
    hiredis reader: each stays in its place, an error reply is returned in place (the replies
    after it are theirs) and the connection stays in step; a reply that redis-py raises as a
    connection failure (WRONGPASS) raises and drops the connection, as read_response does."""
    import hiredis

    from tsot.backends.redis.transport_sync import _buffered, _read

    conn = redis.connection.Connection(
        host="127.0.0.1",
        port=own.port,
        socket_timeout=5,
        protocol=2,  # as tsot connects
    )
    if not redis.utils.HIREDIS_AVAILABLE:
        conn.disconnect()
        pytest.skip(
            f"redis-py {redis.__version__} does not use hiredis {hiredis.__version__} "
            "(it needs hiredis >= 3.2): every reply goes through read_response"
        )
    conn.connect()
    assert _buffered(conn) is not None  # else this tests nothing new
    cmds = [("SET", b"t:a", b"x"), *[("INCR", b"t:a"), ("GET", b"t:a")] * 300, ("PING",)]
    conn.send_packed_command([b"".join(hiredis.pack_command(c) for c in cmds)])
    replies = _read(conn, len(cmds))
    assert replies[0] == b"OK" and replies[-1] == b"PONG"
    for incr, get in zip(replies[1:-1:2], replies[2:-1:2], strict=True):
        assert isinstance(incr, redis.ResponseError) and "not an integer" in str(incr)
        assert get == b"x"
    conn.send_command("GET", b"t:a")
    assert conn.read_response() == b"x"  # still in step
    cmds = [("PING",), ("AUTH", b"no-such-user", b"pw"), ("PING",)]
    conn.send_packed_command([b"".join(hiredis.pack_command(c) for c in cmds)])
    with pytest.raises(redis.AuthenticationError):
        _read(conn, 3)
    assert conn._sock is None
    conn.disconnect()


# -- one round trip per operation ----------------------------------------------------------------


def test_each_operation_is_the_documented_command(own: Server, own_url: str) -> None:
    client = raw(own)
    store = Storage.from_url(own_url, namespace="rt")
    store.load("warm-up")  # the connection handshake is not part of an operation
    assert calls_of(client, lambda: store.add("a", 1, ttl=10)) == {"set": 1}
    assert calls_of(client, lambda: store.add("a", 2, ttl=10)) == {"set": 1}
    # replace is one SET XX, never EXISTS then SET: absent or present, one command
    assert calls_of(client, lambda: store.replace("absent", 1, ttl=10)) == {"set": 1}
    assert calls_of(client, lambda: store.replace("a", 3, ttl=10)) == {"set": 1}
    assert client.exists(b"rt:absent") == 0
    assert calls_of(client, lambda: store.store("b", "x", ttl=5)) == {"set": 1}
    assert calls_of(client, lambda: store.load("b")) == {"get": 1}
    assert calls_of(client, lambda: store.load_many([f"k{i}" for i in range(100)])) == {"mget": 1}
    assert calls_of(client, lambda: store.store_many({f"k{i}": i for i in range(100)})) == {
        "mset": 1
    }
    assert calls_of(client, lambda: store.store_many({f"k{i}": i for i in range(100)}, ttl=9)) == {
        "set": 100
    }
    assert calls_of(client, lambda: store.incr("n")) == {"incrby": 1}
    assert calls_of(client, lambda: store.ttl("b")) == {"pttl": 1}
    assert calls_of(client, lambda: store.expire("b", 60)) == {"pexpire": 1}
    assert calls_of(client, lambda: store.persist("b")) == {"persist": 1, "exists": 1}
    assert calls_of(client, lambda: store.delete_many(["a", "b", "zz"])) == {"unlink": 1}
    assert 8_000 <= client.pttl(b"rt:k1") <= 9_000
    store.clear()


def test_set_many_is_one_round_trip(own: Server, own_url: str) -> None:
    """A pipeline of 100 SETs costs one write and one read: the server sees one batch."""
    store = Storage.from_url(own_url, namespace="pipe")
    store.store("warm", 1)
    conn = store.backend._t._pool.acquire()  # type: ignore[attr-defined]
    store.backend._t._pool.release(conn)  # type: ignore[attr-defined]
    sent: list[int] = []
    original = conn.send_packed_command

    def counting(command: Any, check_health: bool = True) -> None:
        sent.append(1)
        original(command, check_health=check_health)

    conn.send_packed_command = counting
    try:
        store.store_many({f"k{i}": i for i in range(100)}, ttl=30)
    finally:
        del conn.send_packed_command
    assert sent == [1]
    assert len(store.load_many([f"k{i}" for i in range(100)])) == 100
    store.clear()


def test_incr_fallbacks_are_exact_and_keep_ttl(own: Server, own_url: str) -> None:
    client = raw(own)
    store = Storage.from_url(own_url, namespace="big")
    store.store("n", 2**63 - 1, ttl=100)
    assert store.incr("n", 2**70) == 2**63 - 1 + 2**70
    assert 98_000 <= client.pttl(b"big:n") <= 100_000
    assert store.decr("n", 2**70 + 2**63) == -1
    assert store.incr("n", 10**40, create=False) == 10**40 - 1
    with pytest.raises(KeyError):
        store.incr("absent", 2**80, create=False)
    assert not store.exists("absent")
    assert store.incr("fresh", -(2**90)) == -(2**90)
    client.execute_command("SCRIPT", "FLUSH")  # the EVALSHA -> EVAL path
    assert store.incr("fresh", 2**90) == 0
    client.rpush(b"big:list", b"x")
    with pytest.raises(WrongType, match="not an integer"):
        store.incr("list")
    with pytest.raises(WrongType, match="not an integer"):
        store.incr("list", 2**80)
    store.clear()


def test_incr_script_against_python_ints(own_url: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    store = Storage.from_url(own_url, namespace="prop")
    ints = st.one_of(
        st.integers(-(10**30), 10**30),
        st.integers(-(2**64), 2**64),
        st.sampled_from([0, 1, -1, 10**7, -(10**7), 2**63, -(2**63) - 1]),
    )

    @settings(max_examples=150, deadline=None)
    @given(start=ints, delta=ints)
    def check(start: int, delta: int) -> None:
        store.store("n", start)
        assert store.incr("n", delta, create=False) == start + delta
        assert store.load("n") == start + delta

    check()
    store.clear()


# -- clear ---------------------------------------------------------------------------------------


def test_clear_leaves_other_namespaces_and_foreign_keys(own: Server, own_url: str) -> None:
    client = raw(own)
    weird = Storage.from_url(own_url, namespace="we[i]rd*?\\")
    near = Storage.from_url(own_url, namespace="weird")
    for s in (weird, near):
        s.store_many({f"k{i}": i for i in range(2500)})  # more than one SCAN page
    client.mset({b"we[i]rd*?\\": b"not ours", b"weXrd*?\\:k1": b"not ours", b"plain": b"x"})
    weird.clear()
    assert weird.load_many([f"k{i}" for i in range(2500)]) == {}
    assert len(near.load_many([f"k{i}" for i in range(2500)])) == 2500
    assert client.mget([b"we[i]rd*?\\", b"weXrd*?\\:k1", b"plain"]) == [b"not ours"] * 2 + [b"x"]
    near.clear()
    client.delete(b"we[i]rd*?\\", b"weXrd*?\\:k1", b"plain")


def test_clear_covers_every_cluster_primary(redis_cluster: Cluster) -> None:
    store = Storage.from_url(redis_cluster.url, namespace="spread")
    store.store_many({f"k{i}": i for i in range(300)})
    clients = [raw(n) for n in redis_cluster.nodes]
    holding = [c for c in clients if c.keys(b"spread:*")]
    assert len(holding) == 3  # the keys really are spread over every primary
    store.clear()
    assert [c.keys(b"spread:*") for c in clients] == [[], [], []]


# -- pools ---------------------------------------------------------------------------------------


def _client_id(store: Storage) -> int:
    return store.backend._t.execute("CLIENT", "ID")  # type: ignore[attr-defined,no-any-return]


def test_storages_share_one_pool_and_close_keeps_it(own: Server, own_url: str) -> None:
    first = Storage.from_url(own_url, namespace="one")
    first.store("k", 1)
    before = _client_id(first)
    for i in range(50):  # what Django does: an instance per thread/request, closed after use
        with Storage.from_url(own_url, namespace=f"n{i}") as s:
            assert s.backend._t is first.backend._t  # type: ignore[attr-defined]
            s.store("k", i)
    assert _client_id(first) == before  # same connection: nothing was reopened
    first.close()
    again = Storage.from_url(own_url, namespace="one")
    assert again.load("k") == 1
    assert _client_id(again) == before
    other_options = Storage.from_url(own_url, namespace="one", socket_timeout=3)
    assert other_options.backend._t is not first.backend._t  # type: ignore[attr-defined]
    for i in range(50):
        Storage.from_url(own_url, namespace=f"n{i}").clear()
    again.clear()


def test_async_pool_per_loop_closes_with_the_loop(own: Server, own_url: str) -> None:
    client = raw(own)

    def clients() -> int:
        return len(client.client_list(_type="normal"))

    baseline = clients()

    async def use() -> list[Any]:
        a = AsyncStorage.from_url(own_url, namespace="aio")
        b = AsyncStorage.from_url(own_url, namespace="aio2")
        await a.store("k", 1)
        await b.store("k", 2)
        assert a.backend._bound[1] is b.backend._bound[1]  # type: ignore[attr-defined]
        await a.close()  # closes the Storage, not the loop's shared connection
        assert await b.load("k") == 2
        return [await AsyncStorage.from_url(own_url, namespace="aio").load("k"), clients()]

    value, during = asyncio.run(use())
    assert value == 1 and during == baseline + 1  # two stores, one loop, one connection
    wait_for(lambda: clients() == baseline, 5, "closing the loop's connection")
    assert clients() == baseline
    assert asyncio.run(use())[0] == 1  # a new loop gets a new pool
    Storage.from_url(own_url, namespace="aio").clear()
    Storage.from_url(own_url, namespace="aio2").clear()


# -- failures ------------------------------------------------------------------------------------


def test_retry_recovers_from_killed_connections(own: Server, own_url: str) -> None:
    store = Storage.from_url(own_url, namespace="retry")
    store.store("k", 1)
    raw(own).client_kill_filter(_type="normal", skipme=True)
    assert store.load("k") == 1  # the stale connection failed; the retry reconnected


def test_down_server_fails_fast_and_chained(tmp_path: Path) -> None:
    server = start_single(tmp_path)
    url = f"redis://127.0.0.1:{server.port}/0"
    store = Storage.from_url(url, namespace="down")
    store.store("k", 1)
    server.stop()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        store.load("k")
    assert time.monotonic() - started < 2
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_stalled_server_times_out(tmp_path: Path) -> None:
    server = start_single(tmp_path)
    store = Storage.from_url(f"redis://127.0.0.1:{server.port}/0", socket_timeout=0.3)
    store.store("k", 1)
    server.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"[Tt]imeout"):
            store.load("k")
        assert 0.25 < time.monotonic() - started < 1.5  # one timeout: timeouts are not retried
    finally:
        server.signal(signal.SIGCONT)
        server.stop()


def test_wrong_type_and_size_limit(own: Server, own_url: str, monkeypatch: Any) -> None:
    from tsot.backends.redis import commands as redis_ops

    store = Storage.from_url(own_url, namespace="wt")
    raw(own).rpush(b"wt:list", b"x")
    with pytest.raises(WrongType, match="WRONGTYPE"):
        store.load("list")
    monkeypatch.setattr(redis_ops, "MAX_VALUE_BYTES", 100)
    with pytest.raises(ValueTooLarge, match="at most 100 bytes"):
        store.store_many({"small": 1, "large": b"x" * 200})
    assert not store.exists("small")
    with pytest.raises(ValueTooLarge):
        store.add("large", b"x" * 200)
    store.clear()


def test_health_checks_ping_idle_connections(own: Server, own_url: str) -> None:
    client = raw(own)
    store = Storage.from_url(own_url, namespace="hc", health_check_interval=0.001)
    store.store("k", 1)
    time.sleep(0.01)  # idle longer than the interval (a sleep lasts at least that long)
    calls = calls_of(client, lambda: store.load("k"))
    assert calls.get("ping", 0) >= 1
    assert calls["get"] == 1
    assert store.load("k") == 1
    store.clear()


def test_a_connection_closed_in_the_pool_is_reopened_before_a_command(
    own: Server, own_url: str
) -> None:
    """No health checks: the pool still sees the server's close before it sends, so the command
    goes once, on a new connection (a killed connection never puts an incr in doubt)."""
    client = raw(own)
    store = Storage.from_url(own_url, namespace="closed")
    store.store_int("n", 1)
    client.client_kill_filter(_type="normal", skipme=True)
    calls = calls_of(client, lambda: store.incr("n"))
    assert calls.get("incrby") == 1
    assert store.load_int("n") == 2
    store.clear()
