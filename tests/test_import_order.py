"""Imports follow the stages' order, and no two modules import each other.

A module may import its own stage and the stages before it, never a later one: the foundations
(errors, paths, image and dataset files, plans access, worker processes) first, then the stages in
the order their code builds on each other. Preprocessing comes before planning because planning
measures the data with preprocessing's own functions (crop, load, normalisation scales) and its
plan_and_preprocess runs the preprocessing; preprocessing reads only the plans, through plans_access.
The command-line modules (run/) come last: nothing imports them. Imports inside functions count too:
a lazy import still ties two modules together.
"""
from __future__ import annotations

import ast
from pathlib import Path

import disyre_v2

PACKAGE = Path(disyre_v2.__file__).parent
FOUNDATIONS = ("errors", "paths", "imageio", "dataset", "plans_access", "processes")
STAGES = ("preparation", "dataset_conversion", "preprocessing", "planning", "training", "inference",
          "evaluation", "model_sharing", "api", "demo", "run")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported disyre_v2 module, line) for every import in the file, nested ones included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # ``from package import module`` imports the module
                submodule = f"{source}.{alias.name}"
                found.append((submodule if submodule in MODULES else source, node.lineno))
    return [(name, line) for name, line in found if name == "disyre_v2" or name.startswith("disyre_v2.")]


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _rank(module: str) -> int | None:
    """0 for the package and its foundations, 1.. for the stages in order, None if unplaced."""
    top = module.split(".")[1] if "." in module else None
    if top is None or top in FOUNDATIONS:
        return 0
    return STAGES.index(top) + 1 if top in STAGES else None


def test_every_module_has_a_place_in_the_order():
    unplaced = sorted(module for module in MODULES if _rank(module) is None)
    assert not unplaced, f"add these to FOUNDATIONS or STAGES of this test: {unplaced}"


def test_no_module_imports_a_later_stage():
    backwards = [f"{module}:{line} imports {target}" for module, targets in sorted(GRAPH.items())
                 for target, line in targets
                 if _rank(target) is not None and _rank(module) is not None and _rank(target) > _rank(module)]
    assert not backwards, "imports against the stages' order:\n" + "\n".join(backwards)


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target, _ in GRAPH[module]:
            if target not in GRAPH:
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    return sorted(components)


def test_no_two_modules_import_each_other():
    cycles = _cycles()
    assert not cycles, "modules that import each other (directly or through others):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles)


def test_the_checks_see_imports_and_cycles(monkeypatch):
    """The graph is read right (a known import is in it) and a made-up cycle is reported."""
    store, dataset_preprocessor = "disyre_v2.preprocessing.store", "disyre_v2.preprocessing.dataset_preprocessor"
    assert store in {target for target, _ in GRAPH[dataset_preprocessor]}
    monkeypatch.setitem(GRAPH, store, GRAPH[store] + [(dataset_preprocessor, 1)])
    assert any({store, dataset_preprocessor} <= set(cycle) for cycle in _cycles())
