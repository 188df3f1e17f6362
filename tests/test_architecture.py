"""The arrows of the design, read from the source with `ast` (every import, lazy ones inside functions too):

- the engine (`greenmatrix/`) imports no cluster, HTTP or Prometheus client and reads no clock;
- the operator reaches the engine only through its facade (`greenmatrix`);
- layers point one way (physics never imports learned, learned never the predictors or the planner...);
- fitting code (`greenmatrix.learned.fitting`) is never loaded by what the operator loads;
- no import cycles between modules;
- no module over 600 lines, no function over 100 lines.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {
    "greenmatrix": REPO / "greenmatrix",
    "greenmatrix_operator": REPO / "operator" / "greenmatrix_operator",
}
FORBIDDEN_IN_ENGINE = ("kopf", "kubernetes", "aiohttp", "httpx", "prometheus_api_client", "prometheus_client")
CLOCK_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
}
# (importer prefix, prefixes it must not import): the engine's layers, top to bottom.
LAYERS = [
    (
        "greenmatrix.physics",
        ("greenmatrix.learned", "greenmatrix.predict", "greenmatrix.planning", "greenmatrix.live"),
    ),
    (
        "greenmatrix.catalog",
        ("greenmatrix.physics", "greenmatrix.learned", "greenmatrix.predict", "greenmatrix.planning"),
    ),
    ("greenmatrix.learned", ("greenmatrix.predict", "greenmatrix.planning", "greenmatrix.live")),
    ("greenmatrix.predict", ("greenmatrix.planning", "greenmatrix.live")),
    ("greenmatrix.planning", ("greenmatrix.live",)),
    ("greenmatrix.interval", ("greenmatrix.learned", "xgboost", "numpy")),
]
ENGINE_ONLY_FROM = ("greenmatrix.cli", "greenmatrix.batch")  # nothing else in the engine imports these
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def _module_name(path: Path) -> str:
    for top, root in ROOTS.items():
        if path.is_relative_to(root):
            parts = [top, *path.relative_to(root).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise AssertionError(path)


@cache
def _sources() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for root in ROOTS.values():
        for path in sorted(root.rglob("*.py")):
            out[_module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8")))
    return out


def _imports(name: str) -> Iterator[str]:
    """Every module `name` imports (absolute names, `from x import y` as x.y when x.y is a module)."""
    path, tree = _sources()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            yield base
            for alias in node.names:
                if f"{base}.{alias.name}" in _sources():
                    yield f"{base}.{alias.name}"


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (annotations only: they never run)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
            yield from (n for orelse in child.orelse for n in _runtime_nodes(orelse))
            continue
        yield child
        yield from _runtime_nodes(child)


def _local_imports(name: str) -> set[str]:
    return {m for m in _imports(name) if m in _sources() and m != name}


def _engine_modules() -> list[str]:
    return [m for m in _sources() if m.split(".")[0] == "greenmatrix"]


def test_the_engine_imports_no_cluster_http_or_prometheus_client() -> None:
    bad = [
        (m, imp) for m in _engine_modules() for imp in _imports(m) if imp.split(".")[0] in FORBIDDEN_IN_ENGINE
    ]
    assert bad == []


def test_the_engine_reads_no_clock() -> None:
    bad = []
    # The bench commands time themselves (points per second); nothing they time decides anything.
    for m in (m for m in _engine_modules() if not m.startswith("greenmatrix.cli.bench")):
        path, tree = _sources()[m]
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
                if (owner_name, node.func.attr) in CLOCK_CALLS:
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert bad == []


def test_the_operator_reaches_the_engine_only_through_its_facade() -> None:
    bad = [
        (m, imp)
        for m in _sources()
        if m.startswith("greenmatrix_operator")
        for imp in _imports(m)
        if imp.startswith("greenmatrix.")
    ]
    assert bad == []


@pytest.mark.parametrize(("layer", "forbidden"), LAYERS, ids=[layer for layer, _ in LAYERS])
def test_layers_point_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    members = [m for m in _engine_modules() if m == layer or m.startswith(layer + ".")]
    assert members, f"no module {layer}"
    bad = [
        (m, imp)
        for m in members
        for imp in _imports(m)
        if any(imp == f or imp.startswith(f + ".") for f in forbidden)
    ]
    assert bad == []


def test_the_cli_and_batch_are_leaves() -> None:
    bad = [
        (m, imp)
        for m in _engine_modules()
        if not m.startswith(ENGINE_ONLY_FROM)
        for imp in _local_imports(m)
        if imp.startswith(ENGINE_ONLY_FROM)
    ]
    assert bad == []


def _closure(start: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        # importing a.b.c runs a and a.b first
        parents = [".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)]
        todo += [p for p in parents if p in _sources()]
        todo += sorted(_local_imports(m))
        if m == "greenmatrix":  # the facade loads its names' modules on demand: count them all
            todo += sorted(_facade_targets())
    return seen


def _facade_targets() -> set[str]:
    _, tree = _sources()["greenmatrix"]
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "_EXPORTS":
            assert isinstance(node.value, ast.Dict)
            return {ast.literal_eval(v) for v in node.value.values}
    raise AssertionError("greenmatrix._EXPORTS not found")


def test_the_facade_names_modules_that_define_them() -> None:
    import importlib

    import greenmatrix

    exports = greenmatrix._EXPORTS
    missing = [n for n in exports if not hasattr(importlib.import_module(exports[n]), n)]
    assert missing == []
    # With every module loaded, no subpackage shadows a public name (a package `plan/` once made
    # `greenmatrix.plan` the module instead of the function).
    shadowed = [n for n in exports if isinstance(getattr(greenmatrix, n), types.ModuleType)]
    assert shadowed == []


def test_fitting_code_is_never_loaded_by_the_operator() -> None:
    loaded = _closure([m for m in _sources() if m.startswith("greenmatrix_operator")])
    assert "greenmatrix.planning.planner" in loaded  # the closure is real
    assert sorted(m for m in loaded if m.startswith("greenmatrix.learned.fitting")) == []
    runtime = [m for m in _engine_modules() if m.startswith("greenmatrix.learned") and ".fitting" not in m]
    bad = [(m, i) for m in runtime for i in _local_imports(m) if i.startswith("greenmatrix.learned.fitting")]
    assert bad == []


def test_no_import_cycles() -> None:
    graph = {m: _local_imports(m) for m in _sources()}
    # Tarjan's strongly connected components: any with more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package importing its own submodule is not a cycle of design
            real = [c for c in component if not any(o.startswith(c + ".") for o in component)]
            if len(real) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def test_modules_and_functions_stay_small() -> None:
    big = []
    for path, tree in _sources().values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        where = path.relative_to(REPO)
        if lines > MAX_MODULE_LINES:
            big.append(f"{where}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert big == []
