"""``flask tsot``: the click group a tsot_flask cache adds, run through Flask's CliRunner."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from cachelib.serializers import BaseSerializer
from click.testing import Result
from flask import Flask
from flask_caching import Cache

from tests.servers.proc import free_port


def make_app(url: str, **extra: Any) -> tuple[Flask, Cache]:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "flask-cli-test-secret-0123456789"
    cache = Cache(
        app,
        config={
            "CACHE_TYPE": "tsot_flask.TsotCache",
            "CACHE_TSOT_URL": url,
            "CACHE_KEY_PREFIX": f"fl-{uuid.uuid4().hex}",
            **extra,
        },
    )
    return app, cache


def invoke(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["tsot", *args])


@pytest.fixture
def app_cache(redis_url: str) -> tuple[Flask, Cache]:
    return make_app(redis_url)


def test_get_ttl_and_missing(app_cache: tuple[Flask, Cache]) -> None:
    app, cache = app_cache
    with app.app_context():
        cache.set("greeting", "hello", timeout=100)
        cache.set("obj", {"a": 1}, timeout=0)  # Flask-Caching: 0 = never expires
    got = invoke(app, "get", "greeting")
    assert (got.exit_code, got.output) == (0, "hello\n")
    assert json.loads(invoke(app, "get", "obj", "--json").output)["value"] == {"a": 1}
    assert 0 < float(invoke(app, "ttl", "greeting").output) <= 100
    assert invoke(app, "ttl", "obj").output == "never expires\n"
    missing = invoke(app, "get", "absent")
    assert missing.exit_code == 1
    assert "key 'absent' not found" in missing.output


def test_stats_ping_clear(app_cache: tuple[Flask, Cache]) -> None:
    app, cache = app_cache
    with app.app_context():
        cache.set("k", "v")
    stats = json.loads(invoke(app, "stats", "--json").output)
    assert stats["stats"]["keys"] >= 1
    assert invoke(app, "ping").exit_code == 0
    refused = invoke(app, "clear")  # CliRunner's stdin is not a terminal
    assert refused.exit_code == 2
    assert "without --yes" in refused.output
    with app.app_context():
        assert cache.get("k") == "v"
    assert invoke(app, "clear", "--yes").exit_code == 0
    with app.app_context():
        assert cache.get("k") is None


def test_several_caches_need_cache_option(redis_url: str) -> None:
    app, _ = make_app(redis_url)
    second = Cache(
        app,
        config={
            "CACHE_TYPE": "tsot_flask.TsotCache",
            "CACHE_TSOT_URL": redis_url,
            "CACHE_KEY_PREFIX": "second-cache",
        },
    )
    with app.app_context():
        second.set("only-here", "2")
    ambiguous = invoke(app, "get", "only-here")
    assert ambiguous.exit_code == 2
    assert "--cache" in ambiguous.output
    picked = app.test_cli_runner().invoke(
        args=["tsot", "--cache", "second-cache", "get", "only-here"]
    )
    assert (picked.exit_code, picked.output) == (0, "2\n")
    with app.app_context():
        second.clear()


def test_unreachable_exits_3_without_the_password() -> None:
    url = f"redis://u:flask-pw-hidden@127.0.0.1:{free_port()}/0?socket_connect_timeout=2"
    app, _ = make_app(url)
    done = invoke(app, "ping", "--json")
    assert done.exit_code == 3
    assert "flask-pw-hidden" not in done.output
    (line,) = [line for line in done.output.splitlines() if line.startswith("{")]
    assert json.loads(line)["exit"] == 3


def test_keys(app_cache: tuple[Flask, Cache]) -> None:
    app, cache = app_cache
    with app.app_context():
        cache.set_many({"view/a": 1, "view/b": 2, "memo": 3})
    done = invoke(app, "keys", "view/*")
    assert done.exit_code == 0
    assert sorted(done.output.split()) == ["view/a", "view/b"]
    with app.app_context():
        cache.clear()


class UpperJSON(BaseSerializer):  # type: ignore[misc]
    """A serializer of the app's own (CACHE_SERIALIZER): the command reads through it."""

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


def test_get_reads_through_cache_serializer(redis_url: str) -> None:
    app, cache = make_app(redis_url, CACHE_SERIALIZER=UpperJSON)
    with app.app_context():
        cache.set("obj", {"a": [1, 2]})
        assert cache.get("obj") == {"a": [1, 2]}
    got = invoke(app, "get", "obj", "--json")
    assert got.exit_code == 0, got.output
    assert json.loads(got.output)["value"] == {"a": [1, 2]}
    assert invoke(app, "stats").exit_code == 0
