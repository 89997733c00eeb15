"""The deploy-only checks (``manage.py check --deploy``): each server answers, and RocksDB is
not shared by several server processes. ``reachability`` is the one check that connects."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from urllib.parse import urlencode

from django.core import checks

from tsot import Storage, TsotError, mask_url, parse_url
from tsot.integration import LOCAL_SCHEMES, memcached_url, options_for

from .diagnose import Entry

SHORT_TIMEOUTS: Mapping[str, float] = {
    "socket_timeout": 1.0,
    "socket_connect_timeout": 1.0,
    "timeout": 1.0,
    "connect_timeout": 1.0,
    "retries": 0,
}
"""What ``reachability`` sets, where the storage has the option: one short try."""


def reachability(entry: Entry) -> list[checks.CheckMessage]:
    """tsot.W010 (deploy): each server of a network cache answers one read, within ~1 s."""
    if entry.options is None or entry.scheme in LOCAL_SCHEMES:
        return []
    try:
        known = {o.name for o in options_for(entry.scheme)}
    except TsotError:
        return []
    options = {**entry.options, "fail_open": False}
    options.update({k: v for k, v in SHORT_TIMEOUTS.items() if k in known})
    found: list[checks.CheckMessage] = []
    for url in _each_server(entry.urls):
        storage = Storage.from_url(url, **options)
        try:
            storage.exists("tsot-deploy-check")
        except TsotError as exc:
            found.append(
                checks.Warning(
                    f"{mask_url(url)} did not answer: {exc}",
                    hint="Check that the server runs and this host may reach it; with "
                    "OPTIONS['FAIL_OPEN'] = True the site serves misses while it is down.",
                    obj=entry.obj,
                    id="tsot.W010",
                )
            )
        finally:
            storage.close()
    return found


def _each_server(urls: list[str]) -> list[str]:
    """The URLs to try: memcached's servers one by one (a dead one is skipped, not reported,
    by a read through the whole list); Redis URLs as they are."""
    out: list[str] = []
    for url in urls:
        location = parse_url(url)
        if location.scheme == "memcached" and len(location.hosts) > 1:
            query = f"?{urlencode(location.query)}" if location.query else ""
            for host, port in location.hosts:
                server = f"[{host}]" if ":" in host else host
                out.append(memcached_url([f"{server}:{port or 11211}"]) + query)
        else:
            out.append(url)
    return out


_WORKERS = re.compile(r"^(?:-w|--workers)(?:=)?(\d+)?$")


def worker_processes(environ: Mapping[str, str]) -> tuple[int, str] | None:
    """The number of server processes the environment asks for, and where it says so.

    Only what the servers themselves read: WEB_CONCURRENCY (gunicorn, uvicorn), the workers of
    GUNICORN_CMD_ARGS, UWSGI_PROCESSES / UWSGI_WORKERS. None when none of them is set.
    """
    for name in ("WEB_CONCURRENCY", "UWSGI_PROCESSES", "UWSGI_WORKERS"):
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value), name
    args = shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))
    for i, arg in enumerate(args):
        match = _WORKERS.match(arg)
        if match:
            count = match.group(1) or (args[i + 1] if i + 1 < len(args) else "")
            if count.isdigit():
                return int(count), "GUNICORN_CMD_ARGS"
    return None


def rocksdb_processes(
    entry: Entry, environ: Mapping[str, str] | None = None
) -> list[checks.CheckMessage]:
    """tsot.W011 (deploy): RocksDB under a server setting of more than one process."""
    if entry.scheme != "rocksdb":
        return []
    workers = worker_processes(os.environ if environ is None else environ)
    if workers is None or workers[0] <= 1:
        return []
    return [
        checks.Warning(
            f"{entry.obj} is a RocksDB directory, which one process at a time can open, but "
            f"{workers[1]} asks for {workers[0]} server processes: the others fail with "
            "StorageLocked.",
            hint="Run one process (threads or asyncio for concurrency), or use a server "
            "backend (redis:// or memcached://) for a multi-process site.",
            obj=entry.obj,
            id="tsot.W011",
        )
    ]
