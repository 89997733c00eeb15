"""``python -m tsot URL {stats,ping,get,ttl,keys,clear}``: see docs/cli.md."""

from .cli import main

raise SystemExit(main())
