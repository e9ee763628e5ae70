"""Long commands draw a progress bar on a terminal and print nothing extra anywhere else. The terminal is
real: the command runs under a pseudo-terminal (pty), as a person at a shell would run it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

SCRIPT = """
from ops.cli.progress import progress_bar
total = 0
with progress_bar("linking records") as update:
    for n in range(1, 501):
        total += n - 1
        update(n, 500)
print("total", total)
"""


def _under_a_terminal() -> str:
    """Run SCRIPT with stdout and stderr on a pty; everything the terminal received."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(30)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_sees_a_progress_bar() -> None:
    shown = _under_a_terminal()
    assert "linking records" in shown and "500/500" in shown, shown
    assert "total 124750" in shown


def test_a_pipe_sees_only_the_output() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "total 124750\n" and done.stderr == ""
