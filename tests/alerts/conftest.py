"""Fixtures for the alert channel tests: a throw-away PKI for the TLS peers (SMTP STARTTLS, TAK).

The certificates are made with the ``openssl`` command line (the ``cryptography`` package is not
among the project's dependencies): a test CA, a server certificate for 127.0.0.1/localhost and a
client certificate signed by it, and a second CA that nothing trusts, for the refusal cases.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_LEAF = "basicConstraints=critical,CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"


class Pki(NamedTuple):
    """PEM files: ``ca`` signs ``server_*`` (SAN 127.0.0.1, localhost) and ``client_*``;
    ``rogue_ca`` signs ``rogue_client_*``, which no peer trusts."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_client_cert: Path
    rogue_client_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: {done.stderr.strip()}")


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", *_EC, "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (directory / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext"))
    ext.write_text(_LEAF + extensions)
    _openssl("req", *_EC, "-keyout", key, "-out", csr, "-subj", f"/CN={name}", cwd=directory)
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
             "-days", "2", "-extfile", ext, cwd=directory)
    return cert, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with a server and a client certificate, and an untrusted CA with a client certificate."""
    if shutil.which("openssl") is None:  # as tests/conftest.py's service_missing: skip locally, fail in CI
        reason = "the openssl command is needed to make the test certificates"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and a required tool is missing: {reason}", pytrace=False)
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("pki")
    ca = _ca(directory, "ibet-test-ca")
    server = _leaf(directory, "ibet-test-server", ca,
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    client = _leaf(directory, "ibet-test-client", ca, "extendedKeyUsage=clientAuth\n")
    rogue_ca = _ca(directory, "rogue-ca")
    rogue = _leaf(directory, "rogue-client", rogue_ca, "extendedKeyUsage=clientAuth\n")
    return Pki(ca[0], *server, *client, rogue_ca[0], *rogue)
