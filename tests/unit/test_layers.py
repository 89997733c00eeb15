"""The "never" rules of docs/architecture.md#the-never-rules, read from the source (AST) of every
module in tsot/, tsot_django/ and tsot_flask/, imports inside functions and TYPE_CHECKING
blocks included:

- the core (``tsot``) never imports an adapter, Django or Flask;
- outside ``tsot/backends/`` the core imports no concrete backend, only ``tsot.backends.base``
  (backends are imported by name through the scheme registry, on first use);
- a backend module never imports a module of another backend family (the packages ``redis``,
  ``memcached``, ``rocksdb``; ``memory``); ``base``, ``glob`` and ``loop_lag`` are shared;
- a backend never imports the layers above it (facade, fail-open, events, adapters);
- only transports open connections: no other module imports ``socket``, ``select``, ``ssl``,
  ``selectors``, pymemcache or a redis-py module beyond its exceptions and ``crc``;
- an adapter imports only public tsot names (``tsot.__all__``, ``tsot.integration.__all__``,
  the modules ``tsot.cli`` and ``tsot.readthrough`` by names without a leading underscore)
  and never the other adapter.

Each rule is also run on a small made-up tree that breaks it, so a checker that stopped
seeing violations would fail here too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import tsot
import tsot.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tsot", "tsot_django", "tsot_flask")
ADAPTERS = ("tsot_django", "tsot_flask")
FRAMEWORKS = ("django", "flask", "flask_caching", "werkzeug", *ADAPTERS)

SHARED_BACKEND_MODULES = frozenset({"base", "glob", "loop_lag"})
"""tsot/backends/ modules every backend family may import."""
BACKEND_NEVER = ("tsot.storage", "tsot.failopen", "tsot.events", "tsot.lazy", "tsot.readthrough")
"""The layers above the backends (the facade and what wraps or drives it)."""
TRANSPORTS = frozenset(
    {
        "tsot.backends.redis.transport_sync",
        "tsot.backends.redis.transport_async",
        "tsot.backends.redis.pipeline",
        "tsot.backends.redis.tracking",
        "tsot.backends.memcached.transport_sync",
        "tsot.backends.memcached.transport_async",
        "tsot.backends.memcached.pipeline",
        "tsot.backends.memcached.stream",
    }
)
"""The modules that open connections (docs/architecture.md#the-never-rules)."""
NETWORK_MODULES = ("socket", "select", "selectors", "ssl", "pymemcache")
REDIS_SAFE = ("redis.exceptions", "redis.crc")
"""redis-py modules any Redis module may use: errors to translate, the Cluster key slot."""

PUBLIC_MODULES = frozenset({"tsot.cli", "tsot.readthrough", "tsot.integration"})
"""tsot modules an adapter may import whole; from cli and readthrough, names without "_"."""


@dataclass(frozen=True)
class Import:
    """One imported module, and the names taken from it (empty for ``import x``)."""

    source: str
    line: int
    module: str
    names: tuple[str, ...]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> Iterator[Import]:
    """Every import in ``path``, relative ones resolved; ``from pkg import submodule`` is an
    import of ``pkg.submodule``."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, node.lineno, alias.name, ())
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            folder = root.joinpath(*target.split("."))
            names = tuple(a.name for a in node.names)
            for n in names:
                if (folder / f"{n}.py").is_file() or (folder / n / "__init__.py").is_file():
                    yield Import(name, node.lineno, f"{target}.{n}", ())
            yield Import(name, node.lineno, target, names)


def all_imports(root: Path) -> list[Import]:
    found: list[Import] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found.extend(imports_of(root, path))
    return found


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def family(module: str) -> str | None:
    """The backend family of a tsot.backends module (None for shared modules and others)."""
    if not within(module, "tsot.backends") or module == "tsot.backends":
        return None
    name = module.split(".")[2]
    return None if name in SHARED_BACKEND_MODULES else name.split("_")[0]


def shown(i: Import) -> str:
    what = f"{i.module} ({', '.join(i.names)})" if i.names else i.module
    return f"{i.source}:{i.line} imports {what}"


# -- the rules -------------------------------------------------------------------------------


def core_imports_no_adapter(imports: list[Import]) -> list[str]:
    return [shown(i) for i in imports if within(i.source, "tsot") and within(i.module, *FRAMEWORKS)]


def core_imports_no_concrete_backend(imports: list[Import]) -> list[str]:
    return [
        shown(i)
        for i in imports
        if within(i.source, "tsot")
        and not within(i.source, "tsot.backends")
        and within(i.module, "tsot.backends")
        and i.module not in ("tsot.backends", "tsot.backends.base")
    ]


def backends_import_no_other_family(imports: list[Import]) -> list[str]:
    return [
        shown(i)
        for i in imports
        if family(i.source) is not None
        and family(i.module) is not None
        and family(i.module) != family(i.source)
    ]


def backends_import_no_upper_layer(imports: list[Import]) -> list[str]:
    return [
        shown(i)
        for i in imports
        if within(i.source, "tsot.backends") and within(i.module, *BACKEND_NEVER, *FRAMEWORKS)
    ]


def only_transports_open_connections(imports: list[Import]) -> list[str]:
    def network(i: Import) -> bool:
        if within(i.module, *NETWORK_MODULES):
            return True
        if not within(i.module, "redis") or within(i.module, *REDIS_SAFE):
            return False
        # an error class from another redis-py module (redis.sentinel's MasterNotFoundError)
        return not i.names or not all(n.endswith(("Error", "Exception")) for n in i.names)

    return [
        shown(i)
        for i in imports
        if within(i.source, "tsot") and i.source not in TRANSPORTS and network(i)
    ]


def adapters_import_public_names(imports: list[Import]) -> list[str]:
    public = {
        "tsot": set(tsot.__all__) | {m.rpartition(".")[2] for m in PUBLIC_MODULES},
        "tsot.integration": set(tsot.integration.__all__),
    }
    bad: list[str] = []
    for i in imports:
        if not within(i.source, *ADAPTERS):
            continue
        own = i.source.split(".")[0]
        if within(i.module, *ADAPTERS) and not within(i.module, own):
            bad.append(shown(i) + ": the other adapter")
        if not within(i.module, "tsot") or (i.module == "tsot" and not i.names):
            continue
        if i.module in public and i.names:
            bad += [f"{shown(i)}: {n} is private" for n in i.names if n not in public[i.module]]
        elif i.module in PUBLIC_MODULES:
            bad += [f"{shown(i)}: {n} is private" for n in i.names if n.startswith("_")]
        else:
            bad.append(shown(i) + ": not a public tsot module")
    return bad


def adapters_use_public_attributes(root: Path) -> list[str]:
    """``cli.X``, ``readthrough.X``, ``integration.X`` in an adapter: X is public too."""
    bad: list[str] = []
    for package in ADAPTERS:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            bound: dict[str, str] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "tsot" and not node.level:
                    for a in node.names:
                        if f"tsot.{a.name}" in PUBLIC_MODULES:
                            bound[a.asname or a.name] = f"tsot.{a.name}"
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in bound
                ):
                    module = bound[node.value.id]
                    private = node.attr.startswith("_") or (
                        module == "tsot.integration" and node.attr not in tsot.integration.__all__
                    )
                    if private:
                        where = module_name(root, path)
                        bad.append(f"{where}:{node.lineno} uses {module}.{node.attr}")
    return bad


RULES = {
    "core-imports-no-adapter": core_imports_no_adapter,
    "core-imports-no-concrete-backend": core_imports_no_concrete_backend,
    "backend-imports-no-other-family": backends_import_no_other_family,
    "backend-imports-no-upper-layer": backends_import_no_upper_layer,
    "only-transports-open-connections": only_transports_open_connections,
    "adapters-import-public-names": adapters_import_public_names,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_code_keeps_the_rule(rule: str) -> None:
    assert RULES[rule](all_imports(ROOT)) == []


def test_adapters_use_only_public_attributes_of_tsot_modules() -> None:
    assert adapters_use_public_attributes(ROOT) == []


def test_the_checker_reads_the_tree() -> None:
    """A checker that parsed nothing would pass every rule: it sees the known imports."""
    found = {(i.source, i.module) for i in all_imports(ROOT)}
    # relative, resolved
    assert ("tsot.backends.redis.backend", "tsot.backends.redis.config") in found
    assert ("tsot.backends.redis", "tsot.backends.redis.backend") in found  # the package
    assert ("tsot.storage", "tsot.backends.base") in found
    assert ("tsot_flask.backends", "tsot.integration") in found
    assert ("tsot_django.middleware", "tsot.readthrough") in found  # from tsot import module


# -- each rule catches a break ---------------------------------------------------------------

BROKEN: dict[str, dict[str, str]] = {
    "core-imports-no-adapter": {"tsot/util.py": "def f():\n    import tsot_django.cache\n"},
    "core-imports-no-concrete-backend": {"tsot/util.py": "from .backends.redis import commands\n"},
    "backend-imports-no-other-family": {
        "tsot/backends/redis/x.py": "from ..memcached.protocol import wire_key\n"
    },
    "backend-imports-no-upper-layer": {
        "tsot/backends/rocksdb/x.py": "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ...storage import Storage\n"
    },
    "only-transports-open-connections": {
        "tsot/backends/redis/commands.py": "from redis.connection import Connection\n"
    },
    "adapters-import-public-names": {
        "tsot_flask/config.py": "from tsot.config import CORE_OPTIONS\n",
    },
}
SUBMODULES = (
    "tsot/__init__.py",
    "tsot/backends/__init__.py",
    "tsot/backends/redis/__init__.py",
    "tsot/backends/redis/commands.py",
    "tsot/backends/memcached/__init__.py",
    "tsot/backends/memcached/protocol.py",
    "tsot/storage.py",
    "tsot/config.py",
    "tsot_django/__init__.py",
    "tsot_django/cache.py",
    "tsot_flask/__init__.py",
)


def make_tree(root: Path, files: dict[str, str]) -> None:
    for name in SUBMODULES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_rule_catches_a_break(rule: str, tmp_path: Path) -> None:
    make_tree(tmp_path, BROKEN[rule])
    imports = all_imports(tmp_path)
    assert RULES[rule](imports) != []
    others = [other for other in RULES if other != rule and RULES[other](imports)]
    assert others == []  # each break is caught by its own rule, not by chance


@pytest.mark.parametrize(
    "text",
    [
        "from tsot import integration\nx = integration._private\n",
        "from tsot import integration\nx = integration.split_url_v2\n",
        "from tsot import cli\nx = cli._run\n",
    ],
    ids=["underscore", "not-exported", "cli-underscore"],
)
def test_private_attributes_of_public_modules_are_caught(text: str, tmp_path: Path) -> None:
    make_tree(tmp_path, {"tsot_flask/config.py": text})
    assert adapters_use_public_attributes(tmp_path) != []


def test_public_imports_pass(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "tsot_flask/config.py": "from tsot import Storage, cli, integration\n"
            "from tsot.integration import split_url\nfrom tsot.readthrough import Deferred\n"
            "x = integration.memcached_url, cli.run\n"
        },
    )
    assert adapters_import_public_names(all_imports(tmp_path)) == []
    assert adapters_use_public_attributes(tmp_path) == []
