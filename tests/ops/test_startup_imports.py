"""Start-up of a `connector backfill` / `sync --once` process (issue 18): libraries a plain run does not use stay unimported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from connector.state.store import Store

CHECK = """
import io, sys
from connector.cli import main
from connector.ops.progress import BackfillProgress
from connector.runners.jobs import backfill
from connector.state.store import Store

Store.open(sys.argv[1]).close()
with BackfillProgress(live=False, expected={}, budget_left=lambda crm: None, stream=io.StringIO()):
    pass
print(" ".join(sorted(name for name in ("alembic", "rich", "simple_salesforce") if name in sys.modules)))
"""


def test_a_plain_run_on_a_store_at_head_imports_neither_alembic_nor_rich(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store.open(url).close()  # migrated here, so the child finds it at head
    done = subprocess.run([sys.executable, "-c", CHECK, url], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
