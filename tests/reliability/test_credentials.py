"""No credential ever shows: not in an error, a repr, a log line, stats() or the example site.

Each secret below is checked in its plain and its percent-encoded form, in every text a user or
an operator can see: ``str``/``repr`` of errors and their whole chain (as a traceback prints it),
the repr of every tsot and driver object reachable from a Storage or a framework cache, the log
records (with tracebacks), ``stats()`` and the example site's pages and console output.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tests.servers.proc import Server, free_port, need_program, port_open, wait_for
from tests.servers.redis import SERVICE, start_single
from tsot import AsyncStorage, ConfigurationError, Storage
from tsot.errors import BackendUnavailable

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("every_warning")]

PASSWORD = "redis-pw-7f3a@/x"  # the right one; '@' and '/' exercise URL quoting
WRONG = "wrong-pw-55d0"
SENTINEL_PASSWORD = "sentinel-pw-91c2"
SECRETS = (PASSWORD, WRONG, SENTINEL_PASSWORD)
ROOT = Path(__file__).resolve().parents[2]


def q(secret: str) -> str:
    return quote(secret, safe="")


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            for form in (secret, q(secret)):
                assert form not in text, f"{form!r} shown in: {text[:500]}"


def error_text(exc: BaseException) -> str:
    """What a traceback shows: every exception of the chain, with its message and repr."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


_OURS = ("tsot", "redis", "pymemcache", "flask_caching", "cachelib", "django.core.cache")


