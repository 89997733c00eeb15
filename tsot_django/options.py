"""OPTIONS of a CACHES entry, checked by name and mapped to tsot options.

Keys are tsot option names in any case (``namespace``, ``NAMESPACE``, ``socket_timeout``, ...)
plus the Django and django-redis names below. Anything unknown or malformed raises
ImproperlyConfigured naming the OPTIONS key.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tsot import ConfigurationError, Option
from tsot.integration import default_sign, framework_secrets, needs_secret, options_for

from . import migration

SERIALIZERS: Mapping[str, str] = {
    "pickle": "pickle",
    "json": "json",
    "msgpack": "msgpack",
    # the classes Django and django-redis users name in settings
    "django.core.cache.backends.redis.RedisSerializer": "pickle",
    "django_redis.serializers.pickle.PickleSerializer": "pickle",
    "django_redis.serializers.json.JSONSerializer": "json",
    "django_redis.serializers.msgpack.MSGPackSerializer": "msgpack",
}
COMPRESSORS: Mapping[str, str] = {
    "none": "none",
    "zlib": "zlib",
    "zstd": "zstd",
    "lz4": "lz4",
    "django_redis.compressors.identity.IdentityCompressor": "none",
    "django_redis.compressors.zlib.ZlibCompressor": "zlib",
    "django_redis.compressors.zstd.ZStdCompressor": "zstd",
    "django_redis.compressors.lz4.Lz4Compressor": "lz4",
}
_REFUSED: Mapping[str, str] = {
    "secret": "signing uses SECRET_KEY and SECRET_KEY_FALLBACKS; turn it off with SIGNING=False",
    "default_ttl": "the default timeout is the TIMEOUT setting of the CACHES entry",
    "pool_class": "tsot manages its own connection pools",
    "parser_class": "tsot picks the reply parser itself (hiredis when installed)",
    "connection_pool_class": "tsot manages its own connection pools",
}
_SIGNING = Option("SIGNING", bool, True, "Sign serialized objects with SECRET_KEY.")
_CULL = Option("CULL_FREQUENCY", int, 3, "Accepted for LocMemCache settings.", minimum=0)


class Translator:
    """Maps one OPTIONS dict to tsot keyword options for one storage scheme."""

    def __init__(self, scheme: str, where: str) -> None:
        self.where = where
        self.scheme = scheme
        try:
            specs = options_for(scheme)
        except ConfigurationError as exc:  # unknown scheme, missing driver (names the extra)
            raise ImproperlyConfigured(f"{where}: {exc}") from exc
        self.known: dict[str, Option] = {o.name: o for o in specs}
        self.out: dict[str, Any] = {}
        self.given_as: dict[str, str] = {}
        self.signing = True

    def fail(self, name: str, why: str) -> ImproperlyConfigured:
        """The error for OPTIONS entry ``name`` (a subscript path such as ``['SIGNING']``)."""
        return ImproperlyConfigured(f"{self.where}: OPTIONS{name} {why}")

    def put(self, target: str, value: Any, name: str) -> None:
        """Set tsot option ``target`` from OPTIONS key ``name``, checking its value now."""
        if target in _REFUSED:
            raise self.fail(name, f"cannot be set here: {_REFUSED[target]}")
        spec = self.known.get(target)
        if spec is None:
            raise self.fail(name, f"is not a known option; known: {', '.join(self.names())}")
        if target in self.given_as:
            raise self.fail(name, f"sets the same option as OPTIONS{self.given_as[target]}")
        try:
            self.out[target] = spec.parse(value)
        except ConfigurationError as exc:
            raise self.fail(name, f"is malformed: {exc}") from exc
        self.given_as[target] = name

    def names(self) -> list[str]:
        tsot_names = [n for n in self.known if n not in _REFUSED]
        return sorted({*tsot_names, *(k for k in _SPECIAL if k not in migration.NOT_NEEDED)})

    def translate(self, options: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(options, Mapping):
            raise ImproperlyConfigured(
                f"{self.where}: OPTIONS must be a dict, not {type(options).__name__}"
            )
        for name, value in options.items():
            if not isinstance(name, str):
                raise ImproperlyConfigured(f"{self.where}: OPTIONS key {name!r} is not a string")
            shown = f"[{name!r}]"
            special = _SPECIAL.get(name) or _SPECIAL.get(name.upper())
            if special is not None and (name.isupper() or name in _LOWER_SPECIAL):
                special(self, shown, value)
            else:
                self.put(name.lower(), value, shown)
        # SIGNING=False is the explicit opt-out: secret None (the system check still warns about
        # unsigned pickles on a server; SILENCED_SYSTEM_CHECKS silences it)
        # process memory is never signed: no SECRET_KEY needed, as for Django's LocMemCache
        signs = self.signing and needs_secret(self.scheme)
        self.out["secret"] = signing_secrets(self.where) if signs else None
        # str and bytes signed too on a network store: {% cache %} fragments are str
        self.out.setdefault("sign", default_sign(self.scheme, self.signing))
        return self.out


def secret_settings() -> tuple[object, object]:
    """SECRET_KEY and SECRET_KEY_FALLBACKS as settings has them, unchecked: the one place this
    adapter reads them. Raises ImproperlyConfigured for an empty SECRET_KEY (Django's own)."""
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", None)
    return settings.SECRET_KEY, fallbacks


def signing_secrets(where: str) -> list[bytes]:
    """SECRET_KEY then the non-empty SECRET_KEY_FALLBACKS, checked: the first signs, all verify.

    An empty fallback is skipped (``os.environ.get("OLD_SECRET_KEY", "")`` is a common idiom);
    a SECRET_KEY or fallback shorter than 16 bytes raises ImproperlyConfigured naming it
    (``tsot.integration.framework_secrets`` checks them, as it does for Flask).
    """
    turn_off = "(or turn signing off with OPTIONS['SIGNING'] = False)"
    try:
        key, fallbacks = secret_settings()
    except ImproperlyConfigured as exc:  # Django's own "must not be empty"
        raise ImproperlyConfigured(
            f"{where}: {exc}; signing cached objects needs it {turn_off}"
        ) from exc
    try:
        return framework_secrets(key, fallbacks) or []
    except ConfigurationError as exc:
        raise ImproperlyConfigured(
            f"{where}: {exc}; signing cached objects needs it {turn_off}"
        ) from exc


def fingerprint_secrets() -> list[str]:
    """What tells one configuration's secrets from another's (tsot_django.stores): SECRET_KEY and
    SECRET_KEY_FALLBACKS as written, unchecked, so building a cache instance stays cheap
    (``signing_secrets`` checks them when the storages are built); [] when Django refuses an
    empty SECRET_KEY."""
    try:
        return [repr(secret_settings())]
    except ImproperlyConfigured:
        return []


def _named(table: Mapping[str, str], what: str) -> Callable[[Translator, str, Any], None]:
    def handle(t: Translator, name: str, value: Any) -> None:
        key = value if isinstance(value, str) else None
        if key is not None and "." not in key:
            key = key.lower()
        if key is None or key not in table:
            choices = ", ".join(k for k in table if "." not in k)
            raise t.fail(
                name,
                f"must be one of {choices} (or a django-redis {what} class path tsot can "
                f"replace), not {value!r}",
            )
        t.put(what, table[key], name)

    return handle


def _signing(t: Translator, name: str, value: Any) -> None:
    try:
        t.signing = _SIGNING.parse(value)
    except ConfigurationError as exc:
        raise t.fail(name, f"is malformed: {exc}") from exc


def _pickle_version(t: Translator, name: str, value: Any) -> None:
    # django-redis: -1 means the highest protocol
    t.put("pickle_protocol", pickle.HIGHEST_PROTOCOL if value == -1 else value, name)


def _cull_frequency(t: Translator, name: str, value: Any) -> None:
    if "max_entries" not in t.known:
        raise t.fail(name, f"only applies to memory caches: {migration.eviction_hint(t.scheme)}")
    try:
        _CULL.parse(value)  # checked for typos, then ignored: tsot evicts LRU entries one by one
    except ConfigurationError as exc:
        raise t.fail(name, f"is malformed: {exc}") from exc


def _fail_open(t: Translator, name: str, value: Any) -> None:
    # The hook for tsot's fail_open: outages become misses and skipped writes.
    if "fail_open" not in t.known:
        raise t.fail(name, "needs a tsot version with fail_open support")
    t.put("fail_open", value, name)


_SPECIAL: Mapping[str, Callable[[Translator, str, Any], None]] = {
    "SERIALIZER": _named(SERIALIZERS, "serializer"),
    "COMPRESSION": _named(COMPRESSORS, "compression"),
    "COMPRESSOR": _named(COMPRESSORS, "compression"),
    "SIGNING": _signing,
    "PICKLE_VERSION": _pickle_version,
    "FAIL_OPEN": _fail_open,
    "IGNORE_EXCEPTIONS": _fail_open,
    "CULL_FREQUENCY": _cull_frequency,
    **migration.HANDLERS,  # the django-redis settings: mapped, or refused saying what to do
}
# Lower-case names that also need translating (Django's RedisCache takes a serializer class).
_LOWER_SPECIAL = frozenset({"serializer", "compression"})


def translate(options: Mapping[str, Any], scheme: str, where: str) -> dict[str, Any]:
    """tsot keyword options for ``options`` (a CACHES entry's OPTIONS) on a ``scheme`` storage.

    Signing is on unless ``SIGNING`` is False: the result carries ``secret`` =
    ``[SECRET_KEY, *non-empty SECRET_KEY_FALLBACKS]`` (None when signing is off) and, on a
    network store, ``sign="all"`` unless OPTIONS sets ``SIGN``. Raises ImproperlyConfigured
    naming the key.
    """
    return Translator(scheme, where).translate(options)


def default_timeout(params: Mapping[str, Any], where: str) -> None:
    """Refuse a TIMEOUT Django would silently replace by 300 (docs/architecture.md#errors)."""
    for name in ("timeout", "TIMEOUT"):
        if name in params:
            value = params[name]
            if value is None:
                return
            try:
                if isinstance(value, bool):
                    raise TypeError
                int(value)
            except (TypeError, ValueError):
                raise ImproperlyConfigured(
                    f"{where}: {name} must be a number of seconds or None, not {value!r}"
                ) from None
            return
