"""Imports point one way: records and text first, then storage, then search and answering.

Read from the source (no import needed), so a cycle cannot hide in an import inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RAG = Path(__file__).resolve().parents[1] / "rag"
# What each lower-layer module may import from rag: nothing above it.
ALLOWED = {
    "lexical.py": set(),
    "bm25_build.py": {"rag.lexical"},
    "store": {"rag.types", "rag.config", "rag.lexical", "rag.bm25_build", "rag.store"},
}


def _rag_imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) for every `rag` import of a file (`from rag import x` is `rag.x`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "rag":
            names = [f"rag.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        out += [(name, id(node) in in_function) for name in names if name == "rag" or name.startswith("rag.")]
    return out


def _files() -> list[tuple[Path, set[str]]]:
    return [
        (RAG / "lexical.py", ALLOWED["lexical.py"]),
        (RAG / "bm25_build.py", ALLOWED["bm25_build.py"]),
        *[(p, ALLOWED["store"]) for p in sorted((RAG / "store").glob("*.py"))],
    ]


@pytest.mark.parametrize(("path", "allowed"), _files(), ids=lambda v: v.name if isinstance(v, Path) else "")
def test_lower_layers_import_nothing_above_them(path: Path, allowed: set[str]) -> None:
    imports = _rag_imports(path)
    assert not [m for m, _ in imports if m not in allowed and not m.startswith("rag.store.")], imports
    assert not [m for m, inside in imports if inside], "an import inside a function hides the order"


@pytest.mark.parametrize("name", ["retrieve.py", "answer.py", "ingest.py"])
def test_search_answer_and_ingest_import_the_layers_below_at_the_top(name: str) -> None:
    assert not [m for m, inside in _rag_imports(RAG / name) if inside]