def reachable_reprs(root: object, depth: int = 6) -> list[str]:
    """``repr`` and ``str`` of every tsot/driver object reachable from ``root`` by attributes
    and containers (the raw password strings the drivers must hold are data, not reprs)."""
    out: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        obj, level = stack.pop()
        if id(obj) in seen or level > depth or isinstance(obj, str | bytes | int | float):
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            children: list[object] = list(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            children = list(obj)
        else:
            if not type(obj).__module__.startswith(_OURS):
                continue
            out += [repr(obj), str(obj)]
            children = list(getattr(obj, "__dict__", {}).values())
            for cls in type(obj).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    children.append(getattr(obj, name, None))
        stack.extend((child, level + 1) for child in children)
    return out


def failing(call: Any) -> BackendUnavailable:
    with pytest.raises(BackendUnavailable) as info:
        call()
    return info.value


def on_loop(url: str, method: str, **options: Any) -> Any:
    """Call ``AsyncStorage.from_url(url, **options).<method>("k")`` on a fresh loop."""

    async def main() -> Any:
        return await getattr(AsyncStorage.from_url(url, **options), method)("k")

    return asyncio.run(main())


@pytest.fixture(scope="module")
def auth_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_single(tmp_path_factory.mktemp("redis-auth"), "--requirepass", PASSWORD)
    yield server
    server.stop()


def check_storage(url: str, caplog: pytest.LogCaptureFixture, **options: Any) -> None:
    """A Storage on ``url`` that cannot work: its errors, reprs, stats and logs are clean."""
    store = Storage.from_url(url, namespace="cred", **options)
    texts = [error_text(failing(lambda: store.load("k")))]
    texts.append(error_text(failing(lambda: on_loop(url, "load", **options))))
    texts += reachable_reprs(store)
    texts.append(error_text(failing(store.stats)))  # a server's counters need the server
    # fail_open logs the failure (the URL and the driver's message) instead of raising
    quiet = Storage.from_url(url, namespace="cred", fail_open=True, probe_interval=60, **options)
    assert quiet.load("k") is None
    assert on_loop(url, "load", fail_open=True, probe_interval=61, **options) is None
    texts += reachable_reprs(quiet)
    stats = quiet.stats()
    texts.append(repr(stats))
    assert "***" in stats["url"] or "password" in options
    assert any("failed" in r.getMessage() for r in caplog.records if r.name == "tsot")
    texts.append(caplog.text)
    assert_clean(*texts)


def test_wrong_password_on_a_protected_redis(
    auth_redis: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = auth_redis.port
    check_storage(f"redis://:{q(WRONG)}@127.0.0.1:{port}/0", caplog)
    check_storage(f"redis://default:{q(WRONG)}@127.0.0.1:{port}/0", caplog)
    check_storage(f"redis://{q(WRONG)}@127.0.0.1:{port}/0", caplog)  # a lone userinfo
    check_storage(f"redis://127.0.0.1:{port}/0", caplog, password=WRONG)


def test_right_password_shows_nowhere(auth_redis: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://:{q(PASSWORD)}@127.0.0.1:{auth_redis.port}/0"
    store = Storage.from_url(url, namespace="cred")
    store.store("k", {"v": 1})
    assert store.load("k") == {"v": 1}
    assert on_loop(url, "load", namespace="cred") == {"v": 1}
    stats = store.stats()
    assert stats["url"] == f"redis://:***@127.0.0.1:{auth_redis.port}/0"
    assert_clean(repr(stats), *reachable_reprs(store), caplog.text)


def test_dead_host_and_bad_options_with_a_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    check_storage(f"redis://app:{q(PASSWORD)}@127.0.0.1:{port}/0", caplog)
    check_storage(f"rediss://app:{q(PASSWORD)}@127.0.0.1:{port}/0?ssl_cert_reqs=none", caplog)
    for url in (
        f"redis://app:{q(PASSWORD)}@127.0.0.1:{port}/0?socket_timeout=soon",
        f"redis://app:{q(PASSWORD)}@127.0.0.1:{port}/zero",
        f"redis://app:{q(PASSWORD)}@h1:1,h2:2/0",
        f"memcached://app:{q(PASSWORD)}@127.0.0.1:{port}",
        f"redis://app:{q(PASSWORD)}@127.0.0.1:99999/0",
    ):
        with pytest.raises(ConfigurationError) as info:
            Storage.from_url(url)
        assert_clean(error_text(info.value))
    with pytest.raises(ConfigurationError) as info:
        Storage.from_url(f"redis://127.0.0.1:{port}/0?password={q(PASSWORD)}")
    assert_clean(error_text(info.value))


RAW_PASSWORD = "raw#pw?x/y@z:9"  # written into URLs unencoded: '#', '?', '/', '@' and ':'


@pytest.fixture(scope="module")
def raw_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_single(tmp_path_factory.mktemp("redis-raw"), "--requirepass", RAW_PASSWORD)
    yield server
    server.stop()


def test_unencoded_reserved_characters_in_a_password(
    raw_redis: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """``redis://:pa#ss@h/0`` was shown as ``redis://:pa``; now it is parsed and masked whole."""
    from flask import Flask
    from flask_caching import Cache

    caplog.set_level(logging.DEBUG)
    url = f"redis://:{RAW_PASSWORD}@127.0.0.1:{raw_redis.port}/0"
    store = Storage.from_url(url, namespace="raw", fail_open=True)
    store.store("k", {"v": 1})
    assert store.load("k") == {"v": 1}
    assert on_loop(url, "load", namespace="raw") == {"v": 1}
    assert store.stats()["url"] == f"redis://:***@127.0.0.1:{raw_redis.port}/0"
    app = Flask("raw")
    app.config.update(
        CACHE_TYPE="tsot_flask.RedisCache",
        CACHE_REDIS_URL=url.removesuffix("/0"),
        CACHE_REDIS_DB=2,  # completes the URL: it must keep the password whole
        SECRET_KEY="raw-password-test-key",
    )
    cache = Cache(app)
    with app.app_context():
        assert cache.set("k", "via flask") and cache.get("k") == "via flask"
        assert cache.cache.storage.url == f"redis://:***@127.0.0.1:{raw_redis.port}/2"
        texts = reachable_reprs(cache.cache)
    wrong = f"redis://:{RAW_PASSWORD}x@127.0.0.1:{raw_redis.port}/0"
    check_storage(wrong, caplog)
    texts += [*reachable_reprs(store), repr(store.stats()), caplog.text]
    for text in texts:
        for piece in (RAW_PASSWORD, "raw#pw", "pw?x", "x/y", "y@z", q(RAW_PASSWORD)):
            assert piece not in text, f"{piece!r} shown in: {text[:500]}"


# -- Sentinel with passwords -------------------------------------------------------------------


@pytest.fixture
def auth_sentinel(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """A primary that requires PASSWORD, watched by a Sentinel that requires SENTINEL_PASSWORD."""
    primary = start_single(tmp_path / "primary", "--requirepass", PASSWORD, name="primary")
    sdir = tmp_path / "sentinel"
    sdir.mkdir()
    port = free_port()
    conf = sdir / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {sdir}\nrequirepass {SENTINEL_PASSWORD}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
        f'sentinel auth-pass {SERVICE} "{PASSWORD}"\n'
    )
    argv = [need_program("redis-server"), str(conf), "--sentinel"]
    try:
        sentinel = Server(argv, port, sdir / "sentinel.log", cwd=sdir).start()
    except BaseException:
        primary.stop()
        raise
    yield primary, sentinel
    sentinel.stop()
    primary.stop()


def test_sentinel_with_passwords(
    auth_sentinel: tuple[Server, Server], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _primary, sentinel = auth_sentinel
    base = f"127.0.0.1:{sentinel.port}/{SERVICE}/0"
    good = f"redis+sentinel://:{q(PASSWORD)}@{base}"
    store = Storage.from_url(good, namespace="cred", sentinel_password=SENTINEL_PASSWORD)
    store.store("k", "through the sentinel")
    assert store.load("k") == "through the sentinel"
    assert store.stats()["url"] == f"redis+sentinel://:***@{base}"
    assert_clean(*reachable_reprs(store), caplog.text)
    # the wrong password for the primary, then for the Sentinel, then no Sentinel at all
    check_storage(
        f"redis+sentinel://:{q(WRONG)}@{base}", caplog, sentinel_password=SENTINEL_PASSWORD
    )
    check_storage(good, caplog, sentinel_password=WRONG)
    gone = f"redis+sentinel://:{q(PASSWORD)}@127.0.0.1:{free_port()}/{SERVICE}/0"
    check_storage(gone, caplog, sentinel_password=SENTINEL_PASSWORD)


# -- Django and Flask ----------------------------------------------------------------------------


def test_django_messages(auth_redis: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    location = f"redis://:{q(WRONG)}@127.0.0.1:{auth_redis.port}/0"
    texts: list[str] = []
    for options in ({}, {"FAIL_OPEN": True}):
        entry = {"BACKEND": "tsot_django.RedisCache", "LOCATION": location, "OPTIONS": options}
        with override_settings(CACHES={"default": entry}):
            cache = caches["default"]
            if options:
                assert cache.get("k") is None and asyncio.run(cache.aget("k")) is None
            else:
                texts.append(error_text(failing(lambda: cache.get("k"))))  # noqa: B023
                texts.append(error_text(failing(lambda: asyncio.run(cache.aget("k")))))  # noqa: B023
            texts += reachable_reprs(cache)
            storage = cache.storage  # type: ignore[attr-defined]
            if options:
                texts.append(repr(storage.stats()))
            else:
                texts.append(error_text(failing(storage.stats)))
    bad = [
        {"LOCATION": location, "OPTIONS": {"socket_timeout": "soon"}},
        {"LOCATION": location, "OPTIONS": {"nope": 1}},
        {"LOCATION": f"redis://127.0.0.1:1/0?password={q(PASSWORD)}"},
        {"LOCATION": location, "OPTIONS": {"PASSWORD": PASSWORD, "ssl_cert_reqs": "maybe"}},
    ]
    for entry in bad:
        with override_settings(CACHES={"default": {"BACKEND": "tsot_django.RedisCache", **entry}}):
            with pytest.raises(ImproperlyConfigured) as info:
                caches["default"]
            texts.append(error_text(info.value))
    assert_clean(*texts, caplog.text)


def test_flask_messages(auth_redis: Server, caplog: pytest.LogCaptureFixture) -> None:
    from flask import Flask
    from flask_caching import Cache

    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for options in ({}, {"fail_open": True}):
        app = Flask("cred")
        app.config.update(
            CACHE_TYPE="tsot_flask.RedisCache",
            CACHE_REDIS_HOST="127.0.0.1",
            CACHE_REDIS_PORT=auth_redis.port,
            CACHE_REDIS_PASSWORD=WRONG,
            CACHE_OPTIONS=options,
        )
        cache = Cache(app)

        @app.route("/")
        @cache.cached(timeout=60)
        def index() -> str:
            return "rendered"

        assert app.test_client().get("/").text == "rendered"  # logged, view run anyway
        with app.app_context():
            if options:
                assert cache.get("k") is None
            else:
                texts.append(error_text(failing(lambda: cache.get("k"))))  # noqa: B023
            texts += reachable_reprs(cache.cache)
            if options:
                texts.append(repr(cache.cache.storage.stats()))
            else:
                texts.append(error_text(failing(cache.cache.storage.stats)))
    assert "Exception possibly due to cache backend" in caplog.text  # the traceback is logged
    for config in (
        {"CACHE_REDIS_URL": f"redis://:{q(PASSWORD)}@127.0.0.1:1/0", "CACHE_OPTIONS": {"x": 1}},
        {"CACHE_REDIS_PASSWORD": PASSWORD, "CACHE_OPTIONS": {"socket_timeout": "soon"}},
        {"CACHE_REDIS_URL": f"redis://:{q(PASSWORD)}@127.0.0.1:99999/0"},
    ):
        app = Flask("cred-bad")
        app.config.update(CACHE_TYPE="tsot_flask.RedisCache", **config)
        with pytest.raises(ConfigurationError) as info:
            Cache(app)
        texts.append(error_text(info.value))
    assert_clean(*texts, caplog.text)


# -- the example site ----------------------------------------------------------------------------


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.mark.slow
def test_example_site_pages_and_console(tmp_path: Path) -> None:
    redis = start_single(tmp_path / "redis", "--requirepass", PASSWORD)
    env = {k: v for k, v in os.environ.items() if k not in ("TSOT_URL", "DJANGO_SETTINGS_MODULE")}
    env["TSOT_URL"] = f"redis://:{q(PASSWORD)}@127.0.0.1:{redis.port}/0"
    port = free_port()
    log = tmp_path / "site.log"
    try:
        with open(log, "wb") as out:
            site = subprocess.Popen(
                [sys.executable, str(ROOT / "example_site" / "serve.py"), "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: site.poll() is None and port_open(port), 30, "the example site")
            base = f"http://127.0.0.1:{port}"
            pages = {path: fetch(base + path) for path in ("/", "/stats/", "/stats/?format=json")}
            pages["/flask/"] = fetch(base + "/flask/")
            assert all(status == 200 for status, _ in pages.values()), pages
            assert f"redis://:***@127.0.0.1:{redis.port}/0" in pages["/stats/"][1]
            redis.kill()  # now every page that touches the cache fails, and is logged
            for path in ("/stats/", "/slow/", "/flask/cached/"):
                pages[f"{path} (down)"] = fetch(base + path)
            assert pages["/slow/ (down)"][0] == 500
        finally:
            site.terminate()
            site.wait(10)
    finally:
        redis.stop()
    console = log.read_text(errors="replace")
    assert "***" in console  # the startup line names the masked URL
    assert "Traceback" in console  # the failures were logged with their tracebacks
    assert_clean(console, *(body for _, body in pages.values()))
