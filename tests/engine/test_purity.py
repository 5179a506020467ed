"""The engine stays pure: no I/O, network, database, clock, randomness or environment in connector/engine/."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "connector" / "engine"
BANNED_MODULES = {
    "os", "sys", "io", "socket", "ssl", "time", "random", "secrets", "subprocess", "threading", "asyncio", "shutil",
    "tempfile", "pathlib", "sqlite3", "requests", "urllib", "urllib3", "httpx", "sqlalchemy", "psycopg", "hubspot",
    "simple_salesforce", "logging", "connector.store", "connector.adapters", "connector.clock", "connector.config",
}
BANNED_CALLS = {"now", "utcnow", "today", "time", "open", "getenv", "input", "print"}


def engine_files() -> list[Path]:
    return sorted(ENGINE.glob("*.py"))


@pytest.mark.parametrize("path", engine_files(), ids=lambda p: p.name)
def test_engine_module_imports_nothing_that_does_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            root = name.split(".")[0]
            assert root not in BANNED_MODULES and name not in BANNED_MODULES, f"{path.name}:{node.lineno} imports {name}"
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            assert called not in BANNED_CALLS, f"{path.name}:{node.lineno} calls {called}()"


def test_engine_package_has_modules_to_check() -> None:
    assert {"scoring.py", "routing.py", "diff.py", "conditions.py"} <= {p.name for p in engine_files()}


@pytest.mark.skipif(shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists(), reason="mypy not installed")
def test_engine_is_strictly_typed() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(ENGINE)], capture_output=True, text=True, cwd=ENGINE.parents[1])
    assert result.returncode == 0, result.stdout + result.stderr
