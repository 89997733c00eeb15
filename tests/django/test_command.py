"""``manage.py tsot``: call_command on real caches, and one real ``django-admin`` process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_caches(redis_url: str) -> Iterator[dict[str, Any]]:
    prefix = f"p{uuid.uuid4().hex[:8]}"
    setting = {
        "default": {"BACKEND": "tsot_django.TsotCache", "LOCATION": "memory://cmd-default"},
        "shared": {
            "BACKEND": "tsot_django.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
            "VERSION": 2,
            "OPTIONS": {"NAMESPACE": f"ns-{prefix}"},
        },
        "other_version": {
            "BACKEND": "tsot_django.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
            "VERSION": 3,
            "OPTIONS": {"NAMESPACE": f"ns-{prefix}"},
        },
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    with override_settings(CACHES=setting):
        yield setting
        caches["shared"].clear()


def tsot(*args: str) -> str:
    out = io.StringIO()
    call_command("tsot", *args, stdout=out)
    return out.getvalue()


def fails(*args: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        tsot(*args)
    return info.value


def test_get_and_ttl_take_the_django_key(redis_caches: dict[str, Any]) -> None:
    cache = caches["shared"]
    cache.set("greeting", "hello", 100)
    cache.set("obj", {"a": 1}, None)  # a signed pickle: the command reads it with the secret
    assert tsot("--alias", "shared", "get", "greeting") == "hello\n"
    assert tsot("--alias", "shared", "get", "obj") == "{'a': 1}\n"
    assert 0 < float(tsot("--alias", "shared", "ttl", "greeting")) <= 100
    assert tsot("--alias", "shared", "ttl", "obj") == "never expires\n"
    got = json.loads(tsot("--alias", "shared", "--json", "get", "obj"))
    assert (got["value"], got["type"]) == ({"a": 1}, "dict")
    # another VERSION is another key, as cache.get sees it
    assert fails("--alias", "other_version", "get", "greeting").returncode == 1


def test_missing_key_and_bad_alias(redis_caches: dict[str, Any]) -> None:
    err = fails("--alias", "shared", "get", "absent")
    assert err.returncode == 1
    assert "key 'absent' not found" in str(err)
    err = fails("--alias", "nope", "stats")
    assert err.returncode == 2
    assert "no cache alias 'nope'" in str(err)
    err = fails("--alias", "locmem", "stats")
    assert err.returncode == 2
    assert "not a tsot_django cache" in str(err)


def test_stats_ping_and_clear(redis_caches: dict[str, Any]) -> None:
    caches["shared"].set("k", "v")
    stats = json.loads(tsot("--alias", "shared", "stats", "--json"))
    assert stats["alias"] == "shared"
    assert stats["stats"]["keys"] >= 1
    assert json.loads(tsot("--alias", "shared", "ping", "--json"))["ok"] is True
    err = fails("--alias", "shared", "clear")  # pytest's stdin is not a terminal
    assert err.returncode == 2
    assert caches["shared"].get("k") == "v"
    assert "cleared" in tsot("--alias", "shared", "clear", "--yes")
    assert caches["shared"].get("k") is None


def test_unreachable_alias_exits_3() -> None:
    from tests.servers.proc import free_port

    url = f"redis://user:pw-not-shown@127.0.0.1:{free_port()}/0?socket_connect_timeout=2"
    setting = {"default": {"BACKEND": "tsot_django.TsotCache", "LOCATION": url}}
    with override_settings(CACHES=setting):
        err = fails("ping")
    assert err.returncode == 3
    assert "pw-not-shown" not in str(err)


def test_django_admin_process_exit_codes(redis_url: str, tmp_path: Path) -> None:
    """The real command line: exit codes and JSON on stdout, through django-admin."""
    settings = tmp_path / "cmd_settings.py"
    settings.write_text(
        "from tests.django.settings import *\n"
        f"CACHES = {{'default': {{'BACKEND': 'tsot_django.TsotCache', 'LOCATION': {redis_url!r},"
        f" 'OPTIONS': {{'NAMESPACE': 'cmd-{uuid.uuid4().hex}'}}}}}}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "cmd_settings",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "tsot", *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )

    missing = run("get", "absent", "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"] == "key 'absent' not found"
    assert run("stats").returncode == 0
    assert run("clear").returncode == 2
    assert run("nosuchcommand").returncode != 0


def test_keys_lists_this_version_without_prefix(redis_caches: dict[str, Any]) -> None:
    caches["shared"].set_many({"user:1": 1, "user:2": 2, "item": 3})
    caches["other_version"].set("user:9", 9)
    assert sorted(tsot("--alias", "shared", "keys", "user:*").split()) == ["user:1", "user:2"]
    listed = json.loads(tsot("--alias", "shared", "keys", "--json"))
    assert sorted(listed["keys"]) == ["item", "user:1", "user:2"]
    for key in listed["keys"]:  # a listed key is what get takes
        assert tsot("--alias", "shared", "get", key).strip() in ("1", "2", "3")
    caches["other_version"].clear()


def test_a_misconfigured_alias_is_a_usage_error() -> None:
    entry = {"BACKEND": "tsot_django.TsotCache", "LOCATION": "redis://:hidden-pw@127.0.0.1/0"}
    entry["OPTIONS"] = {"socket_timeout": "soon"}
    with override_settings(CACHES={"default": entry}):
        err = fails("stats")
    assert err.returncode == 2
    assert "socket_timeout" in str(err)
    assert "hidden-pw" not in str(err)
