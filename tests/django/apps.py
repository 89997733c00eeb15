"""The test app: models for the model-instance cache tests, templates, views."""

from __future__ import annotations

from django.apps import AppConfig


class TsotTestsConfig(AppConfig):
    name = "tests.django"
    label = "tsot_tests"
    default_auto_field = "django.db.models.AutoField"
