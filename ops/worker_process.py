"""Start a stream worker as its own process (the demo and benchmarks run the real `healthbus worker`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from foundation.settings import Settings


def worker_env(settings: Settings) -> dict[str, str]:
    """This environment, with every HEALTHBUS_* variable replaced by ``settings``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("HEALTHBUS_")}, **settings.to_env()}


def start_worker(settings: Settings, log_path: Path, stage: str = "identify") -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "worker", stage],
            env=worker_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
