"""Requests per second through the frameworks' own page and fragment caching.

Django: a view under ``cache_page`` (the real CacheMiddleware, as a decorator) and a view whose
template has a ``{% cache %}`` fragment, called with RequestFactory requests built before the
clock starts (no WSGI handler, no network). Flask: ``@cache.cached`` through ``test_client``.
Each run starts on a fresh cache key and checks that the page was rendered exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .cases import Case, Probe, namespace, verify
from .contenders import Kind
from .contenders.base import TTL, FlaskBench

PAGE = "<p>" + "cached page " * 50 + "</p>"
FRAGMENT = (
    "{% load cache %}<html><body>{% cache " + str(TTL) + " frag run using=alias %}"
    "{{ expensive }}{% endcache %}</body></html>"
)


def _timed_requests(requests: list[Any], view: Callable[[Any], Any]) -> float:
    start = time.perf_counter()
    for request in requests:
        view(request)
    return time.perf_counter() - start


def cache_page_run(alias: str) -> Callable[[int], float]:
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.views.decorators.cache import cache_page

    factory = RequestFactory()

    def run(n: int) -> float:
        renders = [0]

        def page(request: Any) -> HttpResponse:
            renders[0] += 1
            return HttpResponse(PAGE)

        view = cache_page(TTL, cache=alias, key_prefix=namespace())(page)
        view(factory.get("/page"))
        elapsed = _timed_requests([factory.get("/page") for _ in range(n)], view)
        verify(renders[0] == 1, "cache_page should render once", renders[0])
        return elapsed

    return run


def fragment_run(alias: str) -> Callable[[int], float]:
    from django.http import HttpResponse
    from django.template import engines
    from django.test import RequestFactory

    factory = RequestFactory()
    template = engines["django"].from_string(FRAGMENT)

    def run(n: int) -> float:
        renders = [0]
        ns = namespace()

        def expensive() -> str:
            renders[0] += 1
            return PAGE

        def view(request: Any) -> HttpResponse:
            context = {"alias": alias, "run": ns, "expensive": expensive}
            return HttpResponse(template.render(context, request))

        view(factory.get("/fragment"))
        elapsed = _timed_requests([factory.get("/fragment") for _ in range(n)], view)
        verify(renders[0] == 1, "{% cache %} should render once", renders[0])
        return elapsed

    return run


def flask_run(bench: Callable[[], FlaskBench]) -> Callable[[int], float]:
    def run(n: int) -> float:
        b = bench()
        client = b.app.test_client()
        before = b.renders[0]
        path = f"/{namespace()}"
        client.get(path)
        start = time.perf_counter()
        for _ in range(n):
            client.get(path)
        elapsed = time.perf_counter() - start
        verify(b.renders[0] == before + 1, "@cached should render once", b.renders[0] - before)
        return elapsed

    return run


def request_cases(kind: Kind, probe: Probe) -> list[Case]:
    cases = []
    for c in kind.contenders:
        if probe.api(c, is_async=c.api is None) is None:
            continue
        if c.django_alias is not None:
            cases.append(
                Case(kind.name, "Django cache_page", c.name, c.role,
                     cache_page_run(c.django_alias), "req/s")
            )  # fmt: skip
            cases.append(
                Case(kind.name, "Django {% cache %}", c.name, c.role,
                     fragment_run(c.django_alias), "req/s")
            )  # fmt: skip
        if c.flask is not None:
            cases.append(
                Case(kind.name, "Flask @cached", c.name, c.role, flask_run(c.flask), "req/s")
            )
    return cases
