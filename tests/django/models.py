"""A model with a callable default, as in Django's cache tests (tests/cache/models.py)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


def expensive_calculation() -> object:
    expensive_calculation.num_runs += 1  # type: ignore[attr-defined]
    return timezone.now()


expensive_calculation.num_runs = 0  # type: ignore[attr-defined]


class Poll(models.Model):
    question: models.CharField[str, str] = models.CharField(max_length=200)
    answer: models.CharField[str, str] = models.CharField(max_length=200)
    pub_date: models.DateTimeField[object, object] = models.DateTimeField(
        "date published", default=expensive_calculation
    )
