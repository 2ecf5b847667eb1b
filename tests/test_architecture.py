"""The layout docs/architecture.md describes, checked: imports point one way, no
module-global runtime state, files and functions a newcomer can hold in their head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "uhdfuse"

# The flow, lowest first: a module may import its own layer or lower ones, never higher.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "threads", "memory", "colour"),
    ("config", "types"),
    ("io",),
    ("exposure", "shoot", "virtual"),
    ("align",),
    ("pyramid",),
    ("classical", "nn"),
    ("runtime",),
    ("pipeline", "metrics", "synthetic", "stack"),
    ("batch",),
    ("cli", "train", "__init__", "__main__"),
)
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    """'uhdfuse.io.read' -> its file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules ``name`` imports, anywhere in the file (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        targets.update(c for c in candidates if c in MODULES and c != name)
    return targets


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for rank, members in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"{module} belongs to no layer of LAYERS: add it where the flow puts it")


def test_imports_point_down_the_flow() -> None:
    upward = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in GRAPH.items()
        for t in targets
        if _layer(t) > _layer(m)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycles() -> None:
    # A sub-module that imports its own package's __init__ counts: the package
    # imports the sub-module, so the two would be loaded half-initialised.
    edges = GRAPH
    visiting, done, cycles = set(), set(), []

    def visit(node: str, trail: list[str]) -> None:
        visiting.add(node)
        for nxt in sorted(edges[node]):
            if nxt in visiting:
                cycles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt not in done:
                visit(nxt, [*trail, nxt])
        visiting.discard(node)
        done.add(node)

    for start in sorted(edges):
        if start not in done:
            visit(start, [start])
    assert cycles == []


def test_no_function_changes_module_globals() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} global {', '.join(node.names)}"
        for path in MODULES.values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Global)
    ]
    assert offenders == []


def test_no_module_level_mutable_containers_outside_constants() -> None:
    """Module-level lists, dicts and sets are UPPER_CASE constants (never mutated) or nothing."""
    offenders = []
    for path in MODULES.values():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            value = getattr(node, "value", None)
            mutable = isinstance(value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp))
            for target in targets:
                if mutable and isinstance(target, ast.Name) and not target.id.isupper() and target.id != "__all__":
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {target.id}")
    assert offenders == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_and_functions_stay_small(name: str) -> None:
    path = MODULES[name]
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_FILE_LINES, f"{path.relative_to(PACKAGE)} has more than {MAX_FILE_LINES} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
