"""Long CLI work shows progress on a terminal and nothing elsewhere (issue 19 item 7): the
JSON on standard output is the same either way."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tempfile


def _verify(settings, *, terminal: bool) -> tuple[str, str]:
    env = {**os.environ, "ARUS_DATABASE_URL": settings.database_url, "COLUMNS": "100"}
    command = [sys.executable, "-m", "arus.tools.cli", "verify"]
    if not terminal:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        return done.stdout, done.stderr
    controller, terminal_end = pty.openpty()
    # Standard output goes to a file: a pipe nobody reads while the terminal is read could fill
    # up with a long report and stall the process.
    with tempfile.TemporaryFile() as report:
        with subprocess.Popen(command, env=env, stdout=report, stderr=terminal_end) as run:
            os.close(terminal_end)
            shown = b""
            while True:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the terminal closed with the process
                    break
                if not chunk:
                    break
                shown += chunk
            run.wait(timeout=300)
        os.close(controller)
        report.seek(0)
        out = report.read().decode()
    return out, shown.decode(errors="replace")


def test_verify_shows_a_bar_on_a_terminal_only(settings, ledger):
    out, shown = _verify(settings, terminal=True)
    assert "verifying" in shown, shown
    assert json.loads(out)["ledgers"], "the JSON report is unchanged on a terminal"
    out, stderr = _verify(settings, terminal=False)
    assert "verifying" not in stderr
    assert json.loads(out)["ledgers"]
