"""The layout rules and ecosystem conventions, checked: data flows one way (no import cycle),
engine clients stay inside adapters/, scripts do not lean on the tests, the async facade is the
sync one's signatures, the CLI lists every index type, the environment variables of the engines'
own tools are honoured."""

from __future__ import annotations

import ast
import inspect
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vecsim import AsyncCustomIndex, CustomIndex
from vecsim.env import default_uri, env_store_options
from vecsim.index_config import INDEX_TYPES

ROOT = Path(__file__).resolve().parent.parent
ENGINE_CLIENTS = ("pymilvus", "milvus_lite", "qdrant_client", "qdrant_edge")


def _modules() -> dict[str, Path]:
    """Every module of the installed layout: vecsim/** and adapters/** (as vecsim.adapters)."""
    out = {}
    for base, package in ((ROOT / "vecsim", "vecsim"), (ROOT / "adapters", "vecsim.adapters")):
        for path in base.rglob("*.py"):
            if "adapters" in path.relative_to(base).parts:  # a vecsim/adapters link, if any
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The vecsim modules ``name`` imports (at any depth of the file, lazily or not)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_import_graph_has_no_cycle():
    """A package's ``__init__`` re-exporting its submodules is not a cycle of behaviour: edges
    from a package to its own submodules are left out."""
    modules = _modules()
    graph = {
        name: {m for m in _imports(name, path, set(modules)) if not m.startswith(name + ".")}
        for name, path in modules.items()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_engine_clients_only_in_adapters():
    for name, path in _modules().items():
        if name.startswith("vecsim.adapters") or name.startswith("vecsim.testing"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not [m for m in mods if m.split(".")[0] in ENGINE_CLIENTS], f"{path} imports {mods}"


def test_scripts_do_not_import_tests():
    for path in (ROOT / "scripts").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tests"), f"{path} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("tests") for a in node.names), path


def test_async_facade_has_the_sync_signatures():
    for name in AsyncCustomIndex.OPERATIONS:
        method = getattr(AsyncCustomIndex, name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(getattr(CustomIndex, name)), name
        assert method.__doc__ == getattr(CustomIndex, name).__doc__
    public = {n for n, v in vars(CustomIndex).items() if callable(v) and not n.startswith("_")} - {"close"}
    assert public <= set(AsyncCustomIndex.OPERATIONS), public - set(AsyncCustomIndex.OPERATIONS)


def test_cli_help_lists_every_index_type():
    from vecsim.cli import app

    result = CliRunner().invoke(app, ["add", "--help"], env={"COLUMNS": "400", "TERM": "dumb"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for t in INDEX_TYPES:
        assert t in text, t


def test_declared_dependencies_cover_the_default_path():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].split(";")[0].strip().lower() for d in deps}
    assert {"rich", "typer", "av", "pymilvus"} <= names


@pytest.mark.parametrize("env, expected", [
    ({}, "vecsim.db"),
    ({"MILVUS_URI": "http://milvus:19530"}, "http://milvus:19530"),
    ({"QDRANT_URL": "http://qdrant:6333"}, "qdrant://qdrant:6333"),
    ({"QDRANT_URL": "https://q.example:6333"}, "qdrants://q.example:6333"),
    ({"QDRANT_URL": "qdrant:6333"}, "qdrant://qdrant:6333"),
    ({"MILVUS_URI": "http://m:19530", "QDRANT_URL": "http://q:6333"}, "http://m:19530"),
    ({"VECSIM_INDEX": "v.db", "MILVUS_URI": "http://m:19530", "QDRANT_URL": "http://q:6333"}, "v.db"),
])
def test_index_uri_from_the_environment(monkeypatch, env, expected):
    for name in ("VECSIM_INDEX", "MILVUS_URI", "QDRANT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_uri() == expected


def test_qdrant_api_key_from_the_environment(monkeypatch):
    from vecsim import QdrantOptions

    monkeypatch.setenv("QDRANT_API_KEY", "k-env")
    assert env_store_options("qdrant://h:6333", None, {}) == (None, {"api_key": "k-env"})
    assert env_store_options("qdrants://h:6333", None, {"api_key": "given"}) == (None, {"api_key": "given"})
    assert env_store_options("qdrant://h:6333", None, {"token": "given"}) == (None, {"token": "given"})
    assert env_store_options("qdrant://h:6333", QdrantOptions(), {})[0] == QdrantOptions(api_key="k-env")
    assert env_store_options("qdrant://h:6333", QdrantOptions(api_key="mine"), {})[0].api_key == "mine"
    assert env_store_options("x.db", None, {}) == (None, {})
    monkeypatch.delenv("QDRANT_API_KEY")
    assert env_store_options("qdrant://h:6333", None, {}) == (None, {})
