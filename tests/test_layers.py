"""The package's layers (docs/architecture.md): a module imports only from its own layer or the layers below,
and no two modules import each other, directly or in a circle, function-local imports included. Read from the
source with `ast`, so a violation fails here before it confuses anyone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "masksmith"

# bottom first; a module may import its own layer and any layer listed before it
LAYERS: list[tuple[str, ...]] = [
    ("core",),
    ("draw",),
    ("data",),
    ("models",),
    ("tasks",),
    ("evaluate",),
    ("infer",),
    ("html_report",),
    ("train",),
    ("apps",),
    ("service", "demo"),
    ("cli", "web"),
]
FACADE = "masksmith"  # the package's __init__: a lazy façade over every layer, imported by no module


def modules() -> dict[str, Path]:
    found = {}
    for file in ROOT.rglob("*.py"):
        parts = file.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = file
    return found


def imports(file: Path, known: dict[str, Path]) -> set[str]:
    """The masksmith modules `file` imports anywhere (module level or inside functions)."""
    def resolve(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    out: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {resolve(a.name) for a in node.names if a.name.startswith("masksmith")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("masksmith"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.add(full if full in known else resolve(node.module))
    return out - {""}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for k, names in enumerate(LAYERS):
        if top in names:
            return k
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS and to docs/architecture.md")


GRAPH = {m: imports(f, modules()) - {m} for m, f in modules().items()}


def test_every_module_belongs_to_a_layer() -> None:
    for module in GRAPH:
        if module != FACADE:
            layer_of(module)


def test_no_module_imports_a_layer_above_its_own() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        if module == FACADE:
            continue
        for target in targets:
            if target == FACADE:
                wrong.append(f"{module} imports the package façade (import the module it names instead)")
            elif layer_of(target) > layer_of(module):
                wrong.append(f"{module} (layer {LAYERS[layer_of(module)]}) imports {target} "
                             f"(layer {LAYERS[layer_of(target)]})")
    assert not wrong, "\n".join(sorted(wrong))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_circle_finder_finds_circles(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_a_package_init_importing_upwards_would_be_caught() -> None:
    assert layer_of("masksmith.core.labels") < layer_of("masksmith.train.run") < layer_of("masksmith.cli")
