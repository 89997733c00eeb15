"""Django settings for the test suites (pytest-django loads them for the whole run)."""

from __future__ import annotations

from pathlib import Path

SECRET_KEY = "tsot-tests-not-secret"
SECRET_KEY_FALLBACKS: list[str] = []
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "tests.django.apps.TsotTestsConfig",
    "tsot_django",  # manage.py tsot
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {
    "default": {"BACKEND": "tsot_django.TsotCache", "LOCATION": "memory://django-default"},
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "tests.django.urls"
MIDDLEWARE: list[str] = []
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).parent / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
