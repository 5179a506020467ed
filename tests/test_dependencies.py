"""Dependencies point one way, and the engine stays pure.

Every module of the `connector` package belongs to a layer; a module may import its own layer and the
layers its rule lists, nothing else. Direct imports count, at the top of a module and inside functions
alike (parsed with `ast`, nothing is imported). Bottom to top:

    core           nothing from connector outside core
    engine         core; the standard library and the pure libraries it uses (holidays, pydantic); no I/O
    canonical      core; the data libraries it loads (pycountry, phonenumbers, e-mail domain lists): CRM values → the
                   common model's vocabulary (ISO places, industry taxonomy, typed parsers), kept out of the engine
    config         core, engine, canonical (config embeds the engine's and field mapping's config models)
    adapters       core, config, canonical; one CRM's subpackage never imports the other's; base imports only core
    state          core, config
    pipeline       core, config, engine, state, adapters.base (the protocol, never a concrete adapter)
    observability  core, config, adapters.base, pipeline (it wraps the call guard and counts batch results)
    runners        everything below (never ops, sandbox or cli)
    ops            everything below, runners, and the sandbox (for the demo)
    sandbox        core, adapters (the wire stubs and encodings of the CRMs it imitates)
    cli            anything
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "connector"
ENGINE = PACKAGE / "engine"

# --- the package graph -------------------------------------------------------------------------------------

BELOW_RUNNERS = ("connector.core", "connector.canonical", "connector.engine", "connector.config", "connector.adapters", "connector.state",
                 "connector.pipeline", "connector.observability")
# layer (a module prefix) -> the prefixes its modules may import besides their own layer
LAYERS: dict[str, tuple[str, ...]] = {
    "connector.core": (),
    "connector.engine": ("connector.core",),
    "connector.canonical": ("connector.core",),
    "connector.config": ("connector.core", "connector.engine", "connector.canonical"),
    "connector.adapters": ("connector.core", "connector.config", "connector.canonical"),
    "connector.state": ("connector.core", "connector.config"),
    "connector.pipeline": ("connector.core", "connector.config", "connector.engine", "connector.state", "connector.adapters.base"),
    "connector.observability": ("connector.core", "connector.config", "connector.adapters.base", "connector.pipeline"),
    "connector.runners": BELOW_RUNNERS,
    "connector.ops": (*BELOW_RUNNERS, "connector.runners", "connector.sandbox"),
    "connector.sandbox": ("connector.core", "connector.adapters"),
    "connector.cli": ("connector",),
    "connector": (),  # the package's own __init__
}
# Stricter rules inside a layer: (importing prefix, forbidden prefix).
INNER_RULES = (
    ("connector.adapters.hubspot", "connector.adapters.salesforce"),
    ("connector.adapters.salesforce", "connector.adapters.hubspot"),
    ("connector.adapters.base", "connector.adapters.hubspot"),
    ("connector.adapters.base", "connector.adapters.salesforce"),
    ("connector.adapters.base", "connector.config"),
)
# Third-party imports the engine may use besides the standard library (pure: data and validation, no I/O).
ENGINE_THIRD_PARTY = {"holidays", "pydantic"}

# Today's wrong-way imports, each removed by a named later step of issue 16. An entry that no longer
# matches anything fails the suite, so the list only shrinks.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported_names(module: str, source: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of every import; `from a.b import c` gives a.b.c (c may be a module or a name)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def file_imports(path: Path) -> list[tuple[int, str]]:
    return imported_names(module_name(path), path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py")


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> str:
    return max((layer for layer in LAYERS if within(module, layer)), key=len)


def disallowed(module: str, imports: list[tuple[int, str]]) -> list[tuple[str, int, str]]:
    """(importing module, line, imported name) for every import of `module` its layer does not allow."""
    layer = layer_of(module)
    found = []
    for line, target in imports:
        if not within(target, "connector"):
            continue
        allowed = within(target, layer) or any(within(target, p) for p in LAYERS[layer])
        if any(within(module, src) and within(target, banned) for src, banned in INNER_RULES):
            allowed = False
        if not allowed:
            found.append((module, line, target))
    return found


def wrong_way_imports() -> list[tuple[str, int, str]]:
    return [v for path in package_modules() for v in disallowed(module_name(path), file_imports(path))]


def is_known(module: str, target: str) -> bool:
    return any(module == src and within(target, dst) for src, dst in KNOWN_VIOLATIONS)


def test_every_module_belongs_to_a_layer() -> None:
    modules = [module_name(p) for p in package_modules()]
    assert len(modules) > 50
    assert [m for m in modules if layer_of(m) == "connector" and m != "connector"] == []


def test_no_dependency_points_the_wrong_way() -> None:
    wrong = [f"{m}:{line} imports {t}" for m, line, t in wrong_way_imports() if not is_known(m, t)]
    assert wrong == [], "\n".join(wrong)


def test_known_violations_still_exist() -> None:
    found = wrong_way_imports()
    stale = [k for k in KNOWN_VIOLATIONS if not any(m == k[0] and within(t, k[1]) for m, _, t in found)]
    assert stale == [], f"remove these fixed entries from KNOWN_VIOLATIONS: {stale}"


def test_the_rules_catch_wrong_way_imports_at_any_depth() -> None:
    source = "from connector.core.models import Lead\n\ndef f():\n    from connector.state.store import Store\n"
    assert disallowed("connector.engine.scoring.fast", imported_names("connector.engine.scoring.fast", source)) == [
        ("connector.engine.scoring.fast", 4, "connector.state.store.Store")]
    assert disallowed("connector.pipeline.batch", [(1, "connector.adapters.hubspot.adapter.HubSpotAdapter")])
    assert disallowed("connector.adapters.hubspot.adapter", [(1, "connector.adapters.salesforce.soql")])
    assert disallowed("connector.core.models", [(1, "connector.config.Settings")])
    assert disallowed("connector.runners.jobs", [(1, "connector.ops.status")])
    assert not disallowed("connector.pipeline.batch", [(1, "connector.adapters.base.CrmAdapter"), (2, "connector.state.store")])
    assert imported_names("connector.ops.status", "from ..state import store\nfrom . import errors\n") == [
        (1, "connector.state.store"), (2, "connector.ops.errors")]


# --- the engine stays pure: no I/O, network, database, clock, randomness or environment ---------------------

BANNED_MODULES = {
    "os", "sys", "io", "socket", "ssl", "time", "random", "secrets", "subprocess", "threading", "asyncio", "shutil",
    "tempfile", "pathlib", "sqlite3", "requests", "urllib", "urllib3", "httpx", "sqlalchemy", "psycopg", "hubspot",
    "simple_salesforce", "logging", "connector.state", "connector.adapters", "connector.core.clock", "connector.config",
}
BANNED_CALLS = {"now", "utcnow", "today", "time", "open", "getenv", "input", "print"}


def engine_files() -> list[Path]:
    return sorted(ENGINE.rglob("*.py"))


@pytest.mark.parametrize("path", engine_files(), ids=lambda p: str(p.relative_to(ENGINE)))
def test_engine_module_imports_nothing_that_does_io(path: Path) -> None:
    for line, name in file_imports(path):
        root = name.split(".")[0]
        assert root not in BANNED_MODULES and not any(within(name, b) for b in BANNED_MODULES), f"{path.name}:{line} imports {name}"
        assert root in sys.stdlib_module_names or root in ENGINE_THIRD_PARTY or root == "connector", f"{path.name}:{line} imports {name}"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            assert called not in BANNED_CALLS, f"{path.name}:{node.lineno} calls {called}()"


def test_engine_package_has_modules_to_check() -> None:
    # Each part is a module (diff.py) or a package (routing/__init__.py and its modules): both are checked.
    parts = {p.relative_to(ENGINE).parts[0].removesuffix(".py") for p in engine_files()}
    assert {"scoring", "routing", "diff", "conditions"} <= parts
    assert (ENGINE / "routing" / "__init__.py").exists() and len(list((ENGINE / "routing").glob("*.py"))) > 1


@pytest.mark.skipif(shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists(), reason="mypy not installed")
def test_package_is_strictly_typed() -> None:
    # No paths on the command line: mypy checks what pyproject's [tool.mypy] names, the whole package (the
    # generated Pub/Sub stubs excluded there), so the test and a developer's plain `mypy` check the same thing.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config["files"] == ["connector"] and config["strict"] is True
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
