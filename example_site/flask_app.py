"""The Flask side of the example: @cached, @memoize and the Jinja {% cache %} tag on TSOT_URL."""

from __future__ import annotations

import itertools
import os
import time

from flask import Flask, render_template, request
from flask_caching import Cache

_views = itertools.count(1)
_squares = itertools.count(1)
_fragments = itertools.count(1)


def create_app(url: str | None = None) -> Flask:
    """The Flask app; its cache is tsot at ``url`` (default: $TSOT_URL, else in-process memory)."""
    app = Flask(__name__, template_folder="flask_templates")
    app.config.update(
        SECRET_KEY=os.environ.get("FLASK_SECRET_KEY", "example-flask-not-for-production"),
        CACHE_TYPE="tsot_flask.TsotCache",
        CACHE_TSOT_URL=url or os.environ.get("TSOT_URL", "memory://example"),
        CACHE_KEY_PREFIX="flask:",
        CACHE_DEFAULT_TIMEOUT=300,
    )
    cache = Cache(app)

    @app.route("/")
    def index() -> str:
        return render_template("index.html")

    @app.route("/cached/")
    @cache.cached(timeout=60, query_string=True)
    def cached_view() -> str:
        return f"cached view #{next(_views)} for {request.args.get('q', '')!r} at {time.time()}"

    @cache.memoize(timeout=60)
    def square(n: int) -> str:
        return f"{n * n} (computation #{next(_squares)})"

    @app.route("/memo/<int:n>/")
    def memo(n: int) -> str:
        return f"square of {n} = {square(n)}"

    @app.route("/memo/<int:n>/forget/")
    def forget(n: int) -> str:
        cache.delete_memoized(square, n)
        return f"forgot square({n})"

    @app.route("/jinja/")
    def jinja() -> str:
        return render_template("jinja.html", count=lambda: next(_fragments), at=time.time())

    return app
