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


PHASES = """
import logging, time
from ops.cli.progress import progress_phases
with progress_phases("bench demo"):
    logging.getLogger("ops.bench.demo").info("processes up and warm")
    time.sleep(0.3)
print("done")
"""


def _under_a_terminal(script: str = SCRIPT) -> str:
    """Run ``script`` with stdout and stderr on a pty; everything the terminal received."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=follower, stderr=follower, close_fds=True)
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


def test_a_bench_shows_its_phase_on_a_terminal_and_nothing_in_a_pipe() -> None:
    shown = _under_a_terminal(PHASES)
    assert "bench demo: processes up and warm" in shown and "done" in shown, shown
    piped = subprocess.run([sys.executable, "-c", PHASES], capture_output=True, text=True, timeout=30)
    assert piped.stdout == "done\n" and piped.stderr == "", piped.stderr
