"""Settings: the cache backend is the tsot URL in $TSOT_URL (default: in-process memory)."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
# The one switch: memory:// (default, no server), redis://127.0.0.1:6379/0,
# memcached://127.0.0.1:11211, rocksdb:///tmp/tsot-example, ...
TSOT_URL = os.environ.get("TSOT_URL", "memory://example")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-site-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "site_demo.urls"
INSTALLED_APPS = ["django.contrib.sessions"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]
DATABASES: dict[str, dict[str, str]] = {}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
try:  # metrics=prometheus feeds /metrics when prometheus_client is installed (tsot[prometheus])
    import prometheus_client  # noqa: F401

    METRICS = ["stats", "prometheus"]
except ImportError:
    METRICS = ["stats"]  # the counters of the stats page only

CACHES = {
    # Pages, fragments, sessions and the async view all use this one.
    "default": {
        "BACKEND": "tsot_django.TsotCache",
        "LOCATION": TSOT_URL,
        "KEY_PREFIX": "site",
        "TIMEOUT": 300,
        "OPTIONS": {"METRICS": METRICS, "LABEL": "default"},
    },
    # A second alias beside it: always in-process, for per-process scratch data.
    "local": {
        "BACKEND": "tsot_django.MemoryCache",
        "LOCATION": "example-local",
        "OPTIONS": {"METRICS": METRICS, "LABEL": "local"},
    },
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "default"
USE_TZ = True
WSGI_APPLICATION = "site_demo.wsgi.application"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR"},
        "tsot": {"handlers": ["console"], "level": "WARNING"},
    },
}
