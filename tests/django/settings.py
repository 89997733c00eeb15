"""Django settings for the test suites (pytest-django loads them for the whole run)."""

from __future__ import annotations

SECRET_KEY = "tsot-tests-not-secret"
SECRET_KEY_FALLBACKS: list[str] = []
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {
    "default": {"BACKEND": "tsot_django.TsotCache", "LOCATION": "memory://django-default"},
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
