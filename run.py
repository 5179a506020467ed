#!/usr/bin/env python3
"""Quick start on a fresh machine with only Python: `python3 run.py demo` or `python3 run.py test`.

Creates ./.venv on first use (and again when pyproject.toml changes), installs the connector
with its test extras, then runs the connector demo or the whole test suite.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-from"


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing the connector and its test tools into .venv …", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def compile_bytecode() -> None:
    """Byte-compile the checkout, as `pip install` does for an installed package: the editable install leaves the
    connector's own modules uncompiled, and with PYTHONDONTWRITEBYTECODE set (as in the image) every new
    `connector` process would compile them again (~0.3 s of start-up). Only changed files are compiled."""
    subprocess.run([str(BIN / "python"), "-m", "compileall", "-q", "-j", "0", "connector", "bench"], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "connector"):
        print(__doc__)
        return 2
    ensure_venv()
    compile_bytecode()
    command, rest = argv[0], argv[1:]
    if command == "test":
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    elif command == "demo":
        args = [str(BIN / "connector"), "demo", *rest]
    else:
        args = [str(BIN / "connector"), *rest]
    return subprocess.run(args, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
