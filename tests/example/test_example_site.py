"""The example site as a real server process, over HTTP: Django at /, Flask at /flask/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.servers.proc import free_port, port_open, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Site:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=20) as resp:
            assert resp.status == 200
            return str(resp.read().decode())

    def number(self, path: str, pattern: str) -> int:
        body = self.get(path)
        match = re.search(pattern, body)
        assert match, body
        return int(match.group(1))


def _kinds() -> list[str]:
    return ["memory", "redis_url", "memcached_url"]


@pytest.fixture(params=_kinds())
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    env = {k: v for k, v in os.environ.items() if k not in ("TSOT_URL", "DJANGO_SETTINGS_MODULE")}
    if request.param != "memory":
        env["TSOT_URL"] = request.getfixturevalue(request.param)
    port = free_port()
    with open(tmp_path / "site.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "example_site" / "serve.py"), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: _up(proc, port, tmp_path), 30, "the example site")
            yield Site(f"http://127.0.0.1:{port}")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print((tmp_path / "site.log").read_text(errors="replace")[-3000:])  # shown on failure


def _up(proc: subprocess.Popen[bytes], port: int, tmp_path: Path) -> bool:
    if proc.poll() is not None:  # died: fail now, with its log, instead of waiting
        pytest.fail("the example site exited:\n" + (tmp_path / "site.log").read_text()[-3000:])
    return port_open(port)


def test_django_side(site: Site) -> None:
    first = site.number("/slow/", r"render #(\d+)")
    assert site.number("/slow/", r"render #(\d+)") == first  # served from the cache

    news = site.number("/fragment/?topic=news", r"fragment #(\d+)")
    assert site.number("/fragment/?topic=news", r"fragment #(\d+)") == news
    assert site.number("/fragment/?topic=sport", r"fragment #(\d+)") != news

    assert site.number("/counter/", r"visits=(\d+)") == 1
    assert site.number("/counter/", r"visits=(\d+)") == 2
    assert Site(site.base).number("/counter/", r"visits=(\d+)") == 1  # no cookie, new session
    assert site.number("/counter/", r"visits=(\d+)") == 3

    a = json.loads(site.get("/async/"))
    b = json.loads(site.get("/async/"))
    assert b["hits"] == a["hits"] + 1
    assert b["greeting"] == a["greeting"]

    stats = json.loads(site.get("/stats/?format=json"))["caches"]
    default = next(row for row in stats if row["alias"] == "default")
    assert default["hits"] >= 3  # every backend reports its counters (Redis from INFO)
    assert default["keys"] >= 1
    assert "***" in default["url"] or "@" not in default["url"]
    page = site.get("/stats/")
    assert "Cache statistics" in page and 'id="chart-default"' in page and "<script>" in page
    assert "http://" not in page.replace(site.base, "") and "https://" not in page  # no assets
    # the live part: this process's reads, from the event hook (OPTIONS METRICS)
    assert default["reads"] >= 3 and 0 < default["hit_ratio"] <= 1 and default["read_ms"] > 0
    assert default["operations"]["get"]["calls"] >= 3

    metrics = site.get("/metrics")
    kind = default["url"].split(":", 1)[0].replace("rediss", "redis")
    assert re.search(rf'^django_cache_get_total{{backend="{kind}"}} [1-9]', metrics, re.M), metrics
    assert 'tsot_operation_seconds_count{operation="get",storage="default"}' in metrics


def test_flask_side(site: Site) -> None:
    a = site.number("/flask/cached/?q=a", r"cached view #(\d+)")
    assert site.number("/flask/cached/?q=a", r"cached view #(\d+)") == a
    assert site.number("/flask/cached/?q=b", r"cached view #(\d+)") != a

    n = site.number("/flask/memo/7/", r"computation #(\d+)")
    assert "square of 7 = 49" in site.get("/flask/memo/7/")
    assert site.number("/flask/memo/7/", r"computation #(\d+)") == n
    site.get("/flask/memo/7/forget/")
    assert site.number("/flask/memo/7/", r"computation #(\d+)") != n

    f = site.number("/flask/jinja/", r"jinja fragment #(\d+)")
    assert site.number("/flask/jinja/", r"jinja fragment #(\d+)") == f
