"""The package's shape: every module imports, data flows one way (no import circles), the CLI's app module
imports no command module, and data.records (like the scripts shipped into model folders) imports nothing of laam."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "laam"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the laam modules it imports, at top level or inside functions (both run at some point)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("laam"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("laam")]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), ignoring edges into a package's own
    __init__ from its submodules (importing laam.x.y runs laam.x first anyway)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if v.startswith(w + "."):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_every_module_imports():
    for name in import_graph():
        importlib.import_module(name)


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_point_one_way():
    graph = import_graph()
    assert not {t for t in graph["laam.cli.app"] if t.startswith("laam.cli.")}
    assert graph["laam.data.records"] == set()
    # shipped into model folders and beside GGUF files, run where laam is not installed
    assert graph["laam.model.custom_generate.generate"] == set()
    assert graph["laam.publish.regenerate_gguf"] == set()
    lower_to_higher = {"laam.data": ("laam.model", "laam.engine", "laam.train", "laam.proof", "laam.publish",
                                     "laam.cli", "laam.pipeline"),
                       "laam.engine": ("laam.train", "laam.proof", "laam.publish", "laam.cli", "laam.pipeline"),
                       "laam.train": ("laam.proof", "laam.publish", "laam.cli", "laam.pipeline"),
                       "laam.proof": ("laam.publish", "laam.cli", "laam.pipeline"),
                       "laam.publish": ("laam.cli", "laam.pipeline"),
                       "laam.model": ("laam.engine", "laam.train", "laam.proof", "laam.publish", "laam.cli",
                                      "laam.pipeline"),
                       "laam.pipeline": ("laam.cli",)}
    stages = ("laam.data", "laam.model", "laam.engine", "laam.train", "laam.proof", "laam.publish", "laam.pipeline",
              "laam.cli")
    shared = ("laam.errors", "laam.io", "laam.progress", "laam.provenance", "laam.windows")
    assert set(shared) <= set(graph), "a shared top-level module is missing"
    for module in shared:
        assert not [t for t in graph[module] if t.startswith(stages)], (module, graph[module])
    for module, targets in graph.items():
        for layer, above in lower_to_higher.items():
            if module.startswith(layer + ".") or module == layer:
                assert not [t for t in targets if t.startswith(above)], (module, targets)
