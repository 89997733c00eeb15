"""valkey://, valkeys://, valkey+sentinel:// and valkey+cluster:// mean what the redis twins do."""

from __future__ import annotations

from typing import Any

import pytest

from tsot import AsyncStorage, ConfigurationError, Storage
from tsot.backends.redis import RedisBackend
from tsot.backends.redis.config import SCHEMES, TLS_SCHEMES, RedisConfig
from tsot.config import _BUILTIN, backend_class, mask_url, parse_options, parse_url

TWINS = {
    "valkey": "redis",
    "valkeys": "rediss",
    "valkey+sentinel": "redis+sentinel",
    "valkey+cluster": "redis+cluster",
}


def config(url: str, **options: Any) -> RedisConfig:
    location = parse_url(url)
    return RedisBackend.config(
        location, parse_options({**location.query, **options}, RedisBackend.OPTIONS, "test")
    )


def test_every_backend_scheme_is_registered_and_no_other() -> None:
    registered = {s for s, target in _BUILTIN.items() if target.endswith(":RedisBackend")}
    assert registered == set(SCHEMES)
    assert set(TWINS) <= registered
    for scheme in TWINS:
        assert backend_class(scheme) is RedisBackend


@pytest.mark.parametrize(
    ("tail", "options"),
    [
        ("app:pw@h1:7000/4?socket_timeout=0.5&client_name=web", {}),
        ("h1/0", {"retries": 5, "protocol": 3}),
        ("secret@h1:6380", {}),
        ("h1:26379,h2/mymaster/2", {}),
        ("h1:7000,[::1]:7001", {"read_from_replicas": True}),
    ],
)
@pytest.mark.parametrize("scheme", sorted(TWINS))
def test_valkey_url_is_its_redis_twin(scheme: str, tail: str, options: dict[str, Any]) -> None:
    twin = TWINS[scheme]
    if SCHEMES[scheme] == "single" and "," in tail:
        tail = tail.split(",")[0]  # one host only
    if SCHEMES[scheme] == "sentinel" and "mymaster" not in tail:
        tail = tail.partition("/")[0] + "/mymaster"
    if SCHEMES[scheme] == "cluster":
        tail = tail.partition("/")[0]  # database 0 only
    if SCHEMES[scheme] == "single":
        options = {k: v for k, v in options.items() if k != "read_from_replicas"}
    ours, theirs = config(f"{scheme}://{tail}", **options), config(f"{twin}://{tail}", **options)
    for field in (
        "topology",
        "hosts",
        "unix_path",
        "service",
        "db",
        "connection",
        "sentinel",
        "retry",
        "max_connections",
        "max_inflight",
        "pool_timeout",
        "read_from_replicas",
    ):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.name.startswith(f"{scheme}://")  # the masked URL keeps its scheme
    assert ours.key != theirs.key  # a pool per URL, as for any two URLs


def test_valkeys_implies_tls_and_valkey_does_not() -> None:
    assert "valkeys" in TLS_SCHEMES and "rediss" in TLS_SCHEMES
    tls = config("valkeys://h:6380/0?ssl_cert_reqs=none")
    assert tls.connection["ssl_cert_reqs"] == "none"
    assert "ssl_cert_reqs" not in config("valkey://h:6380/0").connection
    assert "ssl_cert_reqs" in config("valkey+cluster://h:7000?ssl=true").connection
    with pytest.raises(ConfigurationError, match=r"needs TLS: use valkeys:// or ssl=true"):
        config("valkey://h/0?ssl_ca_certs=/ca.pem")


def test_a_lone_userinfo_is_a_password_and_is_masked() -> None:
    location = parse_url("valkey://hunter2@h:6379/0")
    assert location.password == "hunter2" and location.username is None
    assert config("valkey://hunter2@h:6379/0").connection["password"] == "hunter2"
    for url, shown in [
        ("valkey://hunter2@h/0", "valkey://***@h/0"),
        ("valkeys://app:hunter2@h:6380/1", "valkeys://app:***@h:6380/1"),
        ("valkey+sentinel://:hunter2@h1,h2/svc/0", "valkey+sentinel://:***@h1,h2/svc/0"),
        (
            "valkey+cluster://app:hunter2@h1:7000,h2:7001",
            "valkey+cluster://app:***@h1:7000,h2:7001",
        ),
    ]:
        assert mask_url(url) == shown
        assert parse_url(url).masked == shown
        store = Storage.from_url(url, retries=0)
        assert "hunter2" not in repr(store) and store.url == shown


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("valkey://h1:1,h2:2/0", r"names 2 hosts; use valkey\+sentinel:// or valkey\+cluster://"),
        ("valkey+sentinel://127.0.0.1:1", r"needs the master name: valkey\+sentinel://"),
        ("valkey+cluster://127.0.0.1:1/3", "Valkey Cluster has only database 0"),
        ("valkey://127.0.0.1:1/zero", r"bad database 'zero' in storage URL 'valkey://"),
        ("valkey://127.0.0.1:1/0?read_from_replicas=true", "read_from_replicas"),
        ("valkey://127.0.0.1:1/0?protocol=4", "'protocol' must be 2 or 3"),
        ("valkey://127.0.0.1:99999/0", "bad port '99999'"),
    ],
)
def test_bad_valkey_urls_name_the_problem(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Storage.from_url(url)
    with pytest.raises(ConfigurationError, match=match):
        AsyncStorage.from_url(url)


def test_redis_messages_still_suggest_redis_schemes() -> None:
    with pytest.raises(ConfigurationError, match=r"use redis\+sentinel:// or redis\+cluster://"):
        Storage.from_url("redis://h1:1,h2:2/0")
    with pytest.raises(ConfigurationError, match="Redis Cluster has only database 0"):
        Storage.from_url("redis+cluster://h:1/2")
