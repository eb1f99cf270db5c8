"""The core's import graph is the architecture: no cycles, and no cycle hidden by an import
inside a function (the predictor, trainer and out-of-core modules used to import each other
that way)."""

from __future__ import annotations

import ast
import functools
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import segstudio.core

CORE = Path(segstudio.core.__file__).parent
#: Modules on the predict / train / export path: segstudio imports at module top only.
TOP_ONLY = ("atomic", "device", "distributed", "export", "io", "lazy", "outofcore", "predictor", "run")


def _module(path: Path) -> str:
    parts = path.relative_to(CORE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(nodes) -> set[str]:
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("segstudio."):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("segstudio."))
    return out


@functools.cache
def _trees() -> dict[str, ast.Module]:
    """Every core module's syntax tree, parsed once per session."""
    return {_module(p): ast.parse(p.read_text()) for p in CORE.rglob("*.py")}


def test_core_module_imports_form_no_cycle():
    trees = _trees()
    graph = {name: _imports(tree.body) & set(trees) for name, tree in trees.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as e:  # pragma: no cover - the message is the point
        raise AssertionError(f"import cycle: {e.args[1]}") from None
    assert order.index("segstudio.core.predictor") < order.index("segstudio.core.trainer")
    assert order.index("segstudio.core.predictor") < order.index("segstudio.core.outofcore")
    assert "segstudio.core.trainer" not in graph["segstudio.core.predictor"]


def test_the_predict_train_export_path_imports_at_module_top():
    trees = _trees()
    for name in TOP_ONLY:
        tree = trees[f"segstudio.core.{name}"]
        top = {id(n) for n in tree.body}
        inner = _imports(n for n in ast.walk(tree) if id(n) not in top)
        assert not inner, f"segstudio.core.{name} imports {sorted(inner)} inside a function"
