"""Start a stream worker as its own process (the demo and benchmarks run the real `healthbus worker`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ops.settings import Settings


def worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HEALTHBUS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "HEALTHBUS_TOPIC_PREFIX": settings.topic_prefix,
                "HEALTHBUS_GROUP_PREFIX": settings.group_prefix, "HEALTHBUS_STATE_DIR": str(settings.state_dir)})
    return env


def start_worker(settings: Settings, log_path: Path, stage: str = "passthrough") -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "ops.cli", "worker", stage], env=worker_env(settings),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
