"""A small Flask app using every Flask-Caching feature the suite checks; counters show real work."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template, request
from flask_caching import Cache

TEMPLATES = Path(__file__).parent / "templates"


def _flask_caching_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("flask-caching").split(".")[:2])


needs_flask_caching_25 = pytest.mark.skipif(
    _flask_caching_version() < (2, 5),
    reason="a Flask-Caching 2.5 feature (delete_cached, make_cache_key(query_args=), "
    "CACHE_SERIALIZER): earlier releases, such as the newest for Python 3.10, lack it",
)
"""Marks a test of something Flask-Caching itself added in 2.5 (tsot's part works on 2.1+)."""


class Site:
    """One Flask app with its Cache, views and memoized functions.

    ``calls[name]`` counts how often each view or function really ran: a cache hit does not
    move it.
    """

    def __init__(self, app: Flask, cache: Cache, short_timeout: int = 30) -> None:
        self.app = app
        self.cache = cache
        self.short_timeout = short_timeout
        self.calls: Counter[str] = Counter()
        self.client = app.test_client()
        self._views()
        self._memoized()
        app.jinja_env.globals["tick"] = self._tick

    def _tick(self) -> int:
        self.calls["tick"] += 1
        return self.calls["tick"]

    def _count(self, name: str) -> int:
        self.calls[name] += 1
        return self.calls[name]

    def get(self, path: str) -> str:
        """GET ``path``; the response body (asserts a 200)."""
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.get_data(as_text=True)

    def _views(self) -> None:
        app, cache = self.app, self.cache

        @app.route("/cached")
        @cache.cached(timeout=50)
        def cached() -> str:
            return f"cached {self._count('cached')}"

        @app.route("/short")
        @cache.cached(timeout=self.short_timeout)
        def short() -> str:
            return f"short {self._count('short')}"

        @app.route("/qs")
        @cache.cached(query_string=True)
        def qs() -> str:
            return f"qs {sorted(request.args.items(multi=True))} {self._count('qs')}"

        @app.route("/unless")
        @cache.cached(unless=lambda: request.args.get("fresh") == "1")
        def unless() -> str:
            return f"unless {self._count('unless')}"

        @app.route("/filtered")
        @cache.cached(response_filter=lambda rv: rv[1] == 200)
        def filtered() -> tuple[str, int]:
            status = int(request.args.get("status", "200"))
            return f"filtered {self._count('filtered')}", status

        @app.route("/custom")
        @cache.cached(make_cache_key=lambda *a, **kw: f"custom/{request.args.get('user', '-')}")
        def custom() -> str:
            return f"custom {request.args.get('user')} {self._count('custom')}"

        @app.route("/user/<name>")
        @cache.cached()
        def user(name: str) -> str:
            return f"user {name} {self._count('user')}"

        @app.route("/page")
        def page() -> str:
            timeout: Any = request.args.get("timeout", "60")
            # Flask-Caching 2.5 turns a str timeout into seconds itself; earlier releases do not
            timeout = timeout if timeout == "del" else int(timeout)
            return render_template(
                "fragment.html", who=request.args.get("who", ""), timeout=timeout
            )

        @app.route("/bold")
        def bold() -> str:
            return render_template("short.html")

        self.views: dict[str, Any] = {"cached": cached, "qs": qs, "user": user}

    def _memoized(self) -> None:
        cache, count = self.cache, self._count

        @cache.memoize(timeout=100)
        def add(a: int, b: int) -> tuple[int, int]:
            return a + b, count("add")

        @cache.memoize(timeout=self.short_timeout)
        def square(x: int) -> tuple[int, int]:
            return x * x, count("square")

        class Adder:
            def __init__(self, name: str) -> None:
                self.name = name

            def __repr__(self) -> str:  # memoize keys instances by repr
                return f"Adder({self.name})"

            @cache.memoize(timeout=100)
            def plus(self, b: int) -> tuple[int, int]:
                return b + 1, count(f"plus-{self.name}")

        self.add = add
        self.square = square
        self.Adder = Adder


def make_site(config: dict[str, Any], short_timeout: int = 30) -> Site:
    """A Site on a fresh Flask app configured with ``config`` (DEBUG: cache errors raise)."""
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(DEBUG=True, **config)
    return Site(app, Cache(app), short_timeout)
