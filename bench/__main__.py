"""Run one benchmark (or `all`): each module bench/<name>.py has `run(argv) -> dict[str, float]` that prints its table."""

from __future__ import annotations

import compileall
import importlib
import json
import platform
import sys
from pathlib import Path

BENCHMARKS = ("engine", "calls", "ceiling", "memory", "latency", "replicas")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in (*BENCHMARKS, "all"):
        print(f"usage: python -m bench {{{'|'.join(BENCHMARKS)}|all}} [options]", file=sys.stderr)
        return 2
    names = BENCHMARKS if argv[0] == "all" else (argv[0],)
    # The connector as installed has bytecode (pip compiles it; run.py compiles a checkout): `connector` processes
    # a benchmark starts must not each compile the package again because PYTHONDONTWRITEBYTECODE is set.
    import connector

    compileall.compile_dir(Path(connector.__file__).resolve().parent, quiet=1, workers=0)
    figures: dict[str, float] = {}
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            print(f"bench {name}: not available in this build", file=sys.stderr)
            continue
        print(f"== bench {name} ({platform.machine()}, Python {platform.python_version()}) ==", flush=True)
        result = module.run(list(argv[1:]))
        figures.update({f"{name}.{k}" if len(names) > 1 else k: v for k, v in result.items()})
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
