"""RedisCache against a password-protected Redis: the password works and is never shown."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_caching import Cache

from tests.flask.conftest import server_url
from tests.servers.proc import Server, free_port, need_program

PASSWORD = "hunter2-p@ss/word"


@pytest.fixture(scope="module")
def auth_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Redis of our own that requires PASSWORD (the shared fixtures' servers have none)."""
    exe = need_program("redis-server")
    port = free_port()
    data = tmp_path_factory.mktemp("redis-auth")
    argv = [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--requirepass",
        PASSWORD,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
    ]
    server = Server(argv, port, Path(data) / "redis.log").start()
    yield port
    server.stop()


def make(port: int, password: str) -> tuple[Flask, Cache]:
    app = Flask("redis_auth")
    app.config.update(
        DEBUG=True,
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_HOST="127.0.0.1",
        CACHE_REDIS_PORT=port,
        CACHE_REDIS_PASSWORD=password,
        CACHE_KEY_PREFIX="auth_",
    )
    return app, Cache(app)


def text_of(exc: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        parts.append(f"{current!s} {current!r}")
        current = current.__cause__ or current.__context__
    return " ".join(parts)


def test_password_from_the_config_keys(
    request: pytest.FixtureRequest, auth_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    server_url(request, "redis_url")  # the redis backend must have landed
    caplog.set_level(logging.DEBUG)
    app, cache = make(auth_port, PASSWORD)
    with app.app_context():
        assert cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
        backend: Any = cache.cache
        assert "hunter2" not in repr(backend)
        assert "hunter2" not in repr(backend.storage)
        assert cache.clear()
    bad_app, bad_cache = make(auth_port, "hunter2-wrong")
    with bad_app.app_context(), pytest.raises(Exception) as info:
        bad_cache.set("k", 1)
    assert "hunter2" not in text_of(info.value)
    assert "hunter2" not in caplog.text
