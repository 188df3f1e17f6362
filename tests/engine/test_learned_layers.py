"""The learned package's rooms: what the operator loads never imports the fitting code, and the
scenario types sit below the learned models (catalog and physics only, no xgboost)."""

from __future__ import annotations

import ast
from pathlib import Path

import greenmatrix

ENGINE = Path(greenmatrix.__file__).parent
LEARNED = ENGINE / "learned"


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_run_time_learned_modules_never_import_fitting() -> None:
    run_time = list(LEARNED.glob("*.py"))
    assert run_time, "no learned modules found"
    offenders = {
        p.name: sorted(n for n in _imports(p) if n.startswith("greenmatrix.learned.fitting"))
        for p in run_time
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_outside_learned_and_the_cli_imports_fitting() -> None:
    # The planner, the batch predictions and the physics are loaded by the operator or by `predict`.
    # `train` and `bench accuracy` are the fitting code's only door (cli.py, or a cli/ package).
    offenders = [
        str(p.relative_to(ENGINE))
        for p in ENGINE.rglob("*.py")
        if p != ENGINE / "cli.py"
        and ENGINE / "cli" not in p.parents
        and LEARNED / "fitting" not in p.parents
        and any(n.startswith("greenmatrix.learned.fitting") for n in _imports(p))
    ]
    assert offenders == []


def test_scenarios_import_only_catalog_and_physics() -> None:
    engine = {n for n in _imports(ENGINE / "scenarios.py") if n.startswith("greenmatrix")}
    assert all(n.startswith(("greenmatrix.catalog", "greenmatrix.physics")) for n in engine), engine
    assert not any(n.split(".")[0] == "xgboost" for n in _imports(ENGINE / "scenarios.py"))


def test_conformal_is_numpy_only() -> None:
    imported = {n.split(".")[0] for n in _imports(LEARNED / "conformal.py")}
    assert imported <= {"__future__", "collections", "numpy"}


def test_physics_has_one_gpu_protocol() -> None:
    defining = [p.name for p in (ENGINE / "physics").glob("*.py") if "class GPULike" in p.read_text()]
    assert defining == ["device.py"]
