"""System checks: configuration errors as tsot.E0xx messages (not tracebacks), ignored
django-redis globals, and the deploy checks (reachability, RocksDB under several processes)."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core import checks
from django.core.cache import caches as django_caches
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from tests.servers.proc import free_port
from tsot_django.deploy import worker_processes

MEMORY = {"BACKEND": "tsot_django.MemoryCache", "LOCATION": "checks"}


def run(deploy: bool = False, **caches: dict[str, Any]) -> list[checks.CheckMessage]:
    with override_settings(CACHES={"default": MEMORY, **caches}):
        return [
            m
            for m in checks.run_checks(tags=[checks.Tags.caches], include_deployment_checks=deploy)
            if (m.id or "").startswith("tsot.")
        ]


def redis(location: str = "redis://127.0.0.1:1/0", **options: Any) -> dict[str, Any]:
    return {"BACKEND": "tsot_django.RedisCache", "LOCATION": location, "OPTIONS": options}


def test_bad_options_make_check_report_not_raise() -> None:
    out = StringIO()
    caches = {"default": MEMORY, "sessions": redis(SOCKET_TIMEOUT="soon")}
    with override_settings(CACHES=caches):
        with pytest.raises(SystemCheckError) as info:
            call_command("check", stdout=out, stderr=out)
        # Django's own checks built the cache: it exists, and any use raises the error
        broken = django_caches["sessions"]
        with pytest.raises(ImproperlyConfigured, match="SOCKET_TIMEOUT"):
            broken.get("k")
    text = str(info.value)
    assert "tsot.E005" in text
    assert "CACHES['sessions']" in text and "OPTIONS['SOCKET_TIMEOUT']" in text
    assert "'soon'" in text


@pytest.mark.parametrize(
    ("entry", "check_id", "needle"),
    [
        (redis("memcached://h:1"), "tsot.E001", "must use the redis"),
        ({**redis(), "TIMEOUT": "soon"}, "tsot.E002", "TIMEOUT"),
        ({"BACKEND": "tsot_django.TsotCache", "LOCATION": "nosuch://x"}, "tsot.E003", "nosuch"),
        (redis(SOCKET_TIMEOUT=-1), "tsot.E005", "OPTIONS['SOCKET_TIMEOUT']"),
        (redis(CLIENT_CLASS="django_redis.client.ShardClient"), "tsot.E005", "redis+cluster"),
        (redis("redis://127.0.0.1:1/notadb"), "tsot.E006", "notadb"),
    ],
)
def test_each_step_has_its_error(entry: dict[str, Any], check_id: str, needle: str) -> None:
    found = run(broken=entry)
    assert [m.id for m in found] == [check_id]
    assert found[0].level == checks.ERROR
    assert found[0].obj == "CACHES['broken']" and needle in found[0].msg


def test_short_secret_key_is_e004() -> None:
    with override_settings(SECRET_KEY="short"):
        found = run(r=redis())
    # the memory cache ('default') never signs: process memory needs no SECRET_KEY
    assert [(m.id, m.obj) for m in found] == [("tsot.E004", "CACHES['r']")]
    assert "SECRET_KEY" in found[0].msg and "SIGNING" in found[0].msg


def test_each_bad_options_key_is_its_own_error() -> None:
    found = run(r=redis(SOCKET_TIMEOUT="x", MAX_ENTRIES=5, PARSER_CLASS="p", db=0))
    assert [m.id for m in found] == ["tsot.E005"] * 3
    assert ["SOCKET_TIMEOUT" in found[0].msg, "MAX_ENTRIES" in found[1].msg] == [True, True]
    assert "PARSER_CLASS" in found[2].msg


def test_errors_of_several_aliases_are_all_reported() -> None:
    found = run(a=redis(SOCKET_TIMEOUT="x"), b=redis("memcached://h:1"), ok=redis())
    assert sorted((m.obj, m.id) for m in found) == [
        ("CACHES['a']", "tsot.E005"),
        ("CACHES['b']", "tsot.E001"),
    ]


def test_unsigned_pickles_still_w001() -> None:
    assert [m.id for m in run(r=redis(SIGNING=False))] == ["tsot.W001"]


def test_ignore_exceptions_global_warns_when_a_cache_would_raise() -> None:
    with override_settings(DJANGO_REDIS_IGNORE_EXCEPTIONS=True):
        found = run(r=redis(), safe=redis(FAIL_OPEN=True))
    assert [m.id for m in found] == ["tsot.W002"]
    assert "'r'" in found[0].msg and "'safe'" not in found[0].msg
    assert "FAIL_OPEN" in (found[0].hint or "")
    with override_settings(DJANGO_REDIS_IGNORE_EXCEPTIONS=True):
        assert run(safe=redis(FAIL_OPEN=True)) == []
    with override_settings(DJANGO_REDIS_IGNORE_EXCEPTIONS=False):
        assert run(r=redis()) == []


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("DJANGO_REDIS_LOGGER", "'tsot' logger"),
        ("DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS", "FAIL_OPEN"),
        ("DJANGO_REDIS_SCAN_ITERSIZE", "batches"),
        ("DJANGO_REDIS_CONNECTION_FACTORY", "connection layer"),
        ("DJANGO_REDIS_CLOSE_CONNECTION", "per process"),
        ("CACHE_HERD_TIMEOUT", "herd"),
    ],
)
def test_other_django_redis_globals_say_what_replaces_them(name: str, needle: str) -> None:
    with override_settings(**{name: "x"}):
        found = run(r=redis())
    assert [m.id for m in found] == ["tsot.W003"]
    assert found[0].obj == name and needle in (found[0].hint or "")


def test_deploy_reports_an_unreachable_server_and_not_a_live_one(redis_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    assert run(dead=redis(dead)) == []  # not without --deploy: no connection made
    found = run(deploy=True, dead=redis(dead, FAIL_OPEN=True), live=redis(redis_url))
    assert [(m.id, m.obj) for m in found] == [("tsot.W010", "CACHES['dead']")]
    assert "did not answer" in found[0].msg


def test_deploy_tries_each_memcached_server(memcached_url: str) -> None:
    live = memcached_url.removeprefix("memcached://")
    dead = f"127.0.0.1:{free_port()}"
    entry = {"BACKEND": "tsot_django.MemcachedCache", "LOCATION": [live, dead]}
    found = run(deploy=True, mc=entry)
    assert [m.id for m in found] == ["tsot.W010"]
    assert dead in found[0].msg and live not in found[0].msg


def test_deploy_reports_rocksdb_under_several_processes(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = {"BACKEND": "tsot_django.RocksDBCache", "LOCATION": str(tmp_path / "db")}
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    found = run(deploy=True, disk=entry)
    assert [m.id for m in found] == ["tsot.W011"]
    assert "WEB_CONCURRENCY" in found[0].msg and "4" in found[0].msg
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    assert run(deploy=True, disk=entry) == []
    assert not (tmp_path / "db").exists()  # the checks never opened the database


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WEB_CONCURRENCY": "3"}, (3, "WEB_CONCURRENCY")),
        ({"GUNICORN_CMD_ARGS": "--bind :80 -w 5"}, (5, "GUNICORN_CMD_ARGS")),
        ({"GUNICORN_CMD_ARGS": "--workers=2"}, (2, "GUNICORN_CMD_ARGS")),
        ({"GUNICORN_CMD_ARGS": "--threads 8"}, None),
        ({"UWSGI_PROCESSES": "2"}, (2, "UWSGI_PROCESSES")),
    ],
)
def test_worker_processes(environ: dict[str, str], expected: Any) -> None:
    assert worker_processes(environ) == expected


LATE_IMPORT = """
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="k" * 32,
    INSTALLED_APPS=[],
    CACHES={"default": {"BACKEND": "tsot_django.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                        "OPTIONS": {"SOCKET_TIMEOUT": "soon"}}},
)
django.setup()
from django.core.management import call_command
call_command("check")
"""


def test_without_tsot_checks_in_the_run_the_error_still_raises() -> None:
    """tsot_django first imported by Django's own cache check: no tsot message in that run, so
    the configuration error must raise as before, never pass silently."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", LATE_IMPORT], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "SOCKET_TIMEOUT" in done.stderr and "no issues" not in done.stdout
