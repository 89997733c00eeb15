"""A Django URLconf with cache-backed sessions: log in, ask who is logged in, log out."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path


def login(request: HttpRequest) -> JsonResponse:
    request.session["user"] = "alice"
    return JsonResponse({"user": "alice"})


def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": request.session.get("user")})


def logout(request: HttpRequest) -> JsonResponse:
    request.session.flush()  # deletes the session from the cache
    return JsonResponse({"user": None})


async def alogout(request: HttpRequest) -> JsonResponse:
    await request.session.aflush()  # the native async path: cache.adelete
    return JsonResponse({"user": None})


urlpatterns = [
    path("login/", login),
    path("whoami/", whoami),
    path("logout/", logout),
    path("alogout/", alogout),
]
