"""Fixtures of the Django suite: every tsot_django class on every storage kind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.django.support import KINDS, PER_STORAGE, Env, server_url
from tests.helpers import FakeClock
from tsot_django import TsotCache


def make_env(request: pytest.FixtureRequest, kind_id: str) -> Env:
    kind = KINDS[kind_id]
    if kind.fixture is None:
        url = f"memory://django-{uuid.uuid4().hex}"
    else:
        url = server_url(request, kind.fixture)
    clock: FakeClock = request.getfixturevalue("clock")
    return Env(kind, url, clock)


@pytest.fixture(params=list(KINDS))
def env(request: pytest.FixtureRequest) -> Env:
    """Every tsot_django class on every storage kind it supports."""
    return make_env(request, request.param)


@pytest.fixture(params=PER_STORAGE)
def storage_env(request: pytest.FixtureRequest) -> Env:
    """One class per storage kind (the per-kind classes with Django's LOCATION forms)."""
    return make_env(request, request.param)


@pytest.fixture
def cache(env: Env) -> Iterator[TsotCache]:
    """The ``default`` cache of Django's test aliases (prefix, v2, custom_key...) on ``env``."""
    with override_settings(CACHES=env.caches_setting()):
        default = caches["default"]
        assert isinstance(default, TsotCache)
        yield default
        default.clear()
