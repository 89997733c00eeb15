"""URLs of the request-level tests (tests/django/test_requests.py)."""

from __future__ import annotations

from django.urls import path

from tests.django import views

urlpatterns = [
    path("counter/<str:alias>/", views.low_level_counter),
    path("cached/", views.cached_page),
    path("plain/", views.plain_page),
    path("fragment/", views.fragment),
    path("session/", views.session_counter),
    path("async/<str:alias>/", views.async_counter),
]
