"""The layer contract: core imports neither hub nor adapters; an adapter imports
only core (never hub, never another adapter); hub has no import circles.
Checked twice: by import-linter (pyproject [tool.importlinter]) and by this AST
walk, which also sees imports inside functions."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from testkit.hubd import BIN
from tests.conftest import ROOT


def imports(pkg: str) -> list[tuple[Path, str]]:
    out = []
    for path in sorted((ROOT / pkg).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out += [(path, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append((path, node.module))
    return out


def test_core_imports_no_hub_or_adapters() -> None:
    bad = [(p, m) for p, m in imports("core") if m.split(".")[0] in ("hub", "adapters")]
    assert not bad, bad


def test_adapters_import_only_core() -> None:
    for adapter in sorted(p.name for p in (ROOT / "adapters").iterdir() if (p / "__init__.py").exists()):
        bad = [
            (p, m)
            for p, m in imports(f"adapters/{adapter}")
            if m.split(".")[0] == "hub" or (m.startswith("adapters.") and m.split(".")[1] != adapter)
        ]
        assert not bad, bad


def test_product_code_never_imports_testkit() -> None:
    bad = [(p, m) for pkg in ("core", "hub", "adapters") for p, m in imports(pkg) if m.split(".")[0] == "testkit"]
    assert not bad, bad


def hub_cycle() -> list[str]:
    """One import circle among hub's modules (``[a, b, …, a]``), or []."""
    graph: dict[str, set[str]] = {}
    for path, mod in imports("hub"):
        me = "hub" if path.stem == "__init__" else f"hub.{path.stem}"
        graph.setdefault(me, set())
        if mod.startswith("hub."):
            graph[me].add(".".join(mod.split(".")[:2]))
    done: set[str] = set()
    stack: list[str] = []

    def visit(m: str) -> list[str]:
        if m in stack:
            return [*stack[stack.index(m) :], m]
        if m in done:
            return []
        stack.append(m)
        for dep in sorted(graph.get(m, ())):
            if found := visit(dep):
                return found
        stack.pop()
        done.add(m)
        return []

    for m in sorted(graph):
        if found := visit(m):
            return found
    return []


def test_hub_has_no_import_circle() -> None:
    assert hub_cycle() == []


def test_import_linter_contracts() -> None:
    res = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "broken" not in res.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_adapters_registered_as_entry_points() -> None:
    from hub.plugins import NORMALIZER_GROUP, available

    assert {"docker", "static", "k8s"} <= set(available())
    assert {"docker", "k8s"} <= set(available(NORMALIZER_GROUP))
