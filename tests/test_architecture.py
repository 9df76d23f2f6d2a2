"""The package's shape (docs/architecture.md): every module imports and has a place (a stage, or shared), data flows
one way (each stage imports only itself and earlier stages, the shared modules no stage, no import circles), the CLI
calls the pipeline and never the reverse, the CLI's app module imports no command module, and data.records (like the
scripts shipped into model folders) imports nothing of laam."""

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


# The pipeline's stages in the order data flows through them: a module imports from its own stage and the ones
# before it, never from a later one. pipeline.py strings the stages together; the CLI parses options and calls it.
STAGES = ("laam.data", "laam.model", "laam.engine", "laam.train", "laam.proof", "laam.publish", "laam.pipeline",
          "laam.cli")
# The top-level modules every stage may use; they import only each other.
SHARED = ("laam.errors", "laam.figures", "laam.io", "laam.progress", "laam.provenance", "laam.validation",
          "laam.windows")
ENTRY_POINTS = ("laam", "laam.__main__")  # the package and `python -m laam`, which runs the CLI


def stage_of(module: str) -> str | None:
    return next((stage for stage in STAGES if module == stage or module.startswith(stage + ".")), None)


def test_every_module_has_a_place():
    """A new top-level module must be named here as shared or as a stage, so the rules below cover it."""
    unplaced = [m for m in import_graph() if stage_of(m) is None and m not in SHARED + ENTRY_POINTS]
    assert unplaced == []
    assert set(SHARED) <= set(import_graph()), "a shared top-level module is missing"


def test_shared_modules_import_only_each_other():
    graph = import_graph()
    for module in SHARED:
        assert graph[module] <= set(SHARED), (module, graph[module] - set(SHARED))


def backward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module, target) for every import of a later stage than the module's own."""
    found = []
    for module, targets in graph.items():
        stage = stage_of(module)
        if stage is not None:
            later = STAGES[STAGES.index(stage) + 1:]
            found += [(module, t) for t in sorted(targets) if stage_of(t) in later]
    return found


def test_stages_import_only_their_own_and_earlier_stages():
    assert backward_imports(import_graph()) == []


def test_backward_imports_finds_an_import_of_a_later_stage():
    graph = {"laam.proof.x": {"laam.publish.y", "laam.train.z"}, "laam.publish.y": {"laam.proof.x"},
             "laam.pipeline": {"laam.cli.app"}, "laam.cli.app": {"laam.pipeline"}, "laam.io": {"laam.errors"}}
    assert sorted(backward_imports(graph)) == [("laam.pipeline", "laam.cli.app"), ("laam.proof.x", "laam.publish.y")]


def test_the_cli_calls_the_pipeline_and_the_pipeline_never_the_cli():
    graph = import_graph()
    assert not [t for t in graph["laam.pipeline"] if stage_of(t) == "laam.cli"]
    assert any("laam.pipeline" in targets for module, targets in graph.items() if stage_of(module) == "laam.cli")


def test_the_cli_app_imports_no_command_module():
    assert not {t for t in import_graph()["laam.cli.app"] if t.startswith("laam.cli.")}


def test_self_contained_modules_import_nothing_of_laam():
    graph = import_graph()
    assert graph["laam.data.records"] == set()
    # shipped into model folders and beside GGUF files, run where laam is not installed
    assert graph["laam.model.custom_generate.generate"] == set()
    assert graph["laam.publish.regenerate_gguf"] == set()
