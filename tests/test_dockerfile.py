"""The image compose.yaml builds (`build: .`): no Docker engine runs here, so the Dockerfile is checked as
text and the package it installs is built for real, a wheel whose file list must hold everything the
services read at run time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.project_layout import PACKAGES

REPO = Path(__file__).resolve().parent.parent

# Deployment files compose.yaml mounts from the repository (or a developer runs there), not package data.
NOT_IN_THE_PACKAGE = ("ops/grafana/", "ops/prometheus/", "ops/adapters.example.yaml", "ops/dev.sh")


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_installs_the_project_without_dev_extras_and_runs_unprivileged() -> None:
    steps = _instructions()
    base = next(arg for op, arg in steps if op == "FROM")
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base), base
    assert required == ">=3.11"
    for op, arg in steps:
        if op == "COPY":
            *sources, _target = arg.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    installs = [arg for op, arg in steps if op == "RUN" and "pip install" in arg]
    assert installs and all("[dev]" not in arg and "-e " not in arg for arg in installs), installs
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    last_install = max(i for i, (op, arg) in enumerate(steps) if op == "RUN" and "pip install" in arg)
    assert any(op == "USER" for op, _ in steps[last_install:]), "the services must not run as root"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".healthbus", ".git"} <= set(ignored)


def test_the_wheel_holds_every_file_the_services_read(tmp_path: Path) -> None:
    """Built from what the image's build context holds (the tracked files the Dockerfile copies), so no
    leftover of a local editable install (an egg-info's file list) can add what package-data forgets."""
    tracked = subprocess.run(
        ["git", "ls-files", "pyproject.toml", "README.md", *PACKAGES],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout.split()
    context = tmp_path / "context"
    for name in tracked:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, context / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next(tmp_path.glob("healthbus-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
    wanted = {f for f in tracked if f.startswith(PACKAGES) and not f.startswith(NOT_IN_THE_PACKAGE)}
    missing = sorted(wanted - packaged)
    assert not missing, f"tracked files the installed package would lack: {missing[:10]}"
    assert "ops/stack/kafka/pom.xml" in packaged and "producers/exchange_db/hospital.sql" in packaged
