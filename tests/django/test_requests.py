"""Real requests through django.test.Client on one tsot_django class per storage kind: the
low-level API in views, cache_page, the cache middleware, {% cache %} fragments, sessions
(cache and cached_db) and several aliases side by side."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.sessions.backends.cached_db import KEY_PREFIX as CACHED_DB_PREFIX
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.core.cache.utils import make_template_fragment_key
from django.test import AsyncClient, Client, override_settings

from tests.django import views
from tests.django.support import Env

MEMORY_OTHER = "tsot_django.MemoryCache"


def _memory_entry(**params: Any) -> dict[str, Any]:
    return {"BACKEND": MEMORY_OTHER, "LOCATION": f"side-{uuid.uuid4().hex}", **params}


@pytest.fixture
def site(storage_env: Env) -> Iterator[Env]:
    """CACHES: ``default`` on the kind under test, ``other`` a separate memory table."""
    with override_settings(CACHES={"default": storage_env.entry(), "other": _memory_entry()}):
        yield storage_env
        caches["default"].clear()


def test_low_level_api_in_a_view(site: Env, client: Client) -> None:
    first = client.get("/counter/default/").json()
    second = client.get("/counter/default/").json()
    assert (first["hits"], second["hits"]) == (1, 2)
    assert first["greeting"] == second["greeting"] == "hello from default"
    assert second["seen"] == ["greeting", "hits"]
    assert caches["default"].get("hits") == 2
    assert caches["other"].get("hits") is None


def test_several_aliases_side_by_side(site: Env, client: Client) -> None:
    for _ in range(3):
        client.get("/counter/default/")
    other = client.get("/counter/other/").json()
    assert other == {"hits": 1, "greeting": "hello from other", "seen": ["greeting", "hits"]}
    assert caches["default"].get("hits") == 3
    assert caches["other"].get("hits") == 1
    caches["other"].clear()
    assert caches["default"].get("hits") == 3  # clearing one alias leaves the other


def test_cache_page_serves_the_second_request_from_the_cache(site: Env, client: Client) -> None:
    before = views.runs["cached_page"]
    first = client.get("/cached/")
    second = client.get("/cached/")
    assert first.content == second.content
    assert views.runs["cached_page"] == before + 1
    assert "max-age=60" in second["Cache-Control"]
    client.get("/cached/?page=2")  # another URL: another cache entry
    assert views.runs["cached_page"] == before + 2
    caches["default"].clear()
    client.get("/cached/")
    assert views.runs["cached_page"] == before + 3


def test_cache_middleware(site: Env, client: Client) -> None:
    seconds = 30 if site.uses_clock else 1
    middleware = [
        "django.middleware.cache.UpdateCacheMiddleware",
        "django.middleware.cache.FetchFromCacheMiddleware",
    ]
    with override_settings(
        MIDDLEWARE=middleware,
        CACHE_MIDDLEWARE_ALIAS="default",
        CACHE_MIDDLEWARE_SECONDS=seconds,
        CACHE_MIDDLEWARE_KEY_PREFIX="mw",
    ):
        before = views.runs["plain_page"]
        first = client.get("/plain/")
        second = client.get("/plain/")
        assert second.content == first.content
        assert views.runs["plain_page"] == before + 1
        assert f"max-age={seconds}" in second["Cache-Control"]
        client.post("/plain/")  # POST is never served from the cache
        assert views.runs["plain_page"] == before + 2

        def rendered_again() -> bool:
            client.get("/plain/")
            return views.runs["plain_page"] > before + 2

        site.pass_time(seconds + 1, rendered_again)


def test_template_fragments_vary_on_arguments(site: Env, client: Client) -> None:
    before = views.runs["fragment"]
    one = client.get("/fragment/?user=1").content.decode()
    again = client.get("/fragment/?user=1").content.decode()
    assert one == again
    assert views.runs["fragment"] == before + 2  # the sidebar and the footer, once each
    two = client.get("/fragment/?user=2").content.decode()
    assert views.runs["fragment"] == before + 3  # a new sidebar for user 2; the same footer
    assert "for 2" in two
    assert two.split('id="footer"')[1] == one.split('id="footer"')[1]
    # The sidebar lives in the default cache, the footer in "other" (using="other").
    assert caches["default"].has_key(make_template_fragment_key("sidebar", ["1"]))
    assert caches["default"].has_key(make_template_fragment_key("sidebar", ["2"]))
    assert caches["other"].has_key(make_template_fragment_key("footer"))
    assert not caches["default"].has_key(make_template_fragment_key("footer"))
    caches["default"].delete(make_template_fragment_key("sidebar", ["1"]))
    client.get("/fragment/?user=1")
    assert views.runs["fragment"] == before + 4


SESSION_MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]


def test_sessions_on_the_cache_engine(site: Env, client: Client) -> None:
    with override_settings(
        MIDDLEWARE=SESSION_MIDDLEWARE,
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        SESSION_CACHE_ALIAS="default",
    ):
        answers = [client.get("/session/").json() for _ in range(3)]
        assert [a["n"] for a in answers] == [1, 2, 3]
        key = client.cookies["sessionid"].value
        assert answers[1]["key"] == answers[2]["key"] == key
        stored = caches["default"].get("django.contrib.sessions.cache" + key)
        assert stored == {"n": 3}
        caches["default"].clear()  # the session is gone with the cache
        assert client.get("/session/").json()["n"] == 1


@pytest.mark.django_db
def test_sessions_on_the_cached_db_engine(site: Env, client: Client) -> None:
    with override_settings(
        MIDDLEWARE=SESSION_MIDDLEWARE,
        SESSION_ENGINE="django.contrib.sessions.backends.cached_db",
        SESSION_CACHE_ALIAS="default",
    ):
        assert client.get("/session/").json()["n"] == 1
        assert client.get("/session/").json()["n"] == 2
        key = client.cookies["sessionid"].value
        assert caches["default"].get(CACHED_DB_PREFIX + key) == {"n": 2}
        row = Session.objects.get(session_key=key)
        assert row.get_decoded() == {"n": 2}
        # Reads come from the cache: a change made behind its back in the database is unseen.
        Session.objects.filter(session_key=key).update(
            session_data=Session.objects.encode({"n": 100})
        )
        assert client.get("/session/").json()["n"] == 3
        # Without the cache entry, the database is the fallback.
        caches["default"].delete(CACHED_DB_PREFIX + key)
        assert client.get("/session/").json()["n"] == 4


async def test_async_view(site: Env, async_client: AsyncClient) -> None:
    first = (await async_client.get("/async/default/")).json()
    second = (await async_client.get("/async/default/")).json()
    assert (first["hits"], second["hits"]) == (1, 2)
    assert second["greeting"] == "async default"
    assert await caches["default"].aget("ahits") == 2
