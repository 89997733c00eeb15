"""``flask tsot {stats,ping,get,ttl,keys,clear}``: see docs/cli.md.

Added to ``app.cli`` when a tsot_flask cache is set up (``Cache(app)`` / ``init_app``). The
subcommands are tsot's own (``tsot.cli``); this module finds the app's tsot cache.
"""

from __future__ import annotations

import sys
from typing import Any, cast

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from tsot import Storage, cli


def add_commands(app: Flask) -> None:
    """Add ``flask tsot`` to ``app`` (once, and never over another ``tsot`` command)."""
    if "tsot" not in app.cli.commands:
        app.cli.add_command(tsot)


def _caches() -> list[Any]:
    """The tsot_flask backends of the current app's Flask-Caching ``Cache`` objects."""
    from .backends import TsotCache  # imports this module: not at the top

    found = current_app.extensions.get("cache", {}).values()
    return [backend for backend in found if isinstance(backend, TsotCache)]


def _pick(namespace: str | None) -> Any:
    caches = _caches()
    if namespace is not None:
        caches = [c for c in caches if c.storage.namespace == namespace]
    if len(caches) == 1:
        return caches[0]
    if not caches:
        what = "" if namespace is None else f" with CACHE_KEY_PREFIX {namespace!r}"
        return cli.Outcome(cli.Exit.USAGE, f"this app has no tsot_flask cache{what}")
    names = ", ".join(repr(c.storage.namespace) for c in caches)
    return cli.Outcome(
        cli.Exit.USAGE, f"this app has several tsot_flask caches: pick one with --cache ({names})"
    )


def _run(req: cli.Request) -> None:
    ctx = click.get_current_context()
    out = cli.Output(sys.stdout, req.json)
    picked = _pick(ctx.meta.get("tsot.cache"))
    if isinstance(picked, cli.Outcome):
        outcome = picked
        out.data({"ok": False, "command": req.command, "exit": 2, "error": outcome.message})
    else:
        storage = cast("Storage", picked.storage)  # maybe seen through CACHE_SERIALIZER
        label = f"Flask cache {storage.namespace!r} ({storage.url})"
        outcome = cli.run(cli.Surface(storage, label=label), req, out)
    if outcome.code is not cli.Exit.OK:
        sys.stdout.flush()
        click.echo(f"Error: {outcome.message}", err=True)
        ctx.exit(int(outcome.code))


_json = click.option("--json", "json_mode", is_flag=True, help="Print one JSON object.")


@click.group(
    help="Inspect the app's tsot cache. Exit codes: 0 ok, 1 not found, 2 usage, 3 unreachable, "
    "4 not supported, 5 declined, 6 error."
)
@click.option(
    "--cache",
    "namespace",
    default=None,
    help="The CACHE_KEY_PREFIX of the cache, when the app has several.",
)
@click.pass_context
def tsot(ctx: click.Context, namespace: str | None) -> None:
    ctx.meta["tsot.cache"] = namespace


def _command(name: str, help: str, key: bool) -> None:
    """Add ``flask tsot NAME`` for a tsot command that takes no argument or one ``KEY``."""
    if key:

        @tsot.command(name, help=help)
        @click.argument("key")
        @_json
        @with_appcontext
        def with_key(key: str, json_mode: bool) -> None:
            _run(cli.Request(name, key=key, json=json_mode))

        return

    @tsot.command(name, help=help)
    @_json
    @with_appcontext
    def plain(json_mode: bool) -> None:
        _run(cli.Request(name, json=json_mode))


_command("stats", "Hits, misses, keys and the backend's other counters.", key=False)
_command("ping", "One round trip to the backend (exit 3 if unreachable).", key=False)
_command("get", "Print a value (exit 1 if absent).", key=True)
_command("ttl", "Seconds left (exit 1 if absent).", key=True)


@tsot.command(help="List keys matching a glob pattern (not on memcached).")
@click.argument("pattern", default="*")
@click.option("--limit", type=int, default=None, help="Stop after N keys.")
@_json
@with_appcontext
def keys(pattern: str, limit: int | None, json_mode: bool) -> None:
    _run(cli.Request("keys", pattern=pattern, limit=limit, json=json_mode))


@tsot.command(help="Remove every key of the cache's namespace.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_json
@with_appcontext
def clear(yes: bool, json_mode: bool) -> None:
    _run(cli.Request("clear", yes=yes, json=json_mode))
