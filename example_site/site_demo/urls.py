"""URLs of the example site."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("slow/", views.slow_page, name="slow"),
    path("fragment/", views.fragment, name="fragment"),
    path("counter/", views.counter, name="counter"),
    path("async/", views.async_view, name="async"),
    path("stats/", views.stats, name="stats"),
    path("metrics", views.metrics, name="metrics"),
]
