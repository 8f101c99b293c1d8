"""The shape of the code: imports run one way, and domain services take keywords after the session."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import cape
import cape.actions
import cape.audit
import cape.auth
import cape.channels
import cape.conversations
import cape.customers
import cape.insights

# Where the rules live: every public function that takes a session takes the rest by keyword.
DOMAIN = (cape.actions, cape.audit, cape.auth, cape.channels, cape.conversations, cape.customers, cape.insights)


def _modules(packages=(cape,)) -> dict[str, Path]:
    found = {}
    for package in packages:
        found[package.__name__] = Path(package.__file__)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            found[info.name] = Path(importlib.import_module(info.name).__file__)
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``path`` imports anywhere, inside functions too."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names & known


def test_no_module_imports_itself_back():
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt}) for nxt in graph[start] - seen)

    assert [name for name in graph if reaches(name, name, set())] == []


def test_services_take_keywords_after_the_session():
    for name in _modules(DOMAIN):
        if name.endswith(".api"):  # HTTP handlers: FastAPI passes their arguments
            continue
        module = importlib.import_module(name)
        for function_name, function in inspect.getmembers(module, inspect.isfunction):
            if function_name.startswith("_") or function.__module__ != name:
                continue
            parameters = list(inspect.signature(function).parameters.values())
            if not parameters or parameters[0].name != "session":
                continue
            by_keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)
            positional = [p.name for p in parameters[1:] if p.kind not in by_keyword]
            assert positional == [], f"{name}.{function_name} takes {positional} by position"
