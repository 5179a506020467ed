"""`connector sandbox` as a person runs it: it prints every export sync and serve need, and SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def test_sandbox_prints_the_serve_secrets_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "connector.cli", "sandbox", "--contacts", "3", "--leads", "3"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    exports = " ".join(line for line in lines if line.strip().startswith("export "))
    for key in ("CONNECTOR_HUBSPOT__ACCESS_TOKEN=", "CONNECTOR_HUBSPOT__APP_ID=", "CONNECTOR_HUBSPOT__CLIENT_SECRET=",
                "CONNECTOR_SERVICE__EVENTS_SECRET="):
        assert key in exports, lines
    assert lines[-1].startswith("Ctrl-C (or SIGTERM) to stop.")
    assert "Traceback" not in err
