"""What the system checks find in one CACHES entry: each configuration step, run on its own.

A tsot cache is built in steps (LOCATION, TIMEOUT, the storage's driver, the signing secrets,
OPTIONS); each step that fails becomes one check message whose id says which step, and whose
text names the alias and the setting, instead of one ImproperlyConfigured traceback. Nothing
here connects to a server (``tsot_django.deploy`` does, for ``check --deploy`` only).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from tsot import Storage, TsotError, mask_url
from tsot.integration import LOCAL_SCHEMES, needs_secret

from . import locations, migration
from .options import _SIGNING, Translator, default_timeout, signing_secrets

STEPS: Mapping[str, str] = {
    "tsot.E001": "LOCATION",
    "tsot.E002": "TIMEOUT",
    "tsot.E003": "the storage's driver or URL scheme",
    "tsot.E004": "the signing secrets (SECRET_KEY, SECRET_KEY_FALLBACKS)",
    "tsot.E005": "OPTIONS",
    "tsot.E006": "the storage URL and its options together",
}
"""The error ids of a CACHES entry, by the step that failed."""


@dataclass
class Entry:
    """One tsot CACHES entry, as far as its steps succeeded."""

    alias: str
    cls: Any
    params: Mapping[str, Any]
    urls: list[str] = field(default_factory=list)
    options: dict[str, Any] | None = None  # the tsot options, once every step passed
    found: list[checks.CheckMessage] = field(default_factory=list)

    @property
    def obj(self) -> str:
        return f"CACHES[{self.alias!r}]"

    @property
    def scheme(self) -> str:
        return (locations.scheme_of(self.urls[0]) or "") if self.urls else ""

    def step(self, check_id: str, run: Callable[[], Any]) -> Any:
        """Run one step; on a configuration error record it as ``check_id`` and return None."""
        try:
            return run()
        except (ImproperlyConfigured, TsotError) as exc:
            text = str(exc).removeprefix(f"{self.obj}: ")  # Django shows obj before the id
            self.found.append(
                checks.Error(
                    text, hint=f"Fix {STEPS[check_id]} of this cache.", obj=self.obj, id=check_id
                )
            )
            return None


_DJANGO_CHECKS = os.path.join("django", "core", "checks", "")


def in_system_checks() -> bool:
    """True when called (at any depth) from a Django system-check run that includes tsot's.

    Django's cache checks build every cache (``caches[alias]``) to look at its class; a tsot
    cache with a configuration error then stays unusable instead of raising, so that the tsot
    checks of the same run report the error as a message rather than a traceback. When tsot's
    checks are not part of the run (tsot_django first imported during it, or other tags), the
    error raises as usual: never silently.
    """
    from .checks import check_caches

    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "run_checks" and _DJANGO_CHECKS in code.co_filename:
            planned = frame.f_locals.get("checks")  # the functions this run calls
            return isinstance(planned, list) and check_caches in planned
        frame = frame.f_back  # type: ignore[assignment]
    return False


class Unusable:
    """The storages of a cache whose configuration failed during the checks: any use raises."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @property
    def sync(self) -> Any:
        raise self.error

    def for_loop(self, loop: Any) -> Any:
        raise self.error


def tsot_entries() -> list[Entry]:
    """The CACHES entries whose BACKEND is a tsot_django class (others are Django's business)."""
    from .cache import TsotCache

    out = []
    for alias, params in (getattr(settings, "CACHES", None) or {}).items():
        if not isinstance(params, Mapping):
            continue
        try:
            cls = import_string(str(params.get("BACKEND", "")))
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, TsotCache):
            out.append(Entry(str(alias), cls, params))
    return out


def configuration(entry: Entry) -> Entry:
    """Run every step of ``entry``; ``entry.found`` gets one Error per failed step."""
    where = entry.obj
    urls = entry.step(
        "tsot.E001", lambda: entry.cls.location_urls(object.__new__(entry.cls), _location(entry))
    )
    entry.step("tsot.E002", lambda: default_timeout(entry.params, where))
    if urls is None:
        return entry
    entry.urls = urls
    if entry.step("tsot.E003", lambda: Translator(entry.scheme, where)) is None:
        return entry
    options = entry.params.get("OPTIONS") or {}
    signs = _signing(options) and needs_secret(entry.scheme)
    if signs and entry.step("tsot.E004", lambda: signing_secrets(where)) is None:
        return entry
    if isinstance(options, Mapping) and len(options) > 1:  # one message per bad key
        for name, value in options.items():
            entry.step(
                "tsot.E005", functools.partial(_translate, entry.scheme, where, {name: value})
            )
        if entry.found:
            return entry
    translated = entry.step(
        "tsot.E005", functools.partial(_translate, entry.scheme, where, options)
    )
    if translated is None or entry.found:
        return entry
    for url in urls:  # the URL with its options: checked, not connected (tsot.lazy)
        if entry.step("tsot.E006", functools.partial(Storage.from_url, url, **translated)) is None:
            return entry
    entry.options = translated
    return entry


def _translate(scheme: str, where: str, options: Mapping[str, Any]) -> dict[str, Any]:
    return Translator(scheme, where).translate(options)


def _location(entry: Entry) -> Any:
    return entry.params.get("LOCATION", "")


def _signing(options: Any) -> bool:
    if not isinstance(options, Mapping):
        return False  # E005 reports it
    for name in ("SIGNING", "signing"):
        if name in options:
            try:
                return bool(_SIGNING.parse(options[name]))
            except TsotError:
                return False  # E005 reports it
    return True


def unsigned_pickles(entry: Entry) -> list[checks.CheckMessage]:
    """tsot.W001: a network store holding unsigned pickles."""
    options = entry.options
    if (
        options is None
        or options.get("secret") is not None
        or options.get("serializer", "pickle") != "pickle"
        or entry.scheme in LOCAL_SCHEMES
    ):
        return []
    return [
        checks.Warning(
            f"{entry.obj} stores pickles unsigned on {mask_url(entry.urls[0])}: anyone who "
            "can write to that server can make this site run code when it reads them.",
            hint="Remove OPTIONS['SIGNING'] = False (objects are then signed with "
            "SECRET_KEY), or use OPTIONS['SERIALIZER'] = 'json', or add 'tsot.W001' to "
            "SILENCED_SYSTEM_CHECKS to accept the risk.",
            obj=entry.obj,
            id="tsot.W001",
        )
    ]


def ignored_globals(entries: list[Entry]) -> list[checks.CheckMessage]:
    """tsot.W002 / W003: django-redis's module-level settings, which tsot does not read."""
    if not entries:
        return []
    found: list[checks.CheckMessage] = []
    for name, (check_id, instead) in migration.GLOBALS.items():
        if not hasattr(settings, name):
            continue
        value = getattr(settings, name)
        if check_id == "tsot.W002":
            if not value:
                continue  # off is what tsot does anyway
            exposed = [
                e.alias
                for e in entries
                if e.options is not None
                and e.scheme in locations.REDIS_SCHEMES  # what django-redis applied it to
                and not e.options.get("fail_open")
            ]
            if not exposed:
                continue
            found.append(
                checks.Warning(
                    f"{name} = True is a django-redis setting that tsot ignores: the caches "
                    f"{', '.join(map(repr, exposed))} raise on the first outage.",
                    hint=instead + ".",
                    obj=name,
                    id=check_id,
                )
            )
        else:
            found.append(
                checks.Warning(
                    f"{name} is a django-redis setting that tsot ignores.",
                    hint=f"Instead: {instead}.",
                    obj=name,
                    id=check_id,
                )
            )
    return found
