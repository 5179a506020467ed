"""The layout stays readable: small modules, short functions, and a layout document whose test paths exist.

Limits (issue 16): no module of connector/ over MAX_MODULE_LINES lines and no function or method over
MAX_FUNCTION_LINES lines (decorators included), except the generated gRPC stubs (`*_pb2*.py`) and the
migration scripts under connector/state/migrations/. Every `tests/….py` path docs/architecture.md cites
names a file that exists, so the "Tested by" lines keep up when tests move.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "connector"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
CITED_TEST = re.compile(r"\btests/[\w/.-]*?\.py\b")


def checked_modules() -> list[Path]:
    """connector/'s Python modules, without the generated stubs and the migration scripts."""
    migrations = PACKAGE / "state" / "migrations"
    return sorted(
        path for path in PACKAGE.rglob("*.py")
        if "_pb2" not in path.name and not path.is_relative_to(migrations)
    )


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    assert node.end_lineno is not None
    return node.end_lineno - first + 1


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_there_are_modules_to_check() -> None:
    modules = {relative(path) for path in checked_modules()}
    assert "connector/engine/routing/route.py" in modules and "connector/state/store.py" in modules
    assert not any("_pb2" in name or "/migrations/" in name for name in modules)


def test_no_module_is_over_the_line_limit() -> None:
    long = []
    for path in checked_modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            long.append(f"{relative(path)}: {lines} lines")
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by idea):\n" + "\n".join(long)


def test_no_function_is_over_the_line_limit() -> None:
    long = []
    for path in checked_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in functions(tree):
            lines = function_lines(node)
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{relative(path)}:{node.lineno}: {node.name}() is {lines} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_the_line_counts_are_what_they_seem() -> None:
    tree = ast.parse("@decorator\ndef f():\n    x = 1\n\n    return x\n\n\nasync def g():\n    pass\n")
    assert {node.name: function_lines(node) for node in functions(tree)} == {"f": 5, "g": 2}


def cited_test_paths() -> list[str]:
    return sorted(set(CITED_TEST.findall(ARCHITECTURE.read_text(encoding="utf-8"))))


def test_architecture_cites_tests() -> None:
    assert "tests/test_doc_citations.py" in cited_test_paths()
    assert CITED_TEST.findall("`tests/engine/routing/test_routing.py` (`test_x`), tests/conftest.py.") == [
        "tests/engine/routing/test_routing.py", "tests/conftest.py",
    ]


def test_every_test_path_cited_in_the_architecture_exists() -> None:
    missing = [path for path in cited_test_paths() if not (ROOT / path).is_file()]
    assert not missing, f"{relative(ARCHITECTURE)} cites test files that do not exist (moved?):\n" + "\n".join(missing)
