"""Serve the example: Django at /, the Flask app at /flask/, one process, one cache.

    python example_site/serve.py [--host 127.0.0.1] [--port 8000]

The storage is the tsot URL in $TSOT_URL; without it, in-process memory (no server needed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_app() -> object:
    sys.path.insert(0, str(HERE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "site_demo.settings"  # this server is the demo
    from django.core.wsgi import get_wsgi_application
    from flask_app import create_app
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    return DispatcherMiddleware(get_wsgi_application(), {"/flask": create_app()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    from werkzeug.serving import run_simple

    from tsot import mask_url

    app = build_app()
    url = os.environ.get("TSOT_URL", "memory://example")
    print(
        f"tsot example site on http://{args.host}:{args.port}/ (storage: {mask_url(url)})",
        flush=True,
    )
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
