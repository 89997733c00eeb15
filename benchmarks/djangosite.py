"""Django for the benchmark process: settings configured once, one CACHES alias per contender."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings


def setup(caches: dict[str, dict[str, Any]]) -> None:
    """Configure Django with ``caches`` (plus a LocMem "default") and call ``django.setup()``."""
    if settings.configured:
        raise RuntimeError("Django settings are already configured in this process")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only-not-secret",
        ALLOWED_HOSTS=["testserver"],
        USE_TZ=True,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            **caches,
        },
        LOGGING_CONFIG=None,
    )
    django.setup()
