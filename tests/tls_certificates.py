"""Throwaway certificates for TLS tests, from the ``openssl`` CLI: a CA, a second CA that signed nothing
the server shows, and a server certificate for 127.0.0.1 and localhost."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # signed the server certificate
    other_ca: Path  # a CA that signed nothing the server shows
    server_cert: Path
    server_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_certificates(directory: Path) -> Certificates:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")  # EC: ~10x faster than RSA here
    for name in ("ca", "other_ca"):
        _openssl(
            "req",
            "-x509",
            *ec,
            "-keyout",
            directory / f"{name}.key",
            "-out",
            directory / f"{name}.pem",
            "-days",
            "1",
            "-subj",
            f"/CN=healthbus test {name}",
        )
    _openssl(
        "req", *ec, "-keyout", directory / "server.key", "-out", directory / "server.csr", "-subj", "/CN=127.0.0.1"
    )
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        directory / "server.csr",
        "-CA",
        directory / "ca.pem",
        "-CAkey",
        directory / "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        directory / "san.cnf",
        "-out",
        directory / "server.pem",
    )
    return Certificates(
        directory / "ca.pem", directory / "other_ca.pem", directory / "server.pem", directory / "server.key"
    )
