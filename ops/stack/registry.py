"""The local stack's opt-in schema registry: Apicurio Registry on 127.0.0.1, in-memory storage.

Opt in by pointing ``HEALTHBUS_SCHEMA_REGISTRY_URL`` at a local address (``http://127.0.0.1:8081/apis/ccompat/v7``):
when nothing answers there, ``stack up`` starts Apicurio and events use the Confluent wire format through
its Confluent-compatible API. Unset, events use Avro single-object encoding and no registry runs. The
application (about 110 MB) is fetched from Maven Central once and cached beside the broker's jars.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from ops.stack.broker import LOCAL_HOSTS, cache_dir, java_binary
from ops.stack.processes import ServiceError, port_open, spawn, wait_until

POM = Path(__file__).with_name("registry") / "pom.xml"
APICURIO_VERSION = re.search(
    r"<apicurio\.version>([^<]+)</apicurio\.version>",  # type: ignore[union-attr]
    POM.read_text(),
).group(1)
CCOMPAT_PATH = "/apis/ccompat/v7"


def registry_home() -> Path:
    return cache_dir() / f"apicurio-registry-{APICURIO_VERSION}"


def registry_answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/subjects", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def ensure_registry_app() -> Path:
    """The runner jar of the pinned version; fetched with Maven and unpacked on first use."""
    home = registry_home()
    runner = home / "app" / f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
    if runner.exists():
        return runner
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if runner.exists():
            return runner
        if shutil.which("mvn") is None:
            raise ServiceError("schema registry: Maven is missing (it fetches Apicurio). Fix: apt-get install maven.")
        artifact = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
        fetch = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy",
                f"-Dartifact={artifact}",
                f"-DoutputDirectory={home}",
            ],
            capture_output=True,
            text=True,
        )
        tarball = home / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
        if fetch.returncode != 0 or not tarball.exists():
            raise ServiceError(
                f"schema registry: fetching {artifact} failed:\n{fetch.stdout[-2000:]}{fetch.stderr[-2000:]}"
            )
        partial = home / "app.partial"
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(partial, filter="data")
        shutil.rmtree(home / "app", ignore_errors=True)
        partial.rename(home / "app")
        tarball.unlink()
    return runner


def start_registry(url: str, log_path: Path, timeout: float = 90) -> int:
    """Start Apicurio for ``url`` (a 127.0.0.1 address ending in the ccompat path); returns its pid."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 8081
    if host not in LOCAL_HOSTS:
        raise ServiceError(
            f"schema registry: {url} does not answer. Fix: start it or correct HEALTHBUS_SCHEMA_REGISTRY_URL."
        )
    if parts.path.rstrip("/") != CCOMPAT_PATH:
        raise ServiceError(
            f"schema registry: a local registry serves the Confluent API at {CCOMPAT_PATH}. "
            f"Fix: HEALTHBUS_SCHEMA_REGISTRY_URL=http://127.0.0.1:{port}{CCOMPAT_PATH}"
        )
    if port_open("127.0.0.1", port):
        raise ServiceError(f"schema registry: port {port} is taken by something that is not a registry.")
    runner = ensure_registry_app()
    argv = [
        java_binary(),
        "-Xms64m",
        "-Xmx256m",
        "-Dquarkus.http.host=127.0.0.1",
        f"-Dquarkus.http.port={port}",
        "-Dquarkus.management.host=127.0.0.1",
        "-Dapicurio.storage.kind=sql",
        "-Dapicurio.storage.sql.kind=h2",
        "-Dapicurio.datasource.url=jdbc:h2:mem:registry",
        "-Dapicurio.datasource.jdbc.initial-size=2",
        "-Dapicurio.datasource.jdbc.min-size=2",
        "-Dapicurio.datasource.jdbc.max-size=10",
        "-jar",
        str(runner),
    ]
    proc = spawn(argv, log_path)
    started = time.monotonic()
    try:
        wait_until(
            lambda: proc.poll() is None and registry_answers(url),
            timeout,
            f"schema registry (Apicurio {APICURIO_VERSION})",
            f"See {log_path}.",
        )
    except ServiceError:
        proc.kill()
        raise
    with open(log_path, "a") as log:
        log.write(f"healthbus: registry answered {time.monotonic() - started:.1f} s after start\n")
    return proc.pid
