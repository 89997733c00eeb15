"""``manage.py tsot {stats,ping,get,ttl,keys,clear} [--alias default]``: see docs/cli.md.

The subcommands are tsot's own (``tsot.cli``); this module finds the cache and maps Django's
keys (KEY_PREFIX, VERSION, KEY_FUNCTION) onto the storage's. Needs ``"tsot_django"`` in
INSTALLED_APPS.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tsot import cli

from ...cache import TsotCache


def surface(cache: TsotCache, alias: str) -> cli.Surface:
    """The cache's storage, keys named as Django names them (``get`` takes what ``cache.get``
    takes; ``keys`` lists this cache's version only, without prefix and version)."""
    head = cache.make_key("")
    prefixed = cache.make_key("tsot-probe").startswith(head)  # the default key function

    def user_key(stored: str) -> str | None:
        if not prefixed:
            return stored
        return stored[len(head) :] if stored.startswith(head) else None

    return cli.Surface(
        storage=cache.storage,
        make_key=cache.make_key,
        user_key=user_key,
        pattern=cache.make_key if prefixed else str,
        label=f"cache {alias!r} ({cache.storage.url})",
        extra={"alias": alias},
    )


class Command(BaseCommand):
    help = (
        "Inspect a tsot cache: stats, ping, get KEY, ttl KEY, keys [PATTERN], clear. Exit "
        "codes: 0 ok, 1 not found, 2 usage, 3 unreachable, 4 not supported, 5 declined, 6 error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alias", default="default", help="the CACHES alias (default)")
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["alias"]
        req = cli.Request(
            command=options["command"],
            key=options.get("key"),
            pattern=options.get("pattern", "*"),
            limit=options.get("limit"),
            yes=options.get("yes", False),
            json=options["json"],
        )
        out = cli.Output(self.stdout, req.json, self._color(options))
        cache = self._cache(alias)
        if not isinstance(cache, TsotCache):
            outcome = cli.Outcome(
                cli.Exit.USAGE,
                f"cache {alias!r} is a {type(cache).__module__}.{type(cache).__qualname__}, "
                "not a tsot_django cache",
            )
            out.data({"ok": False, "command": req.command, "exit": 2, "error": outcome.message})
        else:
            outcome = cli.run(surface(cache, alias), req, out)
        if outcome.code is not cli.Exit.OK:
            raise CommandError(outcome.message, returncode=int(outcome.code))

    def _cache(self, alias: str) -> BaseCache:
        if alias not in caches.settings:
            raise CommandError(
                f"no cache alias {alias!r} in CACHES (there are: {', '.join(caches.settings)})",
                returncode=int(cli.Exit.USAGE),
            )
        try:
            return caches[alias]
        except ImproperlyConfigured as exc:  # a bad LOCATION or OPTIONS: usage, not a traceback
            raise CommandError(str(exc), returncode=int(cli.Exit.USAGE)) from exc

    def _color(self, options: dict[str, Any]) -> bool:
        if options.get("no_color") or "NO_COLOR" in os.environ:
            return False
        return bool(options.get("force_color")) or cli.is_tty(self.stdout)
