"""No import cycle in the package: the graph of every explicit import (module level, inside
functions, under TYPE_CHECKING alike) is acyclic, so no lazy import hides a cycle; and every
module imports on its own in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sentinel

PACKAGE = Path(sentinel.__file__).resolve().parent


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules this one names in an import statement, wherever it stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a import b` imports the module a.b when there is one, else names in a.
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            ]
        else:
            continue
        for name in names:
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known:
                found.add(name)
    return found


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as a path that comes back to its start), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == GREY:
                return [*stack[stack.index(nxt) :], nxt]
            if colour[nxt] == WHITE and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(graph):
        if colour[node] == WHITE and (found := visit(node)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    assert len(graph) > 50
    assert cycle(graph) is None


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    # With an acyclic graph the order cannot matter; __main__ would run the CLI.
    names = sorted(n for n in modules() if not n.endswith("__main__"))
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_the_cli_and_the_config_loader_come_without_the_schema() -> None:
    # `sentinel check` reads a file within the loader's limits before paying for pydantic.
    code = (
        "import sys\nimport sentinel.config.loader, sentinel.cli\n"
        "heavy = [m for m in ('pydantic', 'jinja2', 'slack_sdk') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


# Who may not reach whom, directly or through others: the composition root (app.py) and the
# commands (cli/) see everything; the API and /metrics read ports and never the root; each
# stage of the data flow (collect -> facts -> rules -> alerts -> notify -> channels) knows
# nothing downstream of it.
ROOT = ("sentinel.app", "sentinel.cli")
FORBIDDEN = {
    "sentinel.api": (*ROOT, "sentinel.metrics.facts", "sentinel.collectors"),
    "sentinel.metrics": (*ROOT, "sentinel.api", "sentinel.collectors"),
    "sentinel.facts": (*ROOT, "sentinel.collectors", "sentinel.rules", "sentinel.alerts"),
    "sentinel.rules": (*ROOT, "sentinel.alerts", "sentinel.notify", "sentinel.channels"),
    "sentinel.alerts": (*ROOT, "sentinel.notify", "sentinel.channels", "sentinel.api"),
    "sentinel.notify": (*ROOT, "sentinel.api", "sentinel.collectors"),
    "sentinel.channels": (*ROOT, "sentinel.notify.pipeline", "sentinel.api"),
}


def test_layers_reach_only_upstream() -> None:
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    broken = []
    for layer, forbidden in FORBIDDEN.items():
        for name in (n for n in graph if n == layer or n.startswith(layer + ".")):
            bad = sorted(
                m
                for m in reachable(graph, name)
                if any(m == f or m.startswith(f + ".") for f in forbidden)
            )
            if bad:
                broken.append(f"{name} -> {bad}")
    assert not broken, "\n".join(broken)


def test_the_layer_check_sees_a_violation() -> None:
    graph = {
        "sentinel.api.x": {"sentinel.util"},
        "sentinel.util": {"sentinel.app"},
        "sentinel.app": set(),
    }
    assert reachable(graph, "sentinel.api.x") == {"sentinel.util", "sentinel.app"}


def test_no_test_module_imports_from_another() -> None:
    # Shared helpers live in helper modules (tests/helpers.py, tests/unit/notify/harness.py,
    # tests/unit/facts/fuzz_kit.py, tests/unit/rules/kit.py), never in a test_*.py.
    tests = PACKAGE.parent / "tests"
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                last = node.module.rsplit(".", 1)[-1]
                if node.module.startswith("tests.") and last.startswith("test_"):
                    offenders.append(f"{path.relative_to(tests)}: {node.module}")
    assert len(list(tests.rglob("test_*.py"))) > 50
    assert not offenders, offenders
