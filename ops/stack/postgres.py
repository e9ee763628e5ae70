"""PostgreSQL: use the configured server when it answers, else start a private cluster on 127.0.0.1."""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ops.stack.processes import ServiceError, port_open, wait_until


def server_conninfo(url: str) -> str:
    """The same server, maintenance database ``postgres``."""
    return make_conninfo(url, dbname="postgres")


def database_name(url: str) -> str:
    return str(conninfo_to_dict(url).get("dbname") or "postgres")


def server_answers(url: str) -> bool:
    try:
        with psycopg.connect(server_conninfo(url), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def ensure_database(url: str) -> None:
    """Create the configured database if the server lacks it."""
    name = database_name(url)
    with psycopg.connect(server_conninfo(url), autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def install_postgres() -> Path:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServiceError(
            "postgres: no PostgreSQL server answers and none is installed. "
            "Fix: apt-get install postgresql, or set HEALTHBUS_POSTGRES_URL."
        )
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "postgresql"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    bindir = postgres_bindir()
    if bindir is None:
        raise ServiceError("postgres: apt-get installed postgresql but initdb is missing")
    return bindir


def start_private_cluster(
    url: str,
    data_dir: Path,
    log_path: Path,
    server_settings: Mapping[str, str] | None = None,
    hba_rules: Sequence[str] | None = None,
) -> Path:
    """initdb (as the postgres user when we are root) and pg_ctl start, listening on 127.0.0.1 only.
    ``server_settings`` are extra ``-c name=value`` server settings (``ssl=on``, ``ssl_cert_file``…) and
    ``hba_rules`` replace pg_hba.conf (``hostssl all all 127.0.0.1/32 trust`` refuses unencrypted clients);
    ``url`` must then carry what the server demands (``sslmode``, ``sslrootcert``), since readiness is
    checked through it. Returns the data directory, which ``stop_private_cluster`` takes."""
    params = conninfo_to_dict(url)
    host, port = str(params.get("host") or "127.0.0.1"), int(str(params.get("port") or 5432))
    if host not in ("127.0.0.1", "localhost"):
        raise ServiceError(
            f"postgres: {host}:{port} does not answer. Fix: start it or point HEALTHBUS_POSTGRES_URL elsewhere."
        )
    if port_open("127.0.0.1", port):
        raise ServiceError(
            f"postgres: something listens on 127.0.0.1:{port} but refuses PostgreSQL connections "
            f"as {params.get('user', 'postgres')}. Fix: check HEALTHBUS_POSTGRES_URL."
        )
    bindir = postgres_bindir() or install_postgres()
    data_dir = data_dir.resolve()  # the server resolves a relative socket directory against its data directory
    user = str(params.get("user") or "postgres")
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
        log_path.touch()
        shutil.chown(log_path, "postgres", "postgres")
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if hba_rules is not None:
        hba = data_dir / "pg_hba.conf"
        hba.write_text("".join(f"{rule}\n" for rule in hba_rules))
        if os.geteuid() == 0:
            shutil.chown(hba, "postgres", "postgres")
    # pg_ctl hands -o to a shell: each setting is quoted as one word.
    extra = "".join(f" -c {shlex.quote(f'{name}={value}')}" for name, value in (server_settings or {}).items())
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(log_path),
            "-w",
            "start",
            "-o",
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data_dir}{extra}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wait_until(lambda: server_answers(url), 15, "postgres (private cluster)", f"See {log_path}.")
    return data_dir


def stop_private_cluster(data_dir: Path) -> None:
    bindir = postgres_bindir()
    if bindir is None or not (data_dir / "postmaster.pid").exists():
        return
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
        check=False,
        stdout=subprocess.DEVNULL,
    )


@contextmanager
def private_database(base_url: str, name: str) -> Iterator[str]:
    """A database of its own on ``base_url``'s server for a test or a benchmark: created, its URL yielded,
    dropped afterwards (connections and all)."""
    url = make_conninfo(base_url, dbname=name)
    ensure_database(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_conninfo(url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
